using System.Text.Json;

namespace Raft.Model.Gguf;

/// <summary>What <see cref="GgufExporter.Export"/> wrote.</summary>
/// <param name="Path">The GGUF file.</param>
/// <param name="Architecture">general.architecture ("llama", "qwen2", "qwen3").</param>
/// <param name="TensorCount">Tensors written.</param>
/// <param name="Type">The type of the matrices (vectors are always F32).</param>
/// <param name="TokenizerModel">tokenizer.ggml.model ("gpt2" or "llama").</param>
/// <param name="PreTokenizer">tokenizer.ggml.pre.</param>
public sealed record GgufExportResult(string Path, string Architecture, int TensorCount, GgmlType Type, string TokenizerModel, string PreTokenizer);

/// <summary>
/// Exports a checkpoint folder (config.json, safetensors, tokenizer files) as one GGUF v3 file that llama.cpp (and so
/// Ollama) loads: llama.cpp's tensor names and metadata keys, the tokenizer as <see cref="GgufVocabulary"/> describes it.
/// <list type="bullet">
/// <item>model_type llama and mistral → architecture <c>llama</c>. llama.cpp's rope for llama rotates adjacent pairs
/// (GGML's "normal" mode) where Hugging Face rotates the two halves of each head, so the rows of q_proj and k_proj (and of
/// their biases) are permuted within each head as convert_hf_to_gguf.py does: new row 2i + j of a head is old row
/// j·head_dim/2 + i. Then both compute the same attention. attention_bias (q/k/v and o_proj) and mlp_bias travel as
/// llama.cpp's optional bias tensors.</item>
/// <item>qwen2 → <c>qwen2</c> (NEOX rope, the halves Hugging Face rotates: no permutation) with its q/k/v biases; qwen3 →
/// <c>qwen3</c> with the per-head q/k RMSNorm weights (<c>attn_q_norm</c>, <c>attn_k_norm</c>).</item>
/// <item>rope_scaling: linear → <c>rope.scaling.type</c> linear and its factor; llama3 (llama architecture) → the
/// <c>rope_freqs.weight</c> tensor of per-pair divisors θ^(−2i/d) / inv_freq_i, as convert_hf_to_gguf.py writes it;
/// yarn with Hugging Face's default β_fast 32, β_slow 1, attention factor and truncation → <c>rope.scaling.type</c> yarn,
/// factor and original context length.</item>
/// </list>
/// Matrices are written as F32, F16 or BF16 (rounded to nearest even), vectors (norms, biases, rope_freqs) always as F32,
/// as convert_hf_to_gguf.py does. What llama.cpp would compute differently is refused by name
/// (<see cref="UnsupportedConfigException"/>: key, value, file): sliding windows, dynamic NTK rope, llama3 rope outside the
/// llama architecture, yarn with other parameters, biases an architecture's llama.cpp graph does not read, the built-in
/// <c>raft</c> models; so are tokenizers llama.cpp would read differently (<see cref="NotSupportedException"/>).
/// </summary>
public static class GgufExporter
{
    /// <summary>Exports <paramref name="modelDir"/> to <paramref name="outFile"/> (written atomically).</summary>
    /// <exception cref="UnsupportedConfigException">A config.json key the file cannot carry (named with its value and file).</exception>
    /// <exception cref="NotSupportedException">The tokenizer cannot be represented (the message names the file and what).</exception>
    /// <exception cref="InvalidDataException">A malformed checkpoint or tokenizer file.</exception>
    public static GgufExportResult Export(string modelDir, string outFile, GgmlType type = GgmlType.F32)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        ArgumentNullException.ThrowIfNull(outFile);
        // refuse what the file cannot carry before reading the weights
        string configPath = Path.Combine(modelDir, Checkpoint.ConfigFile);
        if (File.Exists(configPath)) CheckRepresentable(ModelConfig.Load(configPath));
        var (config, weights) = Checkpoint.Load(modelDir);
        string arch = ArchitectureOf(config);
        var vocab = GgufVocabulary.FromDirectory(modelDir, config.VocabSize);
        var (metadata, tensors) = Build(config, weights, vocab, type, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDir))));
        GgufWriter.Write(outFile, metadata, tensors);
        return new GgufExportResult(Path.GetFullPath(outFile), arch, tensors.Count, type, vocab.Model, vocab.Pre);
    }

    private static string J(object? v) => JsonSerializer.Serialize(v);

    /// <summary>llama.cpp's architecture name for the config's model_type; refuses any other, naming it.</summary>
    public static string ArchitectureOf(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.ModelType switch
        {
            "llama" or "mistral" => "llama",
            "qwen2" => "qwen2",
            "qwen3" => "qwen3",
            _ => throw new UnsupportedConfigException("model_type", J(config.ModelType), config.Source,
                "has no GGUF export (llama, mistral, qwen2 and qwen3 are exported; raft models use the built-in byte tokenizer, which llama.cpp does not have)."),
        };
    }

    /// <summary>
    /// Refuses what the GGUF file could not carry so that llama.cpp computes what the engine computes (see the type's
    /// remarks), naming the config.json key, its value and the file.
    /// </summary>
    public static void CheckRepresentable(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var layout = DecoderLayout.For(config);
        string arch = ArchitectureOf(config);
        string? src = config.Source;
        if (layout.HasSlidingWindow)
            throw new UnsupportedConfigException("sliding_window", J(config.SlidingWindow), src,
                "llama.cpp's " + arch + " graph attends to the whole causal context, so a sliding window would be computed differently.");
        if (arch == "qwen3" && layout.Layers[0].Features.QkvBias)
            throw new UnsupportedConfigException("attention_bias", "true", src, "llama.cpp's qwen3 graph has no projection biases.");
        if (arch != "llama" && layout.Layers[0].Features.OutputBias)
            throw new UnsupportedConfigException("attention_bias", "true", src, $"llama.cpp's {arch} graph has no o_proj bias.");
        var rope = layout.Rope;
        string block = config.RopeScaling is not null ? "rope_scaling" : "rope_parameters";
        switch (rope.Type)
        {
            case RopeType.Default or RopeType.Linear:
                break;
            case RopeType.Llama3 when arch == "llama":
                break;
            case RopeType.Llama3:
                throw new UnsupportedConfigException($"{block}.rope_type", J("llama3"), src,
                    $"llama.cpp reads the llama3 frequency factors (rope_freqs) for the llama architecture only, not {arch}.");
            case RopeType.Dynamic:
                throw new UnsupportedConfigException($"{block}.rope_type", J("dynamic"), src,
                    "llama.cpp has no dynamic NTK scaling (its frequencies would not follow the sequence length).");
            case RopeType.Yarn:
                if (rope.BetaFast != 32 || rope.BetaSlow != 1)
                    throw new UnsupportedConfigException($"{block}.beta_fast", $"{J(rope.BetaFast)} (beta_slow {J(rope.BetaSlow)})", src,
                        "the export writes yarn with Hugging Face's default β_fast 32 and β_slow 1 only.");
                if (!rope.Truncate)
                    throw new UnsupportedConfigException($"{block}.truncate", "false", src, "llama.cpp always rounds yarn's correction range outwards.");
                if (Math.Abs(rope.AttentionScaling - RotaryEmbedding.YarnMscale(rope.Factor, 1)) > 1e-12)
                    throw new UnsupportedConfigException($"{block}.attention_factor", J(rope.AttentionScaling), src,
                        "llama.cpp computes yarn's attention factor as 0.1·ln(factor) + 1; another one is not exported.");
                break;
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
        CheckRepresentable(config);
        if (vocab.Tokens.Length != config.VocabSize)
            throw new ArgumentException($"the vocabulary has {vocab.Tokens.Length} tokens, the embedding {config.VocabSize} rows.", nameof(vocab));
        int hd = config.HeadDim, heads = config.NumAttentionHeads, kvHeads = config.KvHeads;
        var rope = layout.Rope;

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
        Add($"{arch}.rope.freq_base", GgufValue.F32((float)rope.Theta));
        Add($"{arch}.rope.dimension_count", GgufValue.U32(hd));
        Add($"{arch}.attention.layer_norm_rms_epsilon", GgufValue.F32((float)config.RmsNormEps));
        if (hd * heads != config.HiddenSize || arch == "qwen3")
        {
            // head_dim decoupled from hidden_size / heads: llama.cpp would otherwise derive it from embedding_length
            Add($"{arch}.attention.key_length", GgufValue.U32(hd));
            Add($"{arch}.attention.value_length", GgufValue.U32(hd));
        }
        switch (rope.Type)
        {
            case RopeType.Linear:
                Add($"{arch}.rope.scaling.type", GgufValue.Str("linear"));
                Add($"{arch}.rope.scaling.factor", GgufValue.F32((float)rope.Factor));
                break;
            case RopeType.Yarn:
                Add($"{arch}.rope.scaling.type", GgufValue.Str("yarn"));
                Add($"{arch}.rope.scaling.factor", GgufValue.F32((float)rope.Factor));
                Add($"{arch}.rope.scaling.original_context_length", GgufValue.U32(rope.OriginalMaxPositionEmbeddings));
                break;
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
        if (rope.Type == RopeType.Llama3)
        {
            // llama.cpp divides each pair's frequency θ^(−2i/d) by rope_freqs[i]
            double[] scaled = rope.InverseFrequencies(rope.TableLength(0));
            var factors = new float[hd / 2];
            for (int i = 0; i < factors.Length; i++) factors[i] = (float)(Math.Pow(rope.Theta, -2.0 * i / hd) / scaled[i]);
            tensors.Add(Vector("rope_freqs.weight", factors));
        }
        bool permute = arch == "llama";
        foreach (var l in layout.Layers)
        {
            string p = $"blk.{l.Index}.";
            var f = l.Features;
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
            if (f.QkvBias)
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
            if (f.QkNorm)
            {
                // per head, applied before rope: the same weights in either rope layout (qwen3 is not permuted)
                tensors.Add(Vector(p + "attn_q_norm.weight", Data(l.QNorm!)));
                tensors.Add(Vector(p + "attn_k_norm.weight", Data(l.KNorm!)));
            }
            tensors.Add(Matrix(p + "attn_output.weight", Data(l.OProj), config.HiddenSize, heads * hd));
            if (f.OutputBias) tensors.Add(Vector(p + "attn_output.bias", Data(l.OBias!)));
            tensors.Add(Vector(p + "ffn_norm.weight", Data(l.PostAttentionNorm)));
            tensors.Add(Matrix(p + "ffn_gate.weight", Data(l.GateProj), config.IntermediateSize, config.HiddenSize));
            tensors.Add(Matrix(p + "ffn_up.weight", Data(l.UpProj), config.IntermediateSize, config.HiddenSize));
            tensors.Add(Matrix(p + "ffn_down.weight", Data(l.DownProj), config.HiddenSize, config.IntermediateSize));
            if (f.MlpBias)
            {
                tensors.Add(Vector(p + "ffn_gate.bias", Data(l.GateBias!)));
                tensors.Add(Vector(p + "ffn_up.bias", Data(l.UpBias!)));
                tensors.Add(Vector(p + "ffn_down.bias", Data(l.DownBias!)));
            }
        }
        tensors.Add(Vector("output_norm.weight", Data(layout.FinalNorm.Name)));
        if (layout.LmHead is { } head) tensors.Add(Matrix("output.weight", Data(head.Name), config.VocabSize, config.HiddenSize));
        foreach (var t in tensors) CheckValues(t);
        return (md, tensors);
    }

    /// <summary>A weight that is not finite, or that F16 cannot hold (|x| &gt; 65504 would become ∞), is refused naming the tensor.</summary>
    private static void CheckValues(GgufTensor t)
    {
        var data = t.Data;
        for (int i = 0; i < data.Length; i++)
        {
            float x = data[i];
            if (!float.IsFinite(x))
                throw new InvalidDataException($"tensor {t.Name} holds {x} at index {i}; a GGUF export needs finite weights.");
            if (t.Type == GgmlType.F16 && Math.Abs(x) > 65504f)
                throw new ArgumentException($"tensor {t.Name} holds {x} at index {i}, beyond f16's range (±65504); export with --dtype bf16 or f32.");
        }
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
