using System.Globalization;
using System.Text.Json;

namespace Raft.Teacher;

/// <summary>
/// The parts of an ONNX Runtime GenAI <c>genai_config.json</c> (written by the model builder beside its
/// <c>model.onnx</c>) that say what the decoder graph is: its file, its shape (layers, KV heads, head size, vocabulary,
/// context length) and the names of its inputs and outputs. Keys that would change what the graph means and that the
/// teacher does not honour (a sliding-window cache, extra model parts such as a vision encoder, unknown input/output
/// roles) are refused by name; the <c>search</c> section (generation defaults) is not read: the caller's
/// <c>SamplingOptions</c> decide.
/// </summary>
public sealed record GenAiConfig
{
    /// <summary>The file name.</summary>
    public const string FileName = "genai_config.json";

    /// <summary>model.decoder.filename (default model.onnx).</summary>
    public string Filename { get; init; } = OnnxExporter.ModelFile;
    /// <summary>model.type, when given.</summary>
    public string? ModelType { get; init; }
    /// <summary>model.vocab_size.</summary>
    public int? VocabSize { get; init; }
    /// <summary>model.context_length: the most positions a sequence may take.</summary>
    public int? ContextLength { get; init; }
    /// <summary>model.decoder.num_hidden_layers.</summary>
    public int? NumHiddenLayers { get; init; }
    /// <summary>model.decoder.num_key_value_heads.</summary>
    public int? NumKeyValueHeads { get; init; }
    /// <summary>model.decoder.num_attention_heads.</summary>
    public int? NumAttentionHeads { get; init; }
    /// <summary>model.decoder.head_size.</summary>
    public int? HeadSize { get; init; }
    /// <summary>model.decoder.hidden_size.</summary>
    public int? HiddenSize { get; init; }
    /// <summary>The graph's names per role (model.decoder.inputs and .outputs; the defaults otherwise).</summary>
    public TeacherNames Names { get; init; } = TeacherNames.Default;

    private static readonly string[] ModelKeys = ["bos_token_id", "context_length", "decoder", "eos_token_id", "pad_token_id", "type", "vocab_size"];
    private static readonly string[] DecoderKeys = ["session_options", "filename", "head_size", "hidden_size", "inputs", "outputs", "num_attention_heads", "num_hidden_layers", "num_key_value_heads"];
    private static readonly string[] InputKeys = ["input_ids", "attention_mask", "position_ids", "past_key_names", "past_value_names", "seqlens_k", "total_sequence_length"];
    private static readonly string[] OutputKeys = ["logits", "present_key_names", "present_value_names"];

