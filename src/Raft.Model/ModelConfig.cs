using System.Text.Json;
using System.Text.Json.Serialization;

namespace Raft.Model;

/// <summary>
/// A Llama-family decoder's shape, read from and written to Hugging Face's <c>config.json</c> (field names as
/// Hugging Face spells them). Covers Llama 2/3, Qwen2/2.5 (q/k/v projection bias), SmolLM2, TinyLlama.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>Hugging Face's model_type ("llama", "qwen2", or "raft" for the built-in tiny models).</summary>
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "llama";
    /// <summary>d_model.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; }
    /// <summary>The SwiGLU MLP's inner width.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; }
    /// <summary>Number of decoder layers.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; }
    /// <summary>Query heads.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; }
    /// <summary>Key/value heads (grouped-query attention); defaults to the query heads.</summary>
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }
    /// <summary>Vocabulary size (rows of the embedding and of lm_head).</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; }
    /// <summary>RMSNorm ε.</summary>
    [JsonPropertyName("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    /// <summary>RoPE base θ.</summary>
    [JsonPropertyName("rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    /// <summary>The longest sequence the model is configured for.</summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>lm_head shares the embedding matrix when true.</summary>
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; }
    /// <summary>Bias on the q/k/v projections (Qwen2). Llama's <c>attention_bias</c> and Qwen2 (always true) both map here.</summary>
    [JsonPropertyName("attention_bias")] public bool? AttentionBias { get; init; }
    /// <summary>Per-head width; defaults to hidden_size / num_attention_heads.</summary>
    [JsonPropertyName("head_dim")] public int? HeadDimOverride { get; init; }
    /// <summary>Token ids, when the config names them.</summary>
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }
    /// <summary>End-of-sequence token id (a single id; lists in config.json keep their first).</summary>
    [JsonPropertyName("eos_token_id")] public JsonElement? EosTokenIdRaw { get; init; }
    /// <summary>The architectures list, kept for round trips.</summary>
    [JsonPropertyName("architectures")] public string[]? Architectures { get; init; }
    /// <summary>The dtype the weights were saved in ("float32", "bfloat16", …).</summary>
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }

    /// <summary>Key/value heads, resolved.</summary>
    [JsonIgnore] public int KvHeads => NumKeyValueHeads ?? NumAttentionHeads;
    /// <summary>Per-head width, resolved.</summary>
    [JsonIgnore] public int HeadDim => HeadDimOverride ?? (NumAttentionHeads == 0 ? 0 : HiddenSize / NumAttentionHeads);
    /// <summary>Whether q/k/v carry a bias (true for Qwen2 unless the config says otherwise).</summary>
    [JsonIgnore] public bool QkvBias => AttentionBias ?? ModelType == "qwen2";
    /// <summary>The end-of-sequence ids (config.json may give one or a list).</summary>
    [JsonIgnore]
    public int[] EosTokenIds => EosTokenIdRaw is not { } e ? [] :
        e.ValueKind == JsonValueKind.Number ? [e.GetInt32()] :
        e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().Select(x => x.GetInt32()).ToArray() : [];

    /// <summary>Checks the shape; throws <see cref="ArgumentException"/> naming the field and value (and the source file when given).</summary>
    public void Validate(string? source = null)
    {
        string where = source is null ? "" : $" in {source}";
        void Positive(int v, string name) { if (v <= 0) throw new ArgumentException($"{name} must be > 0, got {v}{where}.", name); }
        Positive(HiddenSize, "hidden_size");
        Positive(IntermediateSize, "intermediate_size");
        Positive(NumHiddenLayers, "num_hidden_layers");
        Positive(NumAttentionHeads, "num_attention_heads");
        Positive(KvHeads, "num_key_value_heads");
        Positive(VocabSize, "vocab_size");
        Positive(MaxPositionEmbeddings, "max_position_embeddings");
        if (NumAttentionHeads % KvHeads != 0)
            throw new ArgumentException($"num_attention_heads ({NumAttentionHeads}) must be a multiple of num_key_value_heads ({KvHeads}){where}.", "num_key_value_heads");
        if (HeadDimOverride is null && HiddenSize % NumAttentionHeads != 0)
            throw new ArgumentException($"hidden_size ({HiddenSize}) must be a multiple of num_attention_heads ({NumAttentionHeads}){where}.", "hidden_size");
        if (HeadDim % 2 != 0)
            throw new ArgumentException($"head_dim must be even for RoPE, got {HeadDim}{where}.", "head_dim");
        if (!(RmsNormEps > 0)) throw new ArgumentException($"rms_norm_eps must be > 0, got {RmsNormEps}{where}.", "rms_norm_eps");
        if (!(RopeTheta > 0)) throw new ArgumentException($"rope_theta must be > 0, got {RopeTheta}{where}.", "rope_theta");
    }

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads and validates a config.json; errors name the file.</summary>
    public static ModelConfig Load(string path)
    {
        ModelConfig? c;
        try
        {
            c = JsonSerializer.Deserialize<ModelConfig>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid config.json ({e.Message}).", e);
        }
        if (c is null) throw new InvalidDataException($"{path}: config.json is empty.");
        c.Validate(path);
        return c;
    }

    /// <summary>The config as Hugging Face-style JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>
    /// The expected tensors of this architecture: Hugging Face name → shape, in a stable order (new arrays each call).
    /// The names, shapes and order are <see cref="DecoderLayout.Tensors"/>'s.
    /// </summary>
    public IReadOnlyList<(string Name, int[] Shape)> TensorShapes() =>
        DecoderLayout.For(this).Tensors.Select(t => (t.Name, t.Shape.ToArray())).ToList();
}
