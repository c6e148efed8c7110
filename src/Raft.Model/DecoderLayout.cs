using System.Collections.Immutable;

namespace Raft.Model;

/// <summary>What a parameter tensor is: how a fresh model initializes it and which kind of op reads it.</summary>
public enum TensorRole
{
    /// <summary>A matrix: the token embedding, a projection, lm_head (initialized normal(0, 0.02)).</summary>
    Matrix,
    /// <summary>An RMSNorm's scale vector (initialized to ones).</summary>
    NormWeight,
    /// <summary>A projection's bias vector (initialized to zeros).</summary>
    Bias,
}

/// <summary>One parameter tensor of a <see cref="DecoderLayout"/>: its Hugging Face name, its shape and its role.</summary>
public sealed class TensorSpec
{
    internal TensorSpec(string name, TensorRole role, params int[] shape)
    {
        Name = name;
        Role = role;
        Shape = [.. shape];
    }

    /// <summary>The Hugging Face name, as a checkpoint spells it.</summary>
    public string Name { get; }
    /// <summary>The shape, outermost first (a projection is [out, in], as Hugging Face stores it).</summary>
    public ImmutableArray<int> Shape { get; }
    /// <summary>What the tensor is.</summary>
    public TensorRole Role { get; }
    /// <summary>Number of values.</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (int s in Shape) n *= s;
            return n;
        }
    }

    /// <summary>The shape as text, e.g. [32000, 512].</summary>
    public string ShapeText => $"[{string.Join(", ", Shape)}]";

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {ShapeText}";
}

/// <summary>
/// The switches of one decoder layer that change its math (not only its tensor names), each with the optional tensors it
/// brings on <see cref="DecoderLayerLayout"/>, so that an implementation learns of a layer's math from this record alone.
/// </summary>
/// <param name="QkvBias">The q, k and v projections carry a bias (Qwen2; Llama's and Qwen3's <c>attention_bias</c>).</param>
/// <param name="OutputBias">o_proj carries a bias (Llama's and Qwen3's <c>attention_bias</c>).</param>
/// <param name="MlpBias">gate, up and down_proj carry a bias (Llama's <c>mlp_bias</c>).</param>
/// <param name="QkNorm">q and k are RMS-normalised per head (width head_dim, weights q_norm / k_norm) before RoPE (Qwen3).</param>
/// <param name="SlidingWindow">The attention window (key j visible to query i iff j ≤ i and i − j &lt; window); null: full causal.</param>
public sealed record DecoderLayerFeatures(bool QkvBias, bool OutputBias = false, bool MlpBias = false, bool QkNorm = false,
    int? SlidingWindow = null);

