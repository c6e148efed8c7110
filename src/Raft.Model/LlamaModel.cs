using System.Numerics.Tensors;
using Raft.Model.Ops;

namespace Raft.Model;

/// <summary>
/// A Llama-family decoder (Llama 2/3, SmolLM2, TinyLlama, Mistral, Qwen2, Qwen3) in fp32 on the CPU, matching
/// Hugging Face transformers: token embedding; per layer x += o(attn(rope(q(n₁)), rope(k(n₁)), v(n₁))) with
/// n₁ = RMSNorm(x), then x += down(silu(gate(n₂)) ⊙ up(n₂)) with n₂ = RMSNorm(x); a final RMSNorm; lm_head (or
/// the tied embedding). Each layer's features (<see cref="DecoderLayerFeatures"/>: biases, Qwen3's per-head q/k norm, a
/// sliding window) and the rotary embedding's variant (<see cref="RotaryEmbedding"/>) are the layout's. Forward, backward (from dL/dlogits) and KV-cache decoding. Buffers are kept per
/// instance, so one instance must not run two calls at once; results are deterministic for a given
/// <see cref="Threads"/> (in fact for any thread count). <see cref="ReferenceModel"/> is the specification.
/// </summary>
public sealed class LlamaModel
{
    private sealed class LayerWeights
    {
        public required float[] Ln1, Wq, Wk, Wv, Wo, Ln2, Wg, Wu, Wd;
        public float[]? Bq, Bk, Bv, Bo, Bg, Bu, Bd, Qn, Kn;
        /// <summary>
        /// The projections kept in 16 bits (inference-only models) or their 16-bit compute copies (mixed precision,
        /// <see cref="SetComputeDType"/>); null where the fp32 array is used.
        /// </summary>
        public HalfMatrix? Hq, Hk, Hv, Ho, Hg, Hu, Hd;
        /// <summary>The layer's tensor names and features (the gradient set is looked up by the names).</summary>
        public required DecoderLayerLayout Names;
    }

    private readonly DecoderLayout _layout;
    private readonly LayerWeights[] _layers;
    private readonly float[] _embed, _norm, _lmHead;
    private HalfMatrix? _embedH, _lmHeadH;
    // 16-bit compute copies of fp32 matrices (mixed precision), each with the fp32 master it rounds; not in _half
    private readonly Dictionary<HalfMatrix, float[]> _computeCopies = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, HalfMatrix> _half = new(StringComparer.Ordinal);
    private readonly RopeTable _rope;
    private readonly int _d, _h, _kv, _hd, _f, _v;
    private readonly float _eps;

    // inference scratch (one layer's buffers reused by every layer) and backward scratch
    private readonly LayerBuffers _scratch = new();
    private float[] _x = [], _tmp = [], _xf = [], _rf = [], _xnf = [];
    private float[] _dQn = [], _dHidden = [], _dX = [], _dXn = [], _dF1 = [], _dF2 = [], _dF3 = [], _dQ = [], _dK = [], _dV = [];
    private int[] _pos = [];

    /// <summary>
    /// Wraps existing parameters (Hugging Face names, see <see cref="DecoderLayout"/>); every expected
    /// tensor must be present with its shape, or the error names the tensor. The arrays are used in place (not copied).
    /// </summary>
    public LlamaModel(ModelConfig config, TensorSet parameters) : this(config, parameters, []) { }

