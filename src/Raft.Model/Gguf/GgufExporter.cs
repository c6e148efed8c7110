using System.Text.Json;

namespace Raft.Model.Gguf;

/// <summary>What <see cref="GgufExporter.Export"/> wrote.</summary>
/// <param name="Path">The GGUF file.</param>
/// <param name="Architecture">general.architecture ("llama", "qwen2").</param>
/// <param name="TensorCount">Tensors written.</param>
/// <param name="Type">The type of the matrices (vectors are always F32).</param>
/// <param name="TokenizerModel">tokenizer.ggml.model ("gpt2" or "llama").</param>
/// <param name="PreTokenizer">tokenizer.ggml.pre.</param>
public sealed record GgufExportResult(string Path, string Architecture, int TensorCount, GgmlType Type, string TokenizerModel, string PreTokenizer);

/// <summary>
/// Exports a checkpoint folder (config.json, safetensors, tokenizer files) as one GGUF v3 file that llama.cpp (and so
/// Ollama) loads: llama.cpp's tensor names and metadata keys, the tokenizer as <see cref="GgufVocabulary"/> describes it.
/// <list type="bullet">
/// <item>model_type llama → architecture <c>llama</c>. llama.cpp's rope for llama rotates adjacent pairs (GGML's "normal"
/// mode) where Hugging Face rotates the two halves of each head, so the rows of q_proj and k_proj (and of their biases)
/// are permuted within each head as convert_hf_to_gguf.py does: new row 2i + j of a head is old row j·head_dim/2 + i.
/// Then both compute the same attention.</item>
/// <item>model_type qwen2 → <c>qwen2</c> (NEOX rope, the halves Hugging Face rotates: no permutation), with the q/k/v
/// biases (zeros when config.json turns them off, which is the same math).</item>
/// </list>
/// Matrices are written as F32, F16 or BF16 (rounded to nearest even), vectors (norms, biases) always as F32, as
/// convert_hf_to_gguf.py does. config.json keys that change the math in a way this export does not carry (rope_scaling,
/// an activation other than SiLU, MLP biases, a sliding window in use, partial rotary) are refused by name, as are
/// tokenizers llama.cpp would read differently.
/// </summary>
public static class GgufExporter
{
    /// <summary>Exports <paramref name="modelDir"/> to <paramref name="outFile"/> (written atomically).</summary>
    /// <exception cref="NotSupportedException">The model or its tokenizer cannot be represented (the message names the key, value and file).</exception>
    /// <exception cref="InvalidDataException">A malformed checkpoint or tokenizer file.</exception>
    public static GgufExportResult Export(string modelDir, string outFile, GgmlType type = GgmlType.F32)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        ArgumentNullException.ThrowIfNull(outFile);
        string configPath = Path.Combine(modelDir, Checkpoint.ConfigFile);
        if (File.Exists(configPath)) CheckConfigKeys(configPath);
        var (config, weights) = Checkpoint.Load(modelDir);
        string arch = ArchitectureOf(config, configPath);
        var vocab = GgufVocabulary.FromDirectory(modelDir, config.VocabSize);
        var (metadata, tensors) = Build(config, weights, vocab, type, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDir))));
        GgufWriter.Write(outFile, metadata, tensors);
        return new GgufExportResult(Path.GetFullPath(outFile), arch, tensors.Count, type, vocab.Model, vocab.Pre);
    }

    /// <summary>llama.cpp's architecture name for the config's model_type; refuses any other, naming it.</summary>
    public static string ArchitectureOf(ModelConfig config, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.ModelType switch
        {
            "llama" => "llama",
            "qwen2" => "qwen2",
            _ => throw new NotSupportedException(
                $"model_type \"{config.ModelType}\"{(source is null ? "" : $" in {source}")} has no GGUF export (llama and qwen2 are exported)."),
        };
    }

    /// <summary>
    /// Refuses the config.json keys that change the math in a way the export would not carry, naming key, value and file:
    /// a non-null rope_scaling, hidden_act other than "silu", mlp_bias true, use_sliding_window true, partial_rotary_factor ≠ 1,
    /// attention or final logit soft-capping.
    /// </summary>
    public static void CheckConfigKeys(string configPath)
    {
        ArgumentNullException.ThrowIfNull(configPath);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(configPath)); }
        catch (JsonException e) { throw new InvalidDataException($"{configPath}: not valid JSON ({e.Message}).", e); }
        using (doc)
        {
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{configPath}: not a JSON object.");
            NotSupportedException Refuse(string key, JsonElement v, string why) =>
                new($"{key} = {v.GetRawText()} in {configPath}: {why}");
            if (r.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind != JsonValueKind.Null)
                throw Refuse("rope_scaling", rs, "GGUF export does not carry rope scaling yet (the engine's forward does not compute it either).");
            foreach (string key in new[] { "hidden_act", "hidden_activation" })
                if (r.TryGetProperty(key, out var act) && !(act.ValueKind == JsonValueKind.String && act.GetString() == "silu"))
                    throw Refuse(key, act, "only the SwiGLU MLP with SiLU is exported.");
            if (r.TryGetProperty("mlp_bias", out var mb) && mb.ValueKind == JsonValueKind.True)
                throw Refuse("mlp_bias", mb, "MLP biases are not exported.");
            if (r.TryGetProperty("use_sliding_window", out var sw) && sw.ValueKind == JsonValueKind.True)
                throw Refuse("use_sliding_window", sw, "sliding-window attention is not exported.");
            if (r.TryGetProperty("partial_rotary_factor", out var pr) && !(pr.ValueKind == JsonValueKind.Number && pr.GetDouble() == 1.0))
                throw Refuse("partial_rotary_factor", pr, "only full rotary embeddings are exported.");
            foreach (string key in new[] { "attn_logit_softcapping", "final_logit_softcapping" })
                if (r.TryGetProperty(key, out var sc) && sc.ValueKind != JsonValueKind.Null)
                    throw Refuse(key, sc, "logit soft-capping is not exported.");
        }
    }

    /// <summary>
    /// The GGUF metadata and tensors of a model: the architecture's hyper-parameters, <paramref name="vocab"/>'s tokenizer
    /// metadata, and every tensor of <paramref name="weights"/> under its llama.cpp name (q/k permuted for llama).
    /// </summary>
    public static (List<KeyValuePair<string, GgufValue>> Metadata, List<GgufTensor> Tensors) Build(
        ModelConfig config, TensorSet weights, GgufVocabulary vocab, GgmlType type, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(vocab);
        _ = type.Size();
        var layout = DecoderLayout.For(config);
        string arch = ArchitectureOf(config);
        if (vocab.Tokens.Length != config.VocabSize)
            throw new ArgumentException($"the vocabulary has {vocab.Tokens.Length} tokens, the embedding {config.VocabSize} rows.", nameof(vocab));
        int hd = config.HeadDim, heads = config.NumAttentionHeads, kvHeads = config.KvHeads;

        var md = new List<KeyValuePair<string, GgufValue>>();
        void Add(string key, GgufValue v) => md.Add(new(key, v));
        Add("general.architecture", GgufValue.Str(arch));
        Add("general.type", GgufValue.Str("model"));
        if (!string.IsNullOrEmpty(name)) Add("general.name", GgufValue.Str(name));
        Add("general.file_type", GgufValue.U32(type switch { GgmlType.F32 => 0u, GgmlType.F16 => 1u, _ => 32u }));
        Add("general.quantization_version", GgufValue.U32(2u));
        Add($"{arch}.vocab_size", GgufValue.U32(config.VocabSize));
        Add($"{arch}.context_length", GgufValue.U32(config.MaxPositionEmbeddings));
        Add($"{arch}.embedding_length", GgufValue.U32(config.HiddenSize));
        Add($"{arch}.block_count", GgufValue.U32(config.NumHiddenLayers));
        Add($"{arch}.feed_forward_length", GgufValue.U32(config.IntermediateSize));
        Add($"{arch}.attention.head_count", GgufValue.U32(heads));
        Add($"{arch}.attention.head_count_kv", GgufValue.U32(kvHeads));
        Add($"{arch}.rope.freq_base", GgufValue.F32((float)config.RopeTheta));
        Add($"{arch}.rope.dimension_count", GgufValue.U32(hd));
        Add($"{arch}.attention.layer_norm_rms_epsilon", GgufValue.F32((float)config.RmsNormEps));
        if (hd * heads != config.HiddenSize)
        {
            // head_dim decoupled from hidden_size / heads: llama.cpp would otherwise derive it from embedding_length
            Add($"{arch}.attention.key_length", GgufValue.U32(hd));
            Add($"{arch}.attention.value_length", GgufValue.U32(hd));
        }
        md.AddRange(vocab.Metadata());

        var tensors = new List<GgufTensor>();
        float[] Data(string hfName) => weights[hfName].Data;
        GgufTensor Matrix(string ggufName, float[] data, int rows, int cols) => new(ggufName, [cols, rows], type, data);
        GgufTensor Vector(string ggufName, float[] data) => new(ggufName, [data.Length], GgmlType.F32, data);
        foreach (var spec in layout.Tensors)
            if (!weights.TryGet(spec.Name, out var t) || !t.Shape.SequenceEqual(spec.Shape))
                throw new ArgumentException($"tensor {spec.Name} {spec.ShapeText} is missing from the weights or has another shape.", nameof(weights));

        tensors.Add(Matrix("token_embd.weight", Data(layout.Embedding.Name), config.VocabSize, config.HiddenSize));
        bool permute = arch == "llama";
        foreach (var l in layout.Layers)
        {
            string p = $"blk.{l.Index}.";
            float[] wq = Data(l.QProj), wk = Data(l.KProj);
            if (permute)
            {
                wq = PermuteHalvesToPairs(wq, heads, hd, config.HiddenSize);
                wk = PermuteHalvesToPairs(wk, kvHeads, hd, config.HiddenSize);
            }
            tensors.Add(Vector(p + "attn_norm.weight", Data(l.InputNorm)));
            tensors.Add(Matrix(p + "attn_q.weight", wq, heads * hd, config.HiddenSize));
            tensors.Add(Matrix(p + "attn_k.weight", wk, kvHeads * hd, config.HiddenSize));
            tensors.Add(Matrix(p + "attn_v.weight", Data(l.VProj), kvHeads * hd, config.HiddenSize));
            if (l.Features.QkvBias)
            {
                float[] bq = Data(l.QBias!), bk = Data(l.KBias!);
                if (permute)
                {
                    bq = PermuteHalvesToPairs(bq, heads, hd, 1);
                    bk = PermuteHalvesToPairs(bk, kvHeads, hd, 1);
                }
                tensors.Add(Vector(p + "attn_q.bias", bq));
                tensors.Add(Vector(p + "attn_k.bias", bk));
                tensors.Add(Vector(p + "attn_v.bias", Data(l.VBias!)));
            }
            else if (arch == "qwen2")
            {
                // llama.cpp's qwen2 graph adds q/k/v biases: zeros compute exactly what a bias-free projection computes
                tensors.Add(Vector(p + "attn_q.bias", new float[heads * hd]));
                tensors.Add(Vector(p + "attn_k.bias", new float[kvHeads * hd]));
                tensors.Add(Vector(p + "attn_v.bias", new float[kvHeads * hd]));
            }
            tensors.Add(Matrix(p + "attn_output.weight", Data(l.OProj), config.HiddenSize, heads * hd));
            tensors.Add(Vector(p + "ffn_norm.weight", Data(l.PostAttentionNorm)));
            tensors.Add(Matrix(p + "ffn_gate.weight", Data(l.GateProj), config.IntermediateSize, config.HiddenSize));
            tensors.Add(Matrix(p + "ffn_up.weight", Data(l.UpProj), config.IntermediateSize, config.HiddenSize));
            tensors.Add(Matrix(p + "ffn_down.weight", Data(l.DownProj), config.HiddenSize, config.IntermediateSize));
        }
        tensors.Add(Vector("output_norm.weight", Data(layout.FinalNorm.Name)));
        if (layout.LmHead is { } head) tensors.Add(Matrix("output.weight", Data(head.Name), config.VocabSize, config.HiddenSize));
        return (md, tensors);
    }

    /// <summary>
    /// Reorders the rows of a q or k projection [heads·headDim, cols] (or its bias, cols = 1) from Hugging Face's
    /// rotate-half layout to GGML's adjacent-pair rope: within each head, new row 2i + j is old row j·headDim/2 + i
    /// (i &lt; headDim/2, j ∈ {0, 1}). A new array; the input is not changed.
    /// </summary>
    public static float[] PermuteHalvesToPairs(float[] data, int heads, int headDim, int cols)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (headDim % 2 != 0 || (long)heads * headDim * cols != data.LongLength)
            throw new ArgumentException($"a [{heads}·{headDim}, {cols}] projection needs {(long)heads * headDim * cols} values with an even head_dim, got {data.LongLength}.", nameof(data));
        var result = new float[data.Length];
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < 2; j++)
                {
                    int from = h * headDim + j * half + i, to = h * headDim + 2 * i + j;
                    Array.Copy(data, (long)from * cols, result, (long)to * cols, cols);
                }
        return result;
    }
}