/// <summary>
/// One decoder layer of a <see cref="DecoderLayout"/>: its features and the Hugging Face name of each of its tensors.
/// The math, in the order an implementation runs it: q = q_proj(n₁) (+ b), k, v likewise, with n₁ = input_layernorm(x);
/// with <see cref="DecoderLayerFeatures.QkNorm"/> q ← q_norm(q), k ← k_norm(k) per head; then
/// x += o_proj(attention(rope(q), rope(k), v)) (+ b), the attention causal and, with a window, limited to it; then
/// x += down_proj(silu(gate_proj(n₂)) ⊙ up_proj(n₂)) (each + b with <see cref="DecoderLayerFeatures.MlpBias"/>) with
/// n₂ = post_attention_layernorm(x). An optional tensor's name is null when the layer does not have it.
/// </summary>
public sealed class DecoderLayerLayout
{
    internal DecoderLayerLayout(int index, DecoderLayerFeatures features, int hidden, int queryWidth, int kvWidth, int intermediate, int headDim)
    {
        Index = index;
        Features = features;
        Prefix = $"model.layers.{index}.";
        string p = Prefix;
        var list = new List<TensorSpec>();
        string Add(string name, TensorRole role, params int[] shape)
        {
            list.Add(new TensorSpec(p + name, role, shape));
            return p + name;
        }
        // checkpoint order; it keeps q, k, v adjacent, their biases adjacent, gate, up adjacent and their biases adjacent
        // (see QkvProjections, GateUpProjections)
        InputNorm = Add("input_layernorm.weight", TensorRole.NormWeight, hidden);
        QProj = Add("self_attn.q_proj.weight", TensorRole.Matrix, queryWidth, hidden);
        KProj = Add("self_attn.k_proj.weight", TensorRole.Matrix, kvWidth, hidden);
        VProj = Add("self_attn.v_proj.weight", TensorRole.Matrix, kvWidth, hidden);
        if (features.QkvBias)
        {
            QBias = Add("self_attn.q_proj.bias", TensorRole.Bias, queryWidth);
            KBias = Add("self_attn.k_proj.bias", TensorRole.Bias, kvWidth);
            VBias = Add("self_attn.v_proj.bias", TensorRole.Bias, kvWidth);
        }
        if (features.QkNorm)
        {
            QNorm = Add("self_attn.q_norm.weight", TensorRole.NormWeight, headDim);
            KNorm = Add("self_attn.k_norm.weight", TensorRole.NormWeight, headDim);
        }
        OProj = Add("self_attn.o_proj.weight", TensorRole.Matrix, hidden, queryWidth);
        if (features.OutputBias) OBias = Add("self_attn.o_proj.bias", TensorRole.Bias, hidden);
        PostAttentionNorm = Add("post_attention_layernorm.weight", TensorRole.NormWeight, hidden);
        GateProj = Add("mlp.gate_proj.weight", TensorRole.Matrix, intermediate, hidden);
        UpProj = Add("mlp.up_proj.weight", TensorRole.Matrix, intermediate, hidden);
        if (features.MlpBias)
        {
            GateBias = Add("mlp.gate_proj.bias", TensorRole.Bias, intermediate);
            UpBias = Add("mlp.up_proj.bias", TensorRole.Bias, intermediate);
        }
        DownProj = Add("mlp.down_proj.weight", TensorRole.Matrix, hidden, intermediate);
        if (features.MlpBias) DownBias = Add("mlp.down_proj.bias", TensorRole.Bias, hidden);
        Tensors = list;
        QkvProjections = [QProj, KProj, VProj];
        QkvBiases = features.QkvBias ? [QBias!, KBias!, VBias!] : null;
        GateUpProjections = [GateProj, UpProj];
        GateUpBiases = features.MlpBias ? [GateBias!, UpBias!] : null;
    }

    /// <summary>The layer's index, 0 first.</summary>
    public int Index { get; }
    /// <summary>What changes this layer's math.</summary>
    public DecoderLayerFeatures Features { get; }
    /// <summary>The prefix every one of the layer's tensor names starts with (e.g. <c>model.layers.3.</c>).</summary>
    public string Prefix { get; }

