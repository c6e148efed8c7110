using System.Text.Json;
using System.Text.Json.Serialization;

namespace Raft.Model;

/// <summary>
/// A Llama-family decoder's shape, read from and written to Hugging Face's <c>config.json</c> (field names as
/// Hugging Face spells them). Covers Llama 2/3 (SmolLM2, TinyLlama), Mistral (sliding window), Qwen2/2.5 (q/k/v bias,
/// sliding window from max_window_layers on) and Qwen3 (per-head q/k RMSNorm). Every key that changes the math is
/// honoured or refused by name (<see cref="Validate"/>, <see cref="ModelConfigKeys"/>); a key the engine does not know is
/// refused too.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>Hugging Face's model_type ("llama", "mistral", "qwen2", "qwen3", or "raft" for the built-in tiny models, computed as llama).</summary>
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
    /// <summary>
    /// Llama / Qwen3 (and raft): a bias on q, k, v and o_proj. Qwen2 always has a q/k/v bias and no o_proj bias (false is
    /// refused); Mistral has none (true is refused).
    /// </summary>
    [JsonPropertyName("attention_bias")] public bool? AttentionBias { get; init; }
    /// <summary>Llama (and raft): a bias on gate, up and down_proj. Other families have none (true is refused).</summary>
    [JsonPropertyName("mlp_bias")] public bool? MlpBias { get; init; }
    /// <summary>The MLP's activation: silu (or its alias swish) only; anything else is refused by name.</summary>
    [JsonPropertyName("hidden_act")] public string? HiddenAct { get; init; }
    /// <summary>RoPE scaling (<see cref="RotaryEmbedding"/>): default, linear, dynamic, llama3, yarn.</summary>
    [JsonPropertyName("rope_scaling")] public RopeScalingConfig? RopeScaling { get; init; }
    /// <summary>transformers 5's name for <see cref="RopeScaling"/> (may hold rope_theta).</summary>
    [JsonPropertyName("rope_parameters")] public RopeScalingConfig? RopeParameters { get; init; }
    /// <summary>
    /// The attention window (key j visible to query i iff j ≤ i and i − j &lt; window): Mistral, every layer (null: none;
    /// absent from a Mistral config.json: 4096, Hugging Face's default); Qwen2/Qwen3 only with use_sliding_window.
    /// </summary>
    [JsonPropertyName("sliding_window")] public int? SlidingWindow { get; init; }
    /// <summary>Qwen2/Qwen3: whether <see cref="SlidingWindow"/> applies (default false).</summary>
    [JsonPropertyName("use_sliding_window")] public bool? UseSlidingWindow { get; init; }
    /// <summary>Qwen2/Qwen3: layers from this index on use the window (default 28) unless layer_types says otherwise.</summary>
    [JsonPropertyName("max_window_layers")] public int? MaxWindowLayers { get; init; }
    /// <summary>Qwen2/Qwen3: per layer "full_attention" or "sliding_attention".</summary>
    [JsonPropertyName("layer_types")] public string[]? LayerTypes { get; init; }
    /// <summary>Only 1 (or absent) is supported: refused by name otherwise.</summary>
    [JsonPropertyName("partial_rotary_factor")] public double? PartialRotaryFactor { get; init; }
    /// <summary>Only 0 (or absent) is supported: dropout would change training; refused by name otherwise.</summary>
    [JsonPropertyName("attention_dropout")] public double? AttentionDropout { get; init; }
    /// <summary>Every other key of config.json: accepted only when <see cref="ModelConfigKeys.Inert"/> lists it.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? OtherKeys { get; set; }
    /// <summary>Per-head width; defaults to hidden_size / num_attention_heads (Qwen3: 128, Qwen3Config's default).</summary>
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
    [JsonIgnore] public int HeadDim => HeadDimOverride ?? (ModelType == "qwen3" ? 128 : NumAttentionHeads == 0 ? 0 : HiddenSize / NumAttentionHeads);
    /// <summary>Whether q/k/v carry a bias (always for Qwen2; attention_bias for Llama, Qwen3 and raft; never for Mistral).</summary>
    [JsonIgnore] public bool QkvBias => ModelType == "qwen2" || (ModelType != "mistral" && AttentionBias == true);
    /// <summary>Whether o_proj carries a bias (attention_bias for Llama, Qwen3 and raft).</summary>
    [JsonIgnore] public bool OutputBias => ModelType is "llama" or "raft" or "qwen3" && AttentionBias == true;
    /// <summary>Whether gate, up and down_proj carry a bias (mlp_bias for Llama and raft).</summary>
    [JsonIgnore] public bool MlpBiasResolved => ModelType is "llama" or "raft" && MlpBias == true;
    /// <summary>Whether q and k are RMS-normalised per head before RoPE (Qwen3's q_norm, k_norm).</summary>
    [JsonIgnore] public bool QkNorm => ModelType == "qwen3";
    /// <summary>The file this config was read from (null when built in code); not part of the record's equality.</summary>
    [JsonIgnore] public string? Source => Sources.TryGetValue(this, out var s) ? s.Path : null;

    private sealed class SourcePath(string path) { public string Path { get; } = path; }
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ModelConfig, SourcePath> Sources = new();

    /// <summary>
    /// The attention window of layer <paramref name="layer"/> (null: full causal attention), as Hugging Face's
    /// configuration_mistral / configuration_qwen2 / configuration_qwen3 derive it.
    /// </summary>
    public int? SlidingWindowOf(int layer)
    {
        switch (ModelType)
        {
            case "mistral":
                return SlidingWindow;
            case "qwen2" or "qwen3":
            {
                int? window = UseSlidingWindow == true ? SlidingWindow ?? 4096 : null;
                if (LayerTypes is { } types) return types[layer] == "sliding_attention" ? window : null;
                return window is not null && layer >= (MaxWindowLayers ?? 28) ? window : null;
            }
            default:
                return null;
        }
    }
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
        if (HeadDimOverride is null && ModelType != "qwen3" && HiddenSize % NumAttentionHeads != 0)
            throw new ArgumentException($"hidden_size ({HiddenSize}) must be a multiple of num_attention_heads ({NumAttentionHeads}){where}.", "hidden_size");
        if (HeadDim % 2 != 0)
            throw new ArgumentException($"head_dim must be even for RoPE, got {HeadDim}{where}.", "head_dim");
        if (!(RmsNormEps > 0)) throw new ArgumentException($"rms_norm_eps must be > 0, got {RmsNormEps}{where}.", "rms_norm_eps");
        if (!(RopeTheta > 0)) throw new ArgumentException($"rope_theta must be > 0, got {RopeTheta}{where}.", "rope_theta");
        ValidateKeys(source ?? Source);
    }

    private static string J(object? v) => JsonSerializer.Serialize(v);

    private void ValidateKeys(string? src)
    {
        if (!ModelConfigKeys.ModelTypes.Contains(ModelType))
            throw new UnsupportedConfigException("model_type", J(ModelType), src,
                $"not a family the engine computes ({string.Join(", ", ModelConfigKeys.ModelTypes)}).");
        if (OtherKeys is not null)
            foreach (var (key, value) in OtherKeys)
            {
                if (ModelConfigKeys.Inert.Contains(key)) continue;
                if (ModelConfigKeys.InertWhenFalse.Contains(key) && value.ValueKind is JsonValueKind.False or JsonValueKind.Null) continue;
                string why = ModelConfigKeys.Refused.TryGetValue(key, out var r) ? r
                    : "not a key the engine knows changes nothing; refused rather than ignored (ModelConfigKeys lists what is accepted).";
                throw new UnsupportedConfigException(key, value.GetRawText(), src, why);
            }
        if (HiddenAct is not null and not ("silu" or "swish"))
            throw new UnsupportedConfigException("hidden_act", J(HiddenAct), src, "only silu (SwiGLU) is computed.");
        if (PartialRotaryFactor is { } prf && prf != 1.0)
            throw new UnsupportedConfigException("partial_rotary_factor", J(prf), src, "only 1 (the whole head rotated) is supported.");
        if (AttentionDropout is { } ad && ad != 0)
            throw new UnsupportedConfigException("attention_dropout", J(ad), src, "attention dropout is not computed (only 0 is supported).");
        if (ModelType == "qwen2" && AttentionBias == false)
            throw new UnsupportedConfigException("attention_bias", "false", src, "Hugging Face's Qwen2 always has a q/k/v bias and does not read attention_bias.");
        if (ModelType == "mistral" && AttentionBias == true)
            throw new UnsupportedConfigException("attention_bias", "true", src, "Hugging Face's Mistral has no projection bias and does not read attention_bias.");
        if (MlpBias == true && ModelType is not ("llama" or "raft"))
            throw new UnsupportedConfigException("mlp_bias", "true", src, $"Hugging Face's {ModelType} has no MLP bias and does not read mlp_bias.");
        switch (ModelType)
        {
            case "llama" or "raft":
                if (SlidingWindow is not null) throw new UnsupportedConfigException("sliding_window", J(SlidingWindow), src, "Hugging Face's Llama has no sliding window and does not read sliding_window.");
                if (UseSlidingWindow == true) throw new UnsupportedConfigException("use_sliding_window", "true", src, "Hugging Face's Llama has no sliding window.");
                if (LayerTypes is not null && LayerTypes.Any(t => t != "full_attention"))
                    throw new UnsupportedConfigException("layer_types", J(LayerTypes), src, "Hugging Face's Llama has no sliding window.");
                break;
            case "mistral":
                if (UseSlidingWindow is not null) throw new UnsupportedConfigException("use_sliding_window", J(UseSlidingWindow), src, "Hugging Face's Mistral does not read it (sliding_window alone sets the window of every layer).");
                if (MaxWindowLayers is not null) throw new UnsupportedConfigException("max_window_layers", J(MaxWindowLayers), src, "Hugging Face's Mistral does not read it (sliding_window alone sets the window of every layer).");
                if (LayerTypes is not null) throw new UnsupportedConfigException("layer_types", J(LayerTypes), src, "Hugging Face's Mistral does not read it (sliding_window alone sets the window of every layer).");
                break;
            default:
                if (LayerTypes is { } types)
                {
                    if (types.Length != NumHiddenLayers)
                        throw new UnsupportedConfigException("layer_types", J(types), src, $"has {types.Length} entries for {NumHiddenLayers} layers.");
                    foreach (string t in types)
                    {
                        if (t is not ("full_attention" or "sliding_attention"))
                            throw new UnsupportedConfigException("layer_types", J(types), src, $"entry {J(t)} is neither full_attention nor sliding_attention.");
                        if (t == "sliding_attention" && UseSlidingWindow != true)
                            throw new UnsupportedConfigException("layer_types", J(types), src, "a sliding_attention layer needs use_sliding_window true.");
                    }
                }
                if (MaxWindowLayers is < 0) throw new UnsupportedConfigException("max_window_layers", J(MaxWindowLayers), src, "must be ≥ 0.");
                break;
        }
        if (SlidingWindow is <= 0) throw new UnsupportedConfigException("sliding_window", J(SlidingWindow), src, "must be > 0 (null: no window).");
        RotaryEmbedding.Resolve(this, src);
    }

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>
    /// Reads and validates a config.json; errors name the file. Keys absent from the file take Hugging Face's defaults
    /// where they differ by family: Mistral's sliding_window 4096, max_position_embeddings (Mistral
    /// 131072, Qwen2/Qwen3 32768).
    /// </summary>
    public static ModelConfig Load(string path)
    {
        ModelConfig? c;
        try
        {
            string text = File.ReadAllText(path);
            c = JsonSerializer.Deserialize<ModelConfig>(text, Json);
            if (c is not null)
            {
                using var doc = JsonDocument.Parse(text);
                bool Has(string key) => doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(key, out _);
                if (c.ModelType == "mistral" && !Has("sliding_window")) c = c with { SlidingWindow = 4096 };
                if (!Has("max_position_embeddings"))
                    c = c.ModelType switch
                    {
                        "mistral" => c with { MaxPositionEmbeddings = 4096 * 32 },
                        "qwen2" or "qwen3" => c with { MaxPositionEmbeddings = 32768 },
                        _ => c,
                    };
            }
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid config.json ({e.Message}).", e);
        }
        if (c is null) throw new InvalidDataException($"{path}: config.json is empty.");
        Sources.AddOrUpdate(c, new SourcePath(path));
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