    /// <summary>
    /// A model whose matrices (embedding, projections, lm_head: any of them) are given as 16-bit
    /// <paramref name="halfMatrices"/> (BF16 or F16 as stored), the other tensors (norms, biases) in
    /// <paramref name="parameters"/> as fp32. The matmuls widen the 16-bit weights in registers and accumulate in fp32
    /// (<see cref="Ops.HalfMatmul"/>); the forward is that of the fp32 model over the exactly widened weights, up to
    /// fp32 summation order. The 16-bit matrices are frozen: a backward runs through them (dx = dy·W, W widened inside
    /// the kernel) and gives gradients for the fp32 tensors and LoRA adapters only (a frozen LoRA base kept as stored).
    /// With no half matrices this is the fp32 model.
    /// </summary>
    public LlamaModel(ModelConfig config, TensorSet parameters, IEnumerable<HalfMatrix> halfMatrices)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(halfMatrices);
        var layout = DecoderLayout.For(config);
        foreach (var h in halfMatrices)
        {
            if (!layout.Contains(h.Name))
                throw new ArgumentException($"16-bit matrix {h.Name} is not part of this {config.ModelType} architecture.", nameof(halfMatrices));
            if (!_half.TryAdd(h.Name, h))
                throw new ArgumentException($"16-bit matrix {h.Name} is given twice.", nameof(halfMatrices));
            if (parameters.TryGet(h.Name, out _))
                throw new ArgumentException($"tensor {h.Name} is given both as fp32 and as a 16-bit matrix.", nameof(halfMatrices));
        }
        foreach (var spec in layout.Tensors)
        {
            if (_half.TryGetValue(spec.Name, out var hm))
            {
                if (spec.Role != TensorRole.Matrix)
                    throw new ArgumentException($"tensor {spec.Name} is a {spec.Role}, only matrices can be kept in 16 bits.", nameof(halfMatrices));
                if (!hm.Shape.AsSpan().SequenceEqual(spec.Shape.AsSpan()))
                    throw new ArgumentException($"16-bit matrix {spec.Name} has shape {hm.ShapeText}, expected {spec.ShapeText}.", nameof(halfMatrices));
                continue;
            }
            if (!parameters.TryGet(spec.Name, out var t))
                throw new ArgumentException($"parameter tensor {spec.Name} is missing (expected shape {spec.ShapeText}).", nameof(parameters));
            if (!t.Shape.AsSpan().SequenceEqual(spec.Shape.AsSpan()))
                throw new ArgumentException($"parameter tensor {spec.Name} has shape {t.ShapeText}, expected {spec.ShapeText}.", nameof(parameters));
        }
        // A bias this architecture does not apply would be silently ignored and give wrong logits, so it is an error.
        foreach (var t in parameters.Tensors)
            if (t.Name.EndsWith(".bias", StringComparison.Ordinal) && !layout.Contains(t.Name))
                throw new ArgumentException($"parameter tensor {t.Name} is not part of this {config.ModelType} architecture " +
                    "(config.json's attention_bias and mlp_bias say which projections carry a bias).", nameof(parameters));
        Config = config;
        Parameters = parameters;
        _layout = layout;
        _d = config.HiddenSize; _h = config.NumAttentionHeads; _kv = config.KvHeads; _hd = layout.HeadDim;
        _f = config.IntermediateSize; _v = config.VocabSize; _eps = (float)config.RmsNormEps;
        float[] F32(string n) => parameters.TryGet(n, out var t) ? t.Data : [];
        HalfMatrix? H16(string? n) => n is not null && _half.TryGetValue(n, out var h) ? h : null;
        _embed = F32(layout.Embedding.Name);
        _norm = parameters[layout.FinalNorm.Name].Data;
        _lmHead = F32(layout.OutputProjection);
        _embedH = H16(layout.Embedding.Name);
        _lmHeadH = H16(layout.OutputProjection);
        _rope = new RopeTable(layout.Rope, layout.Rope.MaxPositionEmbeddings);
        _layers = new LayerWeights[layout.Layers.Count];
        for (int i = 0; i < _layers.Length; i++)
        {
            var names = layout.Layers[i];
            float[] W(string n) => F32(n);
            float[]? Optional(string? n) => n is null ? null : parameters[n].Data;
            _layers[i] = new LayerWeights
            {
                Ln1 = W(names.InputNorm), Wq = W(names.QProj), Wk = W(names.KProj),
                Wv = W(names.VProj), Wo = W(names.OProj), Ln2 = W(names.PostAttentionNorm),
                Wg = W(names.GateProj), Wu = W(names.UpProj), Wd = W(names.DownProj),
                Bq = Optional(names.QBias), Bk = Optional(names.KBias), Bv = Optional(names.VBias),
                Bo = Optional(names.OBias), Bg = Optional(names.GateBias), Bu = Optional(names.UpBias), Bd = Optional(names.DownBias),
                Qn = Optional(names.QNorm), Kn = Optional(names.KNorm),
                Hq = H16(names.QProj), Hk = H16(names.KProj), Hv = H16(names.VProj), Ho = H16(names.OProj),
                Hg = H16(names.GateProj), Hu = H16(names.UpProj), Hd = H16(names.DownProj),
                Names = names,
            };
        }
    }

    /// <summary>
    /// A freshly initialized model: normal(0, 0.02) for matrices (embedding, projections, lm_head), ones for
    /// the norm weights, zeros for biases (by <see cref="TensorSpec.Role"/>, in <see cref="DecoderLayout.Tensors"/> order);
    /// deterministic for a seed.
    /// </summary>
    public static LlamaModel CreateRandom(ModelConfig config, int seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        var rng = new Random(seed);
        var set = new TensorSet();
        foreach (var spec in DecoderLayout.For(config).Tensors)
        {
            var t = Tensor.Zeros(spec.Name, spec.Shape.ToArray());
            if (spec.Role == TensorRole.NormWeight) t.Data.AsSpan().Fill(1f);
            else if (spec.Role == TensorRole.Matrix)
                for (int i = 0; i < t.Data.Length; i++) t.Data[i] = (float)(0.02 * Gaussian(rng));
            set.Add(t);
        }
        return new LlamaModel(config, set);
    }

    private static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>The architecture.</summary>
    public ModelConfig Config { get; }
    /// <summary>The architecture's tensor names, shapes and per-layer features.</summary>
    public DecoderLayout Layout => _layout;
    /// <summary>The parameters (Hugging Face names), used in place: an optimizer may update them between calls.</summary>
    public TensorSet Parameters { get; }
    /// <summary>The matrices kept in 16 bits (empty for an fp32 model); <see cref="Parameters"/> holds the other tensors.</summary>
    public IReadOnlyDictionary<string, HalfMatrix> HalfMatrices => _half;
    /// <summary>
    /// True when some weights are 16-bit. Those are frozen: a backward computes the input gradients through them (widened
    /// inside the kernel) but never their own gradient, so only the fp32 tensors (and LoRA adapters) can be trained.
    /// </summary>
    public bool IsInferenceOnly => _half.Count > 0;
    /// <summary>How the matrices are held, for logs: "fp32", "bf16", "fp16" or a mix ("bf16+fp32").</summary>
    public string WeightsDescription
    {
        get
        {
            var kinds = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var h in _half.Values) kinds.Add(h.DType == SafeTensorDType.BF16 ? "bf16" : "fp16");
            if (_layout.Tensors.Any(t => t.Role == TensorRole.Matrix && !_half.ContainsKey(t.Name))) kinds.Add("fp32");
            return string.Join("+", kinds);
        }
    }
    /// <summary>Threads for the ops; 0 (the default) uses every core.</summary>
    public int Threads { get; set; }

    /// <summary>
    /// The 16-bit dtype the matmuls compute with while the weights stay fp32 (mixed precision), or null (the default):
    /// see <see cref="SetComputeDType"/>.
    /// </summary>
    public SafeTensorDType? ComputeDType { get; private set; }

    /// <summary>
    /// Mixed precision: with <paramref name="dtype"/> BF16 (or F16) every fp32 matrix (embedding, projections, lm_head;
    /// a tied embedding has one copy) gets a 16-bit compute copy, rounded to nearest even, that the forward and the input
    /// gradients use through <see cref="Ops.HalfMatmul"/> (widened in registers, fp32 accumulation); activations, norms
    /// and the loss stay fp32, and the weight gradients accumulate in fp32 from fp32 activations — the forward and
    /// gradients of the fp32 model at the rounded weights (torch.autocast rounds the activations at each matmul too and
    /// looks the embedding up in fp32: this is the closer-to-fp32 variant). The fp32 arrays in
    /// <see cref="Parameters"/> stay the master weights an optimizer updates: call <see cref="RefreshComputeCopies"/>
    /// after each update. Null (or F32) removes the copies. Matrices the model holds in 16 bits already are unchanged.
    /// </summary>
    public void SetComputeDType(SafeTensorDType? dtype)
    {
        if (dtype == SafeTensorDType.F32) dtype = null;
        var old = new HashSet<HalfMatrix>(_computeCopies.Keys, ReferenceEqualityComparer.Instance);
        _computeCopies.Clear();
        ForEachMatrixSlot((ref HalfMatrix? h, float[] w, string name) =>
        {
            if (h != null && old.Contains(h)) h = null;
            if (dtype is { } d && h == null && w.Length > 0)
            {
                // a tied embedding is one array: its lookup and lm_head share one copy
                h = _computeCopies.FirstOrDefault(c => ReferenceEquals(c.Value, w)).Key ?? HalfMatrix.FromSingle(Parameters[name], d);
                _computeCopies.TryAdd(h, w);
            }
        });
        ComputeDType = dtype;
    }

    /// <summary>
    /// Re-rounds the compute copies from their fp32 masters (after an optimizer step): every copy, or those whose
    /// tensor name <paramref name="which"/> accepts (the trained ones); nothing without copies.
    /// </summary>
    public void RefreshComputeCopies(Func<string, bool>? which = null)
    {
        if (_computeCopies.Count == 0) return;
        var copies = _computeCopies.Where(c => which is null || which(c.Key.Name)).ToArray();
        var po = new ParallelOptions { MaxDegreeOfParallelism = Threads > 0 ? Threads : Environment.ProcessorCount };
        Parallel.For(0, copies.Length, po, i =>
        {
            var (h, w) = copies[i];
            if (h.DType == SafeTensorDType.BF16) SafeTensorDTypes.SingleToBFloat16(w, h.Bits);
            else for (int j = 0; j < w.Length; j++) h.Bits[j] = BitConverter.HalfToUInt16Bits((Half)w[j]);
        });
    }

    private delegate void MatrixSlot(ref HalfMatrix? h, float[] w, string name);

    /// <summary>Every matrix the matmuls read: its 16-bit slot, its fp32 array (empty when held in 16 bits) and name.</summary>
    private void ForEachMatrixSlot(MatrixSlot f)
    {
        foreach (var w in _layers)
        {
            var n = w.Names;
            f(ref w.Hq, w.Wq, n.QProj); f(ref w.Hk, w.Wk, n.KProj); f(ref w.Hv, w.Wv, n.VProj); f(ref w.Ho, w.Wo, n.OProj);
            f(ref w.Hg, w.Wg, n.GateProj); f(ref w.Hu, w.Wu, n.UpProj); f(ref w.Hd, w.Wd, n.DownProj);
        }
        f(ref _embedH, _embed, _layout.Embedding.Name);
        f(ref _lmHeadH, _lmHead, _layout.OutputProjection);
    }

    private LoraAdapters? _lora;

    /// <summary>
    /// LoRA adapters applied after the base projections they wrap (null: none, the default). With adapters attached a
    /// backward may be given gradients for the adapter tensors only: base tensors absent from the gradient set are frozen
    /// and get no gradient computed. The adapters must have been made for this model's layout.
    /// </summary>
    public LoraAdapters? Lora
    {
        get => _lora;
        set
        {
            if (value is not null)
                foreach (var m in value.Modules)
                {
                    // by the layout, so that a model with 16-bit matrices (not in Parameters) takes adapters too
                    if (!_layout.TryGet(m.BaseName, out var spec) || spec.Shape.Length != 2 || spec.Shape[0] != m.Out || spec.Shape[1] != m.In || m.Layer >= _layers.Length)
                        throw new ArgumentException($"the adapter for {m.BaseName} expects [{m.Out}, {m.In}], the model has {(spec is null ? "no such tensor" : spec.ShapeText)}.", nameof(value));
                }
            if (value is not null && value.Layout.Layers.Count != _layers.Length)
                throw new ArgumentException($"the adapters were made for {value.Layout.Layers.Count} layers, the model has {_layers.Length}.", nameof(value));
            _lora = value;
        }
    }

    /// <summary>The adapter record of this forward (null when no adapter runs); marks the activations' record.</summary>
    private LoraRecord? LoraRecordFor(ModelActivations? rec)
    {
        bool on = _lora is { Enabled: true };
        if (rec == null) return null;
        if (!on)
        {
            if (rec.Lora != null) rec.Lora.Enabled = false;
            return null;
        }
        if (rec.Lora == null || !ReferenceEquals(rec.Lora.Owner, _lora)) rec.Lora = new LoraRecord(_lora!, _layers.Length);
        rec.Lora.Enabled = true;
        rec.Lora.Dropout = _lora!.DropoutActive(recording: true);
        rec.Lora.KeepStep = _lora.DropoutStep;
        return rec.Lora;
    }

    /// <summary>
    /// Full forward of B sequences of length T: tokens [B·T] → logits [B·T, V] (a new array). When
    /// <paramref name="activations"/> is given it records what <see cref="Backward(ModelActivations, ReadOnlySpan{float}, TensorSet)"/> needs. Positions default
    /// to 0..T-1 per sequence; explicit <paramref name="positions"/> [B·T] change RoPE only (the mask stays causal by index).
    /// </summary>
    public float[] Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, ModelActivations? activations = null,
        ReadOnlySpan<int> positions = default)
    {
        var logits = new float[(long)batch * seqLen * _v];
        Forward(tokens, batch, seqLen, logits, activations, positions);
        return logits;
    }

    /// <summary>As <see cref="Forward(ReadOnlySpan{int}, int, int, ModelActivations?, ReadOnlySpan{int})"/>, into logits [B·T, V].</summary>
    public void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, Span<float> logits, ModelActivations? activations = null,
        ReadOnlySpan<int> positions = default)
    {
        int n = batch * seqLen;
        if (logits.Length < (long)n * _v) throw new ArgumentException($"logits has {logits.Length} values, needs [{n}, {_v}].", nameof(logits));
        var pos = PrepareForward(tokens, batch, seqLen, activations, positions);
        Run(tokens, batch, seqLen, pos, null, activations, logits, lastOnly: false);
        FinishForward(tokens, activations);
    }

    /// <summary>Checks a full forward's arguments, readies the record and returns the positions.</summary>
    private int[] PrepareForward(ReadOnlySpan<int> tokens, int batch, int seqLen, ModelActivations? activations, ReadOnlySpan<int> positions)
    {
        CheckBatch(tokens, batch, seqLen);
        int n = batch * seqLen;
        if (!positions.IsEmpty && positions.Length != n)
            throw new ArgumentException($"positions has {positions.Length} values, needs [B·T] = {n}.", nameof(positions));
        if (activations != null)
        {
            activations.Ensure(Config, n, batch, seqLen, this);
            activations.Batch = batch; activations.SeqLen = seqLen; activations.IsFilled = false;
            if (activations.Tokens.Length != n) activations.Tokens = new int[n];
            if (activations.Positions.Length != n) activations.Positions = new int[n];
        }
        return PositionsFor(positions, batch, seqLen, 0, activations?.Positions);
    }

    private static void FinishForward(ReadOnlySpan<int> tokens, ModelActivations? activations)
    {
        if (activations == null) return;
        tokens.CopyTo(activations.Tokens);
        activations.IsFilled = true;
    }

    private void CheckBatch(ReadOnlySpan<int> tokens, int batch, int seqLen)
    {
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be > 0.");
        if (seqLen <= 0) throw new ArgumentOutOfRangeException(nameof(seqLen), seqLen, "seqLen must be > 0.");
        if (tokens.Length != (long)batch * seqLen)
            throw new ArgumentException($"tokens has {tokens.Length} values, needs [B·T] = [{batch}·{seqLen}].", nameof(tokens));
    }

    private int[] PositionsFor(ReadOnlySpan<int> explicitPositions, int batch, int t, int offset, int[]? into)
    {
        int n = batch * t;
        int[] pos = into ?? (_pos.Length == n ? _pos : (_pos = new int[n]));
        if (!explicitPositions.IsEmpty) explicitPositions.CopyTo(pos);
        else
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < t; i++) pos[b * t + i] = offset + i;
        return pos;
    }

    /// <summary>A KV cache for <paramref name="batch"/> sequences of up to <paramref name="capacity"/> positions.</summary>
    public KvCache CreateKvCache(int batch, int capacity) => new(Config, batch, capacity);

    /// <summary>
    /// Runs a prompt [B·T0] through the model, appending its keys/values to the cache (after whatever it already
    /// holds), and writes the logits of each sequence's last position: lastLogits [B, V].
    /// </summary>
    public void Prefill(KvCache cache, ReadOnlySpan<int> tokens, int seqLen, Span<float> lastLogits)
    {
        ArgumentNullException.ThrowIfNull(cache);
        CheckBatch(tokens, cache.Batch, seqLen);
        if (cache.KvHeads != _kv || cache.HeadDim != _hd || cache.Keys.Length != _layers.Length)
            throw new ArgumentException("the cache was made for another architecture.", nameof(cache));
        if (cache.Length + seqLen > cache.Capacity)
            throw new InvalidOperationException($"the KV cache holds {cache.Length} of {cache.Capacity} positions; {seqLen} more do not fit.");
        if (lastLogits.Length < (long)cache.Batch * _v)
            throw new ArgumentException($"lastLogits has {lastLogits.Length} values, needs [{cache.Batch}, {_v}].", nameof(lastLogits));
        var rope = _layout.Rope;
        if (rope.DependsOnLength && cache.Length + seqLen > rope.MaxPositionEmbeddings)
            throw new UnsupportedConfigException(Config.RopeScaling is not null ? "rope_scaling.rope_type" : "rope_parameters.rope_type", "\"dynamic\"", Config.Source,
                $"a KV-cached decode past max_position_embeddings ({rope.MaxPositionEmbeddings}) would keep keys rotated with the " +
                "earlier frequencies, unlike a full forward (Hugging Face's cached decode and its full forward differ there); " +
                "the engine computes the full forward's semantics only, so run a full forward instead of a cached decode.");
        var pos = PositionsFor(default, cache.Batch, seqLen, cache.Length, null);
        Run(tokens, cache.Batch, seqLen, pos, cache, null, lastLogits, lastOnly: true);
        cache.Length += seqLen;
    }

    /// <summary>One decoding step: the next token of each sequence [B] → logits [B, V]; the cache grows by one.</summary>
    public void DecodeStep(KvCache cache, ReadOnlySpan<int> tokens, Span<float> logits) => Prefill(cache, tokens, 1, logits);

    private void Run(ReadOnlySpan<int> tokens, int batch, int t, int[] pos, KvCache? cache, ModelActivations? rec,
        Span<float> logits, bool lastOnly)
    {
        var hidden = RunBody(tokens, batch, t, pos, cache, rec, lastOnly, out int rows);
        Linear(hidden, _lmHead, _lmHeadH, default, logits, rows, _d, _v, Threads);
    }

    /// <summary>
    /// Embedding, the layers and the final norm: returns the normalized final hidden rows [rows, C] (the activations'
    /// record, or this instance's buffer), the input of lm_head.
    /// </summary>
    private Span<float> RunBody(ReadOnlySpan<int> tokens, int batch, int t, int[] pos, KvCache? cache, ModelActivations? rec,
        bool lastOnly, out int rows)
    {
        int n = batch * t, th = Threads;
        long nd = (long)n * _d;
        Buf.Ensure(ref _x, nd);
        Buf.Ensure(ref _tmp, nd);
        var x = _x.AsSpan(0, (int)nd);
        var tmp = _tmp.AsSpan(0, (int)nd);
        if (_embedH != null) Embedding.Forward(tokens, _embedH, x, _v, _d);
        else Embedding.Forward(tokens, _embed, x, _v, _d);
        if (rec == null) _scratch.Ensure(Config, n, n, false);
        var rope = RopeFor(pos);
        var lrec = LoraRecordFor(rec);
        var lora = _lora is { Enabled: true } ? _lora : null;
        for (int l = 0; l < _layers.Length; l++)
        {
            LayerBuffers a;
            if (rec == null) a = _scratch;
            else if (rec.Checkpointed)
            {
                // gradient checkpointing: only the layer's input is kept; the backward recomputes the rest
                x.CopyTo(rec.Layers[l].XIn);
                a = rec.Work;
            }
            else a = rec.Layers[l];
            LayerForward(l, x, tmp, a, batch, t, pos, rope, cache, rec != null, lora, lrec);
        }
        rows = n;
        Span<float> final = x;
        if (lastOnly)
        {
            // keep each sequence's last row: [B, C]
            rows = batch;
            for (int b = 0; b < batch; b++) x.Slice(((b * t) + t - 1) * _d, _d).CopyTo(tmp.Slice(b * _d, _d));
            final = tmp[..(batch * _d)];
        }
        if (rec != null)
        {
            final.CopyTo(rec.XFinal);
            RmsNorm.Forward(final, _norm, rec.XnF, rec.RstdF, rows, _d, _eps, th);
            return rec.XnF.AsSpan(0, rows * _d);
        }
        Buf.Ensure(ref _xnf, (long)rows * _d);
        Buf.Ensure(ref _rf, rows);
        RmsNorm.Forward(final, _norm, _xnf, _rf, rows, _d, _eps, th);
        return _xnf.AsSpan(0, rows * _d);
    }

    /// <summary>Layer l on x [N, C] in place (x += attention, x += MLP), its intermediates in <paramref name="a"/>.</summary>
    private void LayerForward(int l, Span<float> x, Span<float> tmp, LayerBuffers a, int batch, int t, int[] pos, RopeTable rope,
        KvCache? cache, bool recording, LoraAdapters? lora, LoraRecord? lrec)
    {
        int n = batch * t, th = Threads, qw = _h * _hd, kw = _kv * _hd;
        var w = _layers[l];
        if (recording) x.CopyTo(a.XIn);
        // attention block: [B, T, C] → q [B, T, H·hd], k, v [B, T, KV·hd]
        RmsNorm.Forward(x, w.Ln1, a.Xn1, a.Rstd1, n, _d, _eps, th);
        Linear(a.Xn1, w.Wq, w.Hq, w.Bq, a.Q, n, _d, qw, th);
        Linear(a.Xn1, w.Wk, w.Hk, w.Bk, a.K, n, _d, kw, th);
        Linear(a.Xn1, w.Wv, w.Hv, w.Bv, a.V, n, _d, kw, th);
        if (lora != null)
        {
            lora.Forward(l, LoraTarget.QProj, a.Xn1, a.Q, n, lrec, th);
            lora.Forward(l, LoraTarget.KProj, a.Xn1, a.K, n, lrec, th);
            lora.Forward(l, LoraTarget.VProj, a.Xn1, a.V, n, lrec, th);
        }
        if (w.Qn != null)
        {
            // Qwen3: RMSNorm of every head (width head_dim) of q and k before RoPE; the raw projections kept for the backward
            a.Q.AsSpan(0, n * qw).CopyTo(a.QRaw);
            a.K.AsSpan(0, n * kw).CopyTo(a.KRaw);
            RmsNorm.Forward(a.QRaw.AsSpan(0, n * qw), w.Qn, a.Q, a.QRstd, n * _h, _hd, _eps, th);
            RmsNorm.Forward(a.KRaw.AsSpan(0, n * kw), w.Kn!, a.K, a.KRstd, n * _kv, _hd, _eps, th);
        }
        rope.Apply(a.Q.AsSpan(0, n * qw), pos, n, _h, inverse: false, th);
        rope.Apply(a.K.AsSpan(0, n * kw), pos, n, _kv, inverse: false, th);
        int window = w.Names.Features.SlidingWindow ?? 0;
        if (cache != null)
        {
            cache.Write(l, a.K, a.V, t);
            Attention.Forward(a.Q, cache.Keys[l], cache.Values[l], cache.Layout, a.Att, default,
                batch, t, _h, _kv, _hd, cache.Length, th, window);
        }
        else
        {
            Attention.Forward(a.Q, a.K, a.V, KvLayout.Rows(t, _kv, _hd), a.Att, recording ? a.Lse : default,
                batch, t, _h, _kv, _hd, 0, th, window);
        }
        Linear(a.Att, w.Wo, w.Ho, w.Bo, tmp, n, qw, _d, th);
        lora?.Forward(l, LoraTarget.OProj, a.Att, tmp, n, lrec, th);
        Residual.Forward(x, tmp);
        if (recording) x.CopyTo(a.XMid);
        // MLP block: [B, T, C] → [B, T, F] → [B, T, C]
        RmsNorm.Forward(x, w.Ln2, a.Xn2, a.Rstd2, n, _d, _eps, th);
        Linear(a.Xn2, w.Wg, w.Hg, w.Bg, a.G, n, _d, _f, th);
        Linear(a.Xn2, w.Wu, w.Hu, w.Bu, a.U, n, _d, _f, th);
        if (lora != null)
        {
            lora.Forward(l, LoraTarget.GateProj, a.Xn2, a.G, n, lrec, th);
            lora.Forward(l, LoraTarget.UpProj, a.Xn2, a.U, n, lrec, th);
        }
        SwiGlu.Forward(a.G.AsSpan(0, n * _f), a.U.AsSpan(0, n * _f), a.Hh.AsSpan(0, n * _f), th);
        Linear(a.Hh, w.Wd, w.Hd, w.Bd, tmp, n, _f, _d, th);
        lora?.Forward(l, LoraTarget.DownProj, a.Hh, tmp, n, lrec, th);
        Residual.Forward(x, tmp);
    }

    /// <summary>The linear layer on the fp32 weights, or on the 16-bit ones when the model holds them.</summary>
    private static void Linear(ReadOnlySpan<float> x, float[] w, HalfMatrix? h, ReadOnlySpan<float> bias, Span<float> y, int n, int k, int m, int threads)
    {
        if (h != null) HalfMatmul.Forward(x, h, bias, y, n, k, m, threads);
        else Matmul.Forward(x, w, bias, y, n, k, m, threads);
    }

    /// <summary>
    /// Backward of <see cref="Linear"/>: dx (=, or += with <paramref name="accumulateDx"/>), dW += and db +=; a 16-bit
    /// (frozen) weight gives dx only, widened inside the kernel (<see cref="HalfMatmul.BackwardInput"/>).
    /// </summary>
    private static void LinearBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, float[] w, HalfMatrix? h, Span<float> dx, Span<float> dw,
        Span<float> db, int n, int k, int m, int threads, bool accumulateDx = false)
    {
        if (h == null) { Matmul.Backward(dy, x, w, dx, dw, db, n, k, m, threads, accumulateDx); return; }
        if (!dx.IsEmpty) HalfMatmul.BackwardInput(dy, h, dx, n, k, m, threads, accumulateDx);
        if (!dw.IsEmpty)
        {
            // a compute copy (mixed precision): dW and db do not read W, so the fp32 kernel gives them from dy and x
            if (w.Length == 0) throw new InvalidOperationException($"{h.Name} is held in 16 bits (frozen): it gets no gradient.");
            Matmul.Backward(dy, x, w, default, dw, db, n, k, m, threads);
        }
        else if (!db.IsEmpty)
            for (int r = 0; r < n; r++) Vec.AddInPlace(db[..m], dy.Slice(r * m, m));
    }

    /// <summary>
    /// lm_head (or the tied embedding) on normalized final hidden rows: logits [rows, V] = hidden [rows, C] · Wᵀ. With
    /// <see cref="ForwardHidden"/> this is the full forward a chunk of rows at a time, so [rows, V] logits need never exist
    /// for a whole batch.
    /// </summary>
    public void LmHead(ReadOnlySpan<float> hidden, int rows, Span<float> logits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (hidden.Length < (long)rows * _d) throw new ArgumentException($"hidden has {hidden.Length} values, needs [{rows}, {_d}].", nameof(hidden));
        if (logits.Length < (long)rows * _v) throw new ArgumentException($"logits has {logits.Length} values, needs [{rows}, {_v}].", nameof(logits));
        Linear(hidden, _lmHead, _lmHeadH, default, logits, rows, _d, _v, Threads);
    }

    /// <summary>
    /// Backward of <see cref="LmHead"/> for a chunk of rows: dHidden [rows, C] = dLogits · W (overwritten) and, when
    /// <paramref name="grads"/> holds lm_head's tensor (a tied model: the embedding), dW += dLogitsᵀ · hidden. Chunks
    /// processed in row order accumulate dW in the order one call over all rows would (the same sums, bit for bit).
    /// </summary>
    public void LmHeadBackward(ReadOnlySpan<float> dLogits, ReadOnlySpan<float> hidden, int rows, Span<float> dHidden, TensorSet grads)
    {
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (dLogits.Length != (long)rows * _v)
            throw new ArgumentException($"dLogits has {dLogits.Length} values, needs [rows, V] = [{rows}, {_v}].", nameof(dLogits));
        if (hidden.Length < (long)rows * _d) throw new ArgumentException($"hidden has {hidden.Length} values, needs [{rows}, {_d}].", nameof(hidden));
        if (dHidden.Length < (long)rows * _d) throw new ArgumentException($"dHidden has {dHidden.Length} values, needs [{rows}, {_d}].", nameof(dHidden));
        if (!float.IsFinite(TensorPrimitives.Sum(dLogits)))
            for (int i = 0; i < dLogits.Length; i++)
                if (!float.IsFinite(dLogits[i]))
                    throw new ArgumentException($"dLogits[{i / _v}, {i % _v}] is {dLogits[i]}.", nameof(dLogits));
        Span<float> dW = grads.TryGet(_layout.OutputProjection, out var g) ? g.Data : default;
        if (!dW.IsEmpty && g!.Length != (long)_v * _d)
            throw new ArgumentException($"gradient tensor {g.Name} has shape {g.ShapeText}, expected [{_v}, {_d}].", nameof(grads));
        LinearBackward(dLogits, hidden, _lmHead, _lmHeadH, dHidden, dW, default, rows, _d, _v, Threads);
    }

    /// <summary>
    /// The forward of <see cref="Forward(ReadOnlySpan{int}, int, int, Span{float}, ModelActivations?, ReadOnlySpan{int})"/>
    /// up to lm_head's input: the normalized final hidden rows [B·T, C]. Recorded (<paramref name="activations"/> given),
    /// they are the record's <see cref="ModelActivations.Hidden"/> and the backward starts from their gradient
    /// (<see cref="BackwardFromHidden"/>); else the returned span is this instance's buffer, valid until its next call.
    /// </summary>
    public ReadOnlySpan<float> ForwardHidden(ReadOnlySpan<int> tokens, int batch, int seqLen, ModelActivations? activations = null,
        ReadOnlySpan<int> positions = default)
    {
        var pos = PrepareForward(tokens, batch, seqLen, activations, positions);
        var hidden = RunBody(tokens, batch, seqLen, pos, null, activations, lastOnly: false, out _);
        FinishForward(tokens, activations);
        return hidden;
    }

    /// <summary>
    /// Backward of the recorded forward: given dL/dlogits [B·T, V], ACCUMULATES dL/dθ into
    /// <paramref name="grads"/> (same names and shapes as <see cref="Parameters"/>; a tied embedding receives both
    /// its lookup and its lm_head contribution).
    /// </summary>
    public void Backward(ModelActivations activations, ReadOnlySpan<float> dLogits, TensorSet grads) =>
        Backward(activations, dLogits, grads, null);

    /// <summary>
    /// As <see cref="Backward(ModelActivations, ReadOnlySpan{float}, TensorSet)"/>; <paramref name="layerDone"/> is
    /// called with l as soon as the gradients of layer l's tensors (<see cref="LayerTensorNames"/>) are final (layers
    /// complete from the last to the first), so that a data-parallel trainer can start reducing them while the
    /// backward goes on.
    /// </summary>
    public void Backward(ModelActivations activations, ReadOnlySpan<float> dLogits, TensorSet grads, Action<int>? layerDone)
    {
        CheckBackward(activations, grads);
        int n = activations.Batch * activations.SeqLen;
        if (dLogits.Length != (long)n * _v)
            throw new ArgumentException($"dLogits has {dLogits.Length} values, needs [B·T, V] = [{n}, {_v}].", nameof(dLogits));
        Buf.Ensure(ref _dHidden, (long)n * _d);
        var dHidden = _dHidden.AsSpan(0, n * _d);
        LmHeadBackward(dLogits, activations.Hidden, n, dHidden, grads);
        BackwardBody(activations, dHidden, grads, layerDone);
    }

    /// <summary>
    /// Backward of the recorded forward from dL/d(<see cref="ModelActivations.Hidden"/>) [B·T, C] (what
    /// <see cref="LmHeadBackward"/> gives, chunk by chunk): ACCUMULATES dL/dθ of every tensor but lm_head's into
    /// <paramref name="grads"/>, as <see cref="Backward(ModelActivations, ReadOnlySpan{float}, TensorSet, Action{int}?)"/> does.
    /// </summary>
    public void BackwardFromHidden(ModelActivations activations, ReadOnlySpan<float> dHidden, TensorSet grads, Action<int>? layerDone = null)
    {
        CheckBackward(activations, grads);
        int n = activations.Batch * activations.SeqLen;
        if (dHidden.Length != (long)n * _d)
            throw new ArgumentException($"dHidden has {dHidden.Length} values, needs [B·T, C] = [{n}, {_d}].", nameof(dHidden));
        BackwardBody(activations, dHidden, grads, layerDone);
    }

    private void CheckBackward(ModelActivations activations, TensorSet grads)
    {
        ArgumentNullException.ThrowIfNull(activations);
        ArgumentNullException.ThrowIfNull(grads);
        if (!activations.IsFilled || !ReferenceEquals(activations.Owner, this))
            throw new ArgumentException("activations were not recorded by a forward of this model.", nameof(activations));
        var lrec = activations.Lora is { Enabled: true } lr ? lr : null;
        if (lrec != null && !ReferenceEquals(lrec.Owner, _lora))
            throw new ArgumentException("activations were recorded with other LoRA adapters than the model's.", nameof(activations));
        if (lrec != null)
            foreach (var p in lrec.Owner.Parameters.Tensors)
                if (grads.TryGet(p.Name, out var g) && !g.Shape.AsSpan().SequenceEqual(p.Shape))
                    throw new ArgumentException($"gradient tensor {p.Name} has shape {g.ShapeText}, expected {p.ShapeText}.", nameof(grads));
        foreach (var p in Parameters.Tensors)
        {
            if (!grads.TryGet(p.Name, out var g))
            {
                if (_lora != null) continue;   // frozen under LoRA: no gradient computed
                throw new ArgumentException($"gradient tensor {p.Name} is missing.", nameof(grads));
            }
            if (!g.Shape.AsSpan().SequenceEqual(p.Shape))
                throw new ArgumentException($"gradient tensor {p.Name} has shape {g.ShapeText}, expected {p.ShapeText}.", nameof(grads));
        }
        foreach (var name in _half.Keys)
            if (grads.TryGet(name, out _))
                throw new ArgumentException($"gradient tensor {name} is given, but the model holds {name} in 16 bits (frozen): it gets no gradient.", nameof(grads));
    }

    private void BackwardBody(ModelActivations activations, ReadOnlySpan<float> dHidden, TensorSet grads, Action<int>? layerDone)
    {
        int batch = activations.Batch, t = activations.SeqLen, n = batch * t, th = Threads;
        var lrec = activations.Lora is { Enabled: true } lr ? lr : null;
        var lora = lrec?.Owner;
        Span<float> G(string name) => grads.TryGet(name, out var t) ? t.Data : default;
        int qw = _h * _hd;
        var rope = RopeFor(activations.Positions);
        long nd = (long)n * _d;
        Buf.Ensure(ref _dX, nd); Buf.Ensure(ref _dXn, nd);
        // _dF1 holds dH [N, F] and then dAtt [N, H·hd] (wider when intermediate_size < H·head_dim)
        Buf.Ensure(ref _dF1, (long)n * Math.Max(_f, qw)); Buf.Ensure(ref _dF2, (long)n * _f); Buf.Ensure(ref _dF3, (long)n * _f);
        Buf.Ensure(ref _dQ, (long)n * qw); Buf.Ensure(ref _dK, (long)n * _kv * _hd); Buf.Ensure(ref _dV, (long)n * _kv * _hd);
        var dX = _dX.AsSpan(0, (int)nd);
        // the final norm
        RmsNorm.Backward(dHidden, activations.XFinal, _norm, activations.RstdF, dX, G(_layout.FinalNorm.Name), n, _d, th, accumulateDx: false);
        if (activations.Checkpointed) { Buf.Ensure(ref _x, nd); Buf.Ensure(ref _tmp, nd); }
        for (int l = _layers.Length - 1; l >= 0; l--)
        {
            LayerBuffers a = activations.Layers[l];
            if (activations.Checkpointed)
            {
                // recompute the layer's forward from its kept input (the same ops on the same values: the same activations)
                var x = _x.AsSpan(0, (int)nd);
                a.XIn.AsSpan(0, (int)nd).CopyTo(x);
                a = activations.Work;
                LayerForward(l, x, _tmp.AsSpan(0, (int)nd), a, batch, t, activations.Positions, rope, null, true, lora, lrec);
            }
            LayerBackward(l, a, dX, batch, t, activations.Positions, rope, grads, lora, lrec);
            layerDone?.Invoke(l);
        }
        var dEmbed = G(_layout.Embedding.Name);
        if (!dEmbed.IsEmpty) Embedding.Backward(activations.Tokens, dX, dEmbed, _d);
    }

    /// <summary>Backward of layer l from dX (the gradient of its output, replaced by that of its input), accumulating its tensors' gradients.</summary>
    private void LayerBackward(int l, LayerBuffers a, Span<float> dX, int batch, int t, int[] positions, RopeTable rope, TensorSet grads,
        LoraAdapters? lora, LoraRecord? lrec)
    {
        int n = batch * t, th = Threads, qw = _h * _hd, kw = _kv * _hd;
        Span<float> G(string name) => grads.TryGet(name, out var t) ? t.Data : default;
        Span<float> Gb(string? name) => name is null ? default : G(name);
        var w = _layers[l];
        var names = w.Names;
        var dXn = _dXn.AsSpan(0, n * _d);
        // MLP: x_out = x_mid + down(h), h = silu(g) ⊙ u
        var dH = _dF1.AsSpan(0, n * _f);
        var dG = _dF2.AsSpan(0, n * _f);
        var dU = _dF3.AsSpan(0, n * _f);
        LinearBackward(dX, a.Hh, w.Wd, w.Hd, dH, G(names.DownProj), Gb(names.DownBias), n, _f, _d, th);
        lora?.Backward(l, LoraTarget.DownProj, a.Hh, dX, dH, n, lrec!, grads, th);
        SwiGlu.Backward(dH, a.G.AsSpan(0, n * _f), a.U.AsSpan(0, n * _f), dG, dU, th);
        LinearBackward(dG, a.Xn2, w.Wg, w.Hg, dXn, G(names.GateProj), Gb(names.GateBias), n, _d, _f, th);
        LinearBackward(dU, a.Xn2, w.Wu, w.Hu, dXn, G(names.UpProj), Gb(names.UpBias), n, _d, _f, th, accumulateDx: true);
        if (lora != null)
        {
            lora.Backward(l, LoraTarget.GateProj, a.Xn2, dG, dXn, n, lrec!, grads, th);
            lora.Backward(l, LoraTarget.UpProj, a.Xn2, dU, dXn, n, lrec!, grads, th);
        }
        RmsNorm.Backward(dXn, a.XMid, w.Ln2, a.Rstd2, dX, G(names.PostAttentionNorm), n, _d, th, accumulateDx: true);
        // attention: x_mid = x_in + o(att)
        var dAtt = _dF1.AsSpan(0, n * qw);
        var dQ = _dQ.AsSpan(0, n * qw);
        var dK = _dK.AsSpan(0, n * kw);
        var dV = _dV.AsSpan(0, n * kw);
        LinearBackward(dX, a.Att, w.Wo, w.Ho, dAtt, G(names.OProj), Gb(names.OBias), n, qw, _d, th);
        lora?.Backward(l, LoraTarget.OProj, a.Att, dX, dAtt, n, lrec!, grads, th);
        Attention.Backward(dAtt, a.Q, a.K, a.V, a.Att, a.Lse, dQ, dK, dV, batch, t, _h, _kv, _hd, th,
            names.Features.SlidingWindow ?? 0);
        rope.Apply(dQ, positions, n, _h, inverse: true, th);
        rope.Apply(dK, positions, n, _kv, inverse: true, th);
        if (w.Qn != null)
        {
            // through the per-head norms: dQ, dK become the gradients of the raw projections
            Buf.Ensure(ref _dQn, (long)n * Math.Max(qw, kw));
            var dQn = _dQn.AsSpan(0, n * qw);
            RmsNorm.Backward(dQ, a.QRaw, w.Qn, a.QRstd, dQn, G(names.QNorm!), n * _h, _hd, th, accumulateDx: false);
            dQn.CopyTo(dQ);
            var dKn = _dQn.AsSpan(0, n * kw);
            RmsNorm.Backward(dK, a.KRaw, w.Kn!, a.KRstd, dKn, G(names.KNorm!), n * _kv, _hd, th, accumulateDx: false);
            dKn.CopyTo(dK);
        }
        bool bias = names.Features.QkvBias;
        LinearBackward(dQ, a.Xn1, w.Wq, w.Hq, dXn, G(names.QProj), bias ? G(names.QBias!) : default, n, _d, qw, th);
        LinearBackward(dK, a.Xn1, w.Wk, w.Hk, dXn, G(names.KProj), bias ? G(names.KBias!) : default, n, _d, kw, th, accumulateDx: true);
        LinearBackward(dV, a.Xn1, w.Wv, w.Hv, dXn, G(names.VProj), bias ? G(names.VBias!) : default, n, _d, kw, th, accumulateDx: true);
        if (lora != null)
        {
            lora.Backward(l, LoraTarget.QProj, a.Xn1, dQ, dXn, n, lrec!, grads, th);
            lora.Backward(l, LoraTarget.KProj, a.Xn1, dK, dXn, n, lrec!, grads, th);
            lora.Backward(l, LoraTarget.VProj, a.Xn1, dV, dXn, n, lrec!, grads, th);
        }
        RmsNorm.Backward(dXn, a.XIn, w.Ln1, a.Rstd1, dX, G(names.InputNorm), n, _d, th, accumulateDx: true);
    }

    // dynamic NTK: the tables of a call whose largest position + 1 exceeds max_position_embeddings (the last one kept)
    private RopeTable? _dynamicRope;
    private int _dynamicLength;

    /// <summary>The cos/sin tables for a call at <paramref name="positions"/>: the one table unless the rope is dynamic NTK.</summary>
    private RopeTable RopeFor(ReadOnlySpan<int> positions)
    {
        var rope = _layout.Rope;
        if (!rope.DependsOnLength) return _rope;
        int max = 0;
        foreach (int p in positions) max = Math.Max(max, p);
        int length = rope.TableLength(max);
        if (length == rope.MaxPositionEmbeddings) return _rope;
        if (_dynamicRope is null || _dynamicLength != length)
        {
            _dynamicRope = new RopeTable(rope, length);
            _dynamicLength = length;
        }
        return _dynamicRope;
    }

    /// <summary>
    /// The names of layer <paramref name="layer"/>'s parameter tensors (biases only where the model has them): the
    /// layer's <see cref="DecoderLayerLayout.Tensors"/> other than biases, then its biases, each in checkpoint order.
    /// </summary>
    public IReadOnlyList<string> LayerTensorNames(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, _layers.Length);
        var tensors = _layers[layer].Names.Tensors;
        var names = tensors.Where(t => t.Role != TensorRole.Bias).Select(t => t.Name).ToList();
        names.AddRange(tensors.Where(t => t.Role == TensorRole.Bias).Select(t => t.Name));
        return names;
    }
}