    /// <summary>RMSNorm weight before attention [hidden].</summary>
    public string InputNorm { get; }
    /// <summary>Query projection [heads·head_dim, hidden].</summary>
    public string QProj { get; }
    /// <summary>Key projection [kv_heads·head_dim, hidden].</summary>
    public string KProj { get; }
    /// <summary>Value projection [kv_heads·head_dim, hidden].</summary>
    public string VProj { get; }
    /// <summary>Query bias [heads·head_dim], or null without <see cref="DecoderLayerFeatures.QkvBias"/>.</summary>
    public string? QBias { get; }
    /// <summary>Key bias [kv_heads·head_dim], or null without <see cref="DecoderLayerFeatures.QkvBias"/>.</summary>
    public string? KBias { get; }
    /// <summary>Value bias [kv_heads·head_dim], or null without <see cref="DecoderLayerFeatures.QkvBias"/>.</summary>
    public string? VBias { get; }
    /// <summary>Per-head query RMSNorm weight [head_dim], or null without <see cref="DecoderLayerFeatures.QkNorm"/>.</summary>
    public string? QNorm { get; }
    /// <summary>Per-head key RMSNorm weight [head_dim], or null without <see cref="DecoderLayerFeatures.QkNorm"/>.</summary>
    public string? KNorm { get; }
    /// <summary>Attention output projection [hidden, heads·head_dim].</summary>
    public string OProj { get; }
    /// <summary>o_proj's bias [hidden], or null without <see cref="DecoderLayerFeatures.OutputBias"/>.</summary>
    public string? OBias { get; }
    /// <summary>RMSNorm weight before the MLP [hidden].</summary>
    public string PostAttentionNorm { get; }
    /// <summary>SwiGLU gate projection [intermediate, hidden].</summary>
    public string GateProj { get; }
    /// <summary>SwiGLU up projection [intermediate, hidden].</summary>
    public string UpProj { get; }
    /// <summary>gate_proj's bias [intermediate], or null without <see cref="DecoderLayerFeatures.MlpBias"/>.</summary>
    public string? GateBias { get; }
    /// <summary>up_proj's bias [intermediate], or null without <see cref="DecoderLayerFeatures.MlpBias"/>.</summary>
    public string? UpBias { get; }
    /// <summary>SwiGLU down projection [hidden, intermediate].</summary>
    public string DownProj { get; }
    /// <summary>down_proj's bias [hidden], or null without <see cref="DecoderLayerFeatures.MlpBias"/>.</summary>
    public string? DownBias { get; }

    /// <summary>
    /// The projections that read the same input (n₁) and may run as one matrix [q; k; v] stacked by rows: q, k, v, in
    /// that order, adjacent in <see cref="Tensors"/> (and so in <see cref="DecoderLayout.Tensors"/>).
    /// </summary>
    public IReadOnlyList<string> QkvProjections { get; }
    /// <summary>The biases of <see cref="QkvProjections"/>, in the same order and adjacent; null when the layer has none.</summary>
    public IReadOnlyList<string>? QkvBiases { get; }
    /// <summary>The projections that read n₂ and may run as one matrix [gate; up]: gate, up, in that order, adjacent.</summary>
    public IReadOnlyList<string> GateUpProjections { get; }
    /// <summary>The biases of <see cref="GateUpProjections"/>, in the same order and adjacent; null when the layer has none.</summary>
    public IReadOnlyList<string>? GateUpBiases { get; }

    /// <summary>Every tensor of the layer, in checkpoint order.</summary>
    public IReadOnlyList<TensorSpec> Tensors { get; }
}

/// <summary>
/// The one description of a Llama-family decoder's parameters, built from a <see cref="ModelConfig"/>: every tensor's
/// Hugging Face name and shape (the token embedding, each layer's tensors, the final norm, lm_head unless it is tied to the
/// embedding) and the features that change the math (tied embeddings and head_dim here, q/k/v bias per layer in
/// <see cref="DecoderLayerLayout.Features"/>). Every implementation of the decoder — <see cref="LlamaModel"/>,
/// <see cref="ReferenceModel"/>, the GPU model, the ONNX exporter — and the checkpoint reader read their names here, so a
/// new architecture is described once. Model-wide features a later architecture adds (rope scaling, the MLP's activation)
/// belong on this type; per-layer ones on <see cref="DecoderLayerFeatures"/>.
/// </summary>
public sealed class DecoderLayout
{
    private const string RotaryInvFreqSuffix = ".rotary_emb.inv_freq";
    private const string LmHeadName = "lm_head.weight";

    private readonly Dictionary<string, TensorSpec> _byName = new(StringComparer.Ordinal);