    /// <summary>Reads <paramref name="path"/>; a malformed file or a refused key raises <see cref="InvalidDataException"/> naming the file and the key.</summary>
    public static GenAiConfig Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: has no \"model\" object.");
            Known(model, ModelKeys, path, "model");
            if (!model.TryGetProperty("decoder", out var dec) || dec.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: has no \"model.decoder\" object.");
            Known(dec, DecoderKeys, path, "model.decoder");
            var names = TeacherNames.Default;
            if (dec.TryGetProperty("inputs", out var ins))
            {
                Known(ins, InputKeys, path, "model.decoder.inputs");
                names = names with
                {
                    InputIds = Str(ins, "input_ids", path, "model.decoder.inputs") ?? names.InputIds,
                    AttentionMask = Str(ins, "attention_mask", path, "model.decoder.inputs") ?? names.AttentionMask,
                    PositionIds = Str(ins, "position_ids", path, "model.decoder.inputs") ?? names.PositionIds,
                    PastKey = Template(ins, "past_key_names", path, "model.decoder.inputs") ?? names.PastKey,
                    PastValue = Template(ins, "past_value_names", path, "model.decoder.inputs") ?? names.PastValue,
                    SeqlensK = Str(ins, "seqlens_k", path, "model.decoder.inputs") ?? names.SeqlensK,
                    TotalSequenceLength = Str(ins, "total_sequence_length", path, "model.decoder.inputs") ?? names.TotalSequenceLength,
                };
            }
            if (dec.TryGetProperty("outputs", out var outs))
            {
                Known(outs, OutputKeys, path, "model.decoder.outputs");
                names = names with
                {
                    Logits = Str(outs, "logits", path, "model.decoder.outputs") ?? names.Logits,
                    PresentKey = Template(outs, "present_key_names", path, "model.decoder.outputs") ?? names.PresentKey,
                    PresentValue = Template(outs, "present_value_names", path, "model.decoder.outputs") ?? names.PresentValue,
                };
            }
            string file = Str(dec, "filename", path, "model.decoder") ?? OnnxExporter.ModelFile;
            if (file.Length == 0 || Path.GetFileName(file) != file)
                throw new InvalidDataException($"{path}: model.decoder.filename = \"{file}\" must be a file name in the same folder.");
            return new GenAiConfig
            {
                Filename = file,
                ModelType = Str(model, "type", path, "model"),
                VocabSize = Int(model, "vocab_size", path, "model"),
                ContextLength = Int(model, "context_length", path, "model"),
                NumHiddenLayers = Int(dec, "num_hidden_layers", path, "model.decoder"),
                NumKeyValueHeads = Int(dec, "num_key_value_heads", path, "model.decoder"),
                NumAttentionHeads = Int(dec, "num_attention_heads", path, "model.decoder"),
                HeadSize = Int(dec, "head_size", path, "model.decoder"),
                HiddenSize = Int(dec, "hidden_size", path, "model.decoder"),
                Names = names,
            };
        }
    }

    private static void Known(JsonElement obj, string[] keys, string path, string where)
    {
        if (obj.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: \"{where}\" must be an object.");
        foreach (var p in obj.EnumerateObject())
            if (Array.IndexOf(keys, p.Name) < 0)
                throw new InvalidDataException($"{path}: {where}.{p.Name} = {Short(p.Value)} is not supported by the teacher (it reads {string.Join(", ", keys)}).");
    }

    private static string Short(JsonElement v)
    {
        string s = v.GetRawText();
        return s.Length <= 80 ? s : s[..77] + "...";
    }

    private static string? Str(JsonElement obj, string key, string path, string where)
    {
        if (!obj.TryGetProperty(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.String) throw new InvalidDataException($"{path}: {where}.{key} = {Short(v)} must be a string.");
        return v.GetString();
    }

    /// <summary>A per-layer name with GenAI's <c>%d</c> placeholder, turned into a .NET format string.</summary>
    private static string? Template(JsonElement obj, string key, string path, string where)
    {
        string? s = Str(obj, key, path, where);
        if (s is null) return null;
        int at = s.IndexOf("%d", StringComparison.Ordinal);
        if (at < 0 || s.IndexOf("%d", at + 2, StringComparison.Ordinal) >= 0 || s.Contains('{') || s.Contains('}'))
            throw new InvalidDataException($"{path}: {where}.{key} = \"{s}\" must hold the layer placeholder %d exactly once.");
        return s.Replace("%d", "{0}", StringComparison.Ordinal);
    }

    private static int? Int(JsonElement obj, string key, string path, string where)
    {
        if (!obj.TryGetProperty(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n <= 0)
            throw new InvalidDataException($"{path}: {where}.{key} = {Short(v)} must be a positive integer.");
        return n;
    }
}

/// <summary>
/// The names a decoder graph's inputs and outputs have, per role. Per-layer names are .NET format strings with the layer
/// index as {0}. The defaults are Optimum's and the GenAI model builder's (and the engine's own export's).
/// </summary>
public sealed record TeacherNames
{
    /// <summary>Optimum's / the model builder's / the engine's names.</summary>
    public static readonly TeacherNames Default = new();

    /// <summary>Token ids [batch, seq] int64.</summary>
    public string InputIds { get; init; } = "input_ids";
    /// <summary>Mask [batch, past+seq] int64.</summary>
    public string AttentionMask { get; init; } = "attention_mask";
    /// <summary>Positions [batch, seq] int64.</summary>
    public string PositionIds { get; init; } = "position_ids";
    /// <summary>Optimum's merged decoder's branch switch: bool, true when a past is fed.</summary>
    public string UseCacheBranch { get; init; } = "use_cache_branch";
    /// <summary>GroupQueryAttention's per-row total length − 1, int32 [batch].</summary>
    public string SeqlensK { get; init; } = "seqlens_k";
    /// <summary>GroupQueryAttention's total (past + seq) length, int32 scalar.</summary>
    public string TotalSequenceLength { get; init; } = "total_sequence_length";
    /// <summary>Per-layer past key [batch, kv_heads, past, head_dim].</summary>
    public string PastKey { get; init; } = "past_key_values.{0}.key";
    /// <summary>Per-layer past value.</summary>
    public string PastValue { get; init; } = "past_key_values.{0}.value";
    /// <summary>Logits [batch, seq, vocab].</summary>
    public string Logits { get; init; } = "logits";
    /// <summary>Per-layer present key [batch, kv_heads, past+seq, head_dim].</summary>
    public string PresentKey { get; init; } = "present.{0}.key";
    /// <summary>Per-layer present value.</summary>
    public string PresentValue { get; init; } = "present.{0}.value";

    internal static string Layer(string template, int layer) => string.Format(CultureInfo.InvariantCulture, template, layer);
}