    private DecoderLayout(ModelConfig config)
    {
        Config = config;
        int d = config.HiddenSize, q = config.NumAttentionHeads * config.HeadDim, kv = config.KvHeads * config.HeadDim;
        int f = config.IntermediateSize;
        HeadDim = config.HeadDim;
        TiedEmbeddings = config.TieWordEmbeddings;
        Embedding = new TensorSpec("model.embed_tokens.weight", TensorRole.Matrix, config.VocabSize, d);
        var layers = new DecoderLayerLayout[config.NumHiddenLayers];
        Rope = RotaryEmbedding.Resolve(config, config.Source);
        for (int i = 0; i < layers.Length; i++)
        {
            var features = new DecoderLayerFeatures(QkvBias: config.QkvBias, OutputBias: config.OutputBias,
                MlpBias: config.MlpBiasResolved, QkNorm: config.QkNorm, SlidingWindow: config.SlidingWindowOf(i));
            layers[i] = new DecoderLayerLayout(i, features, d, q, kv, f, config.HeadDim);
        }
        Layers = layers;
        FinalNorm = new TensorSpec("model.norm.weight", TensorRole.NormWeight, d);
        LmHead = TiedEmbeddings ? null : new TensorSpec(LmHeadName, TensorRole.Matrix, config.VocabSize, d);

        var all = new List<TensorSpec> { Embedding };
        foreach (var l in layers) all.AddRange(l.Tensors);
        all.Add(FinalNorm);
        if (LmHead is not null) all.Add(LmHead);
        Tensors = all;
        foreach (var t in all) _byName.Add(t.Name, t);
    }

    /// <summary>The layout of <paramref name="config"/>, which is validated first (<see cref="ModelConfig.Validate"/>).</summary>
    public static DecoderLayout For(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        return new DecoderLayout(config);
    }

    /// <summary>The config this layout describes.</summary>
    public ModelConfig Config { get; }
    /// <summary>Per-head width of q, k and v (config.json's <c>head_dim</c>, or hidden_size / num_attention_heads).</summary>
    public int HeadDim { get; }
    /// <summary>The output projection is the token embedding (<see cref="LmHead"/> is then null).</summary>
    public bool TiedEmbeddings { get; }
    /// <summary>The rotary embedding (rope_scaling / rope_parameters resolved): every implementation's cos/sin tables.</summary>
    public RotaryEmbedding Rope { get; }
    /// <summary>Whether any layer has a sliding attention window.</summary>
    public bool HasSlidingWindow => Layers.Any(l => l.Features.SlidingWindow is not null);

    /// <summary>Token embedding [vocab, hidden].</summary>
    public TensorSpec Embedding { get; }
    /// <summary>The decoder layers, 0 first.</summary>
    public IReadOnlyList<DecoderLayerLayout> Layers { get; }
    /// <summary>The final RMSNorm weight [hidden].</summary>
    public TensorSpec FinalNorm { get; }
    /// <summary>The separate output projection [vocab, hidden]; null when tied to the embedding.</summary>
    public TensorSpec? LmHead { get; }
    /// <summary>The tensor the output projection reads: <see cref="LmHead"/>'s name, or the embedding's when tied.</summary>
    public string OutputProjection => LmHead?.Name ?? Embedding.Name;

    /// <summary>Every tensor, in a stable order (the checkpoint order): embedding, layer 0 … layer L−1, final norm, lm_head.</summary>
    public IReadOnlyList<TensorSpec> Tensors { get; }

    /// <summary>Whether <paramref name="name"/> is one of <see cref="Tensors"/>.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Looks a tensor up by name.</summary>
    public bool TryGet(string name, out TensorSpec spec) => _byName.TryGetValue(name, out spec!);

    /// <summary>
    /// Whether a checkpoint may hold <paramref name="name"/> although it is not one of <see cref="Tensors"/>: a tied model's
    /// lm_head.weight and rotary <c>inv_freq</c> buffers (which are recomputed, not read).
    /// </summary>
    public bool IsIgnorable(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return (name == LmHeadName && TiedEmbeddings) || name.EndsWith(RotaryInvFreqSuffix, StringComparison.Ordinal);
    }
}
