using ILGPU;
using ILGPU.Runtime;
using Raft.Gpu.Kernels;
using Raft.Model;

namespace Raft.Gpu;

/// <summary>What one device training step reports (read back once, at its end).</summary>
/// <param name="Loss">The mean cross-entropy over the targets not ignored (0 when every target is ignored; NaN from
/// <see cref="GpuLlamaModel.ClipAndUpdate"/>, which computes no loss).</param>
/// <param name="GradNorm">The global L2 norm of the gradient before clipping (NaN or ∞: the update was skipped).</param>
/// <param name="LearningRate">The learning rate of the update (the schedule at the optimizer's step before it).</param>
/// <param name="Applied">False when the norm was not finite and the parameters were left unchanged.</param>
public readonly record struct GpuStepResult(double Loss, double GradNorm, double LearningRate, bool Applied);

/// <summary>
/// <see cref="LlamaModel"/>'s decoder on an ILGPU accelerator (CUDA for training; ILGPU's CPU accelerator runs the same
/// kernels in tests), with the same math: token embedding; per layer x += o(attn(rope(q(n₁)), rope(k(n₁)), v(n₁))),
/// x += down(silu(gate(n₂)) ⊙ up(n₂)); final RMSNorm; lm_head or the tied embedding; the layout's biases (q/k/v, o_proj,
/// MLP), Qwen3's per-head q/k RMSNorm, sliding windows and RoPE variant (dynamic NTK's tables rebuilt for
/// T &gt; max_position_embeddings). Parameters, gradients, AdamW
/// moments and every activation stay in device memory across steps: one flat buffer each for parameters, gradients
/// and moments (q/k/v and gate/up packed side by side, so each pair is one GEMM; weight-decayed tensors first), and
/// one activation arena sized for the largest B·T seen. Inputs are uploaded once per call and a training step
/// (<see cref="SftStep"/>) reads back only its two scalars.
/// <para>
/// Kernels: tiled shared-memory SGEMM (64×64 blocks, 4×4 per thread, split-K with atomic adds for weight
/// gradients), one group per row for RMSNorm and cross-entropy, one group per (sequence, head, query) for
/// attention and dq, one per (sequence, kv head, key) for dk and dv, element-wise RoPE and SwiGLU, atomic
/// scatter for the embedding gradient. Results agree with <see cref="LlamaModel"/> to fp32 rounding (sums run in
/// another order, and atomic adds make the weight gradients non-deterministic in their last bits).
/// </para>
/// <para>
/// LoRA (<see cref="GpuLlamaModel(Accelerator, ModelConfig, TensorSet, LoraAdapters?)"/>): the adapters live in a buffer of
/// their own; per wrapped projection two GEMMs add (α/r)·B·(A·x) into the projection's column block, and the backward
/// runs four (dB, du, dA, dx), the adapters' weight gradients without split-K atomics, and no base weight gradient at
/// all, so a LoRA step is deterministic.
/// </para>
/// <para>Not thread-safe: one instance runs one call at a time, on the accelerator's default stream.</para>
/// </summary>
public sealed class GpuLlamaModel : IDisposable
{
    private sealed record Segment(string Name, int[] Shape, long Offset, long Length);

    private sealed class LayerViews
    {
        public long Ln1, Ln2, Wqkv, Bqkv, Wo, Bo, Wgu, Bgu, Wd, Bd, Qn, Kn;
        public int Window;
        /// <summary>The adapters of the layer, by <see cref="LoraTarget"/> (null: not wrapped; all null without LoRA).</summary>
        public LoraView?[] Lora = new LoraView?[LoraConfig.ModuleNames.Count];
    }

    /// <summary>
    /// One adapted projection: A [r, in] and B [out, r] at offsets in the adapter buffer; its output is the column block
    /// [Col, Col + Out) of a matrix with rows Stride apart (q, k, v in the packed q/k/v output, gate and up in the packed
    /// gate/up output, o and down in the residual stream).
    /// </summary>
    private sealed record LoraView(long A, long B, int In, int Out, int Col, int Stride);

    private readonly Accelerator _acc;
    private readonly ModelKernelSet _k;
    private readonly List<Segment> _segments = [];
    private readonly Dictionary<string, Segment> _byName = new(StringComparer.Ordinal);
    private readonly LayerViews[] _layers;
    private readonly long _embed, _norm, _lmHead, _decayed, _total;
    private readonly int _d, _h, _kv, _hd, _f, _v, _q, _kvw, _w3;
    private readonly float _eps, _ropeScale;
    private float[] _invFreq;
    private readonly RotaryEmbedding _rope;
    private int _ropeLength;

    private readonly MemoryBuffer1D<float, Stride1D.Dense> _params, _grads;
    // LoRA: the adapters' flat buffer (A and B of every wrapped projection); the gradients, moments and every update
    // then cover these only, and the base in _params stays frozen (no gradient computed, no moment allocated)
    private readonly LoraConfig? _lora;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>? _adapters;
    private readonly List<Segment> _loraSegments = [];
    private readonly float _loraScale;
    // what the gradients, moments and updates cover: the base parameters, or the adapters under LoRA
    private readonly List<Segment> _trainSegments;
    private readonly long _trainTotal, _trainDecayed;
    private MemoryBuffer1D<float, Stride1D.Dense>? _m, _vMoment;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _partials, _scalars;
    private MemoryBuffer1D<float, Stride1D.Dense>? _arena, _cos, _sin;
    private MemoryBuffer1D<int, Stride1D.Dense>? _ints;
    private int _capacityRows, _tablePositions;
    private Activations? _act;
    private int _batch, _seqLen;
    private bool _forwardDone;
    private bool _disposed;

    /// <summary>
    /// Uploads the parameters of a host model (which is not kept), and its LoRA adapters when it carries them
    /// (<see cref="LlamaModel.Lora"/>; see <see cref="GpuLlamaModel(Accelerator, ModelConfig, TensorSet, LoraAdapters?)"/>).
    /// A model holding 16-bit matrices (<see cref="LlamaModel.IsInferenceOnly"/>) is refused: the device computes on fp32 weights.
    /// </summary>
    public GpuLlamaModel(Accelerator accelerator, LlamaModel model)
        : this(accelerator, (model ?? throw new ArgumentNullException(nameof(model))).Config,
            model.IsInferenceOnly
                ? throw new NotSupportedException($"the model holds {model.WeightsDescription} weights: the device model computes on fp32 weights only (base_weights_dtype = fp32).")
                : model.Parameters,
            model.Lora) { }

    /// <summary>
    /// Uploads <paramref name="parameters"/> (Hugging Face names and shapes, as <see cref="LlamaModel"/> checks them)
    /// onto <paramref name="accelerator"/>, which stays owned by the caller.
    /// <para>
    /// With <paramref name="lora"/> (made for this layout) its adapter tensors are uploaded too, every wrapped projection
    /// computes y = W·x (+ b) + (α/r)·B·(A·x) as <see cref="LoraAdapters"/> does, and the model trains the adapters only:
    /// the gradients (<see cref="DownloadGradients"/>), AdamW's moments, weight decay and the clipping norm cover A and B,
    /// the base weights stay as uploaded (their gradients are never computed). The host adapters are not kept
    /// (<see cref="DownloadAdapters"/> copies the trained ones back). LoRA dropout is not computed on the device: an
    /// adapter with lora_dropout &gt; 0 is refused.
    /// </para>
    /// </summary>
    public GpuLlamaModel(Accelerator accelerator, ModelConfig config, TensorSet parameters, LoraAdapters? lora = null)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(parameters);
        var layout = new LlamaModel(config, parameters).Layout; // the same checks (every tensor present with its shape, no unsupported bias)
        if (lora is not null)
        {
            if (lora.Config.Dropout > 0)
                throw new NotSupportedException($"lora_dropout = {lora.Config.Dropout}: the device model does not draw LoRA dropout masks; use lora_dropout = 0 or the CPU student.");
            if (lora.Layout.Layers.Count != layout.Layers.Count)
                throw new ArgumentException($"the adapters were made for {lora.Layout.Layers.Count} layers, the model has {layout.Layers.Count}.", nameof(lora));
            foreach (var m in lora.Modules)
                if (!layout.TryGet(m.BaseName, out var spec) || spec.Shape.Length != 2 || spec.Shape[0] != m.Out || spec.Shape[1] != m.In)
                    throw new ArgumentException($"the adapter for {m.BaseName} expects [{m.Out}, {m.In}], the model has {(spec is null ? "no such tensor" : spec.ShapeText)}.", nameof(lora));
        }
        Config = config;
        _acc = accelerator;
        _k = ModelKernelSet.For(accelerator);
        _d = config.HiddenSize; _h = config.NumAttentionHeads; _kv = config.KvHeads; _hd = config.HeadDim;
        _f = config.IntermediateSize; _v = config.VocabSize; _eps = (float)config.RmsNormEps;
        _q = _h * _hd; _kvw = _kv * _hd; _w3 = _q + 2 * _kvw;
        // the rope variant's fp32 frequencies and cos/sin factor, as Raft.Model.Ops.RopeTable forms them
        _rope = layout.Rope;
        _ropeLength = _rope.MaxPositionEmbeddings;
        _invFreq = _rope.InverseFrequenciesF32(_ropeLength);
        _ropeScale = (float)layout.Rope.AttentionScaling;

        // flat layout: the weight-decayed tensors first, then the rest, each group in the layout's order, which keeps each
        // packed group (q, k, v; their biases; gate, up) adjacent, so that one GEMM runs each group
        long offset = 0;
        foreach (bool decayed in new[] { true, false })
        {
            foreach (var spec in layout.Tensors)
            {
                string name = spec.Name;
                if (AdamW.IsDecayed(Tensor.Zeros(name, spec.Shape.Length > 1 ? [1, 1] : [1])) != decayed) continue;
                long len = spec.ElementCount;
                var seg = new Segment(name, spec.Shape.ToArray(), offset, len);
                _segments.Add(seg);
                _byName.Add(name, seg);
                offset += len;
            }
            if (decayed) _decayed = offset;
        }
        _total = offset;
        long O(string name) => _byName[name].Offset;
        // A packed group's offset: its first tensor's, the others following it back to back in the flat buffer.
        long Packed(IReadOnlyList<string> group)
        {
            for (int i = 1; i < group.Count; i++)
                if (_byName[group[i]].Offset != _byName[group[i - 1]].Offset + _byName[group[i - 1]].Length)
                    throw new InvalidOperationException("internal: the packed q/k/v or gate/up layout does not hold.");
            return O(group[0]);
        }
        _embed = O(layout.Embedding.Name);
        _norm = O(layout.FinalNorm.Name);
        _lmHead = O(layout.OutputProjection);
        _layers = new LayerViews[layout.Layers.Count];
        for (int l = 0; l < _layers.Length; l++)
        {
            var names = layout.Layers[l];
            _layers[l] = new LayerViews
            {
                Ln1 = O(names.InputNorm), Ln2 = O(names.PostAttentionNorm),
                Wqkv = Packed(names.QkvProjections), Wo = O(names.OProj),
                Wgu = Packed(names.GateUpProjections), Wd = O(names.DownProj),
                Bqkv = names.QkvBiases is { } biases ? Packed(biases) : -1,
                Bo = names.OBias is { } bo ? O(bo) : -1,
                Bgu = names.GateUpBiases is { } gub ? Packed(gub) : -1,
                Bd = names.DownBias is { } bd ? O(bd) : -1,
                Qn = names.QNorm is { } qn ? O(qn) : -1,
                Kn = names.KNorm is { } kn ? O(kn) : -1,
                Window = names.Features.SlidingWindow ?? 0,
            };
        }

        if (lora is not null)
        {
            // the adapters' flat layout: decayed tensors first (every A and B is), each group in the adapters' own order
            _lora = lora.Config;
            _loraScale = (float)lora.Config.Scale;
            long at = 0, decayedEnd = 0;
            var byName = new Dictionary<string, Segment>(StringComparer.Ordinal);
            foreach (bool decayed in new[] { true, false })
            {
                foreach (var t in lora.Parameters.Tensors)
                {
                    if (AdamW.IsDecayed(t) != decayed) continue;
                    var seg = new Segment(t.Name, (int[])t.Shape.Clone(), at, t.Length);
                    _loraSegments.Add(seg);
                    byName.Add(t.Name, seg);
                    at += t.Length;
                }
                if (decayed) decayedEnd = at;
            }
            foreach (var m in lora.Modules)
            {
                var (col, stride) = m.Target switch
                {
                    LoraTarget.QProj => (0, _w3),
                    LoraTarget.KProj => (_q, _w3),
                    LoraTarget.VProj => (_q + _kvw, _w3),
                    LoraTarget.GateProj => (0, 2 * _f),
                    LoraTarget.UpProj => (_f, 2 * _f),
                    _ => (0, _d),   // o_proj and down_proj add into the residual stream
                };
                _layers[m.Layer].Lora[(int)m.Target] = new LoraView(byName[m.A.Name].Offset, byName[m.B.Name].Offset, m.In, m.Out, col, stride);
            }
            (_trainSegments, _trainTotal, _trainDecayed) = (_loraSegments, at, decayedEnd);
        }
        else (_trainSegments, _trainTotal, _trainDecayed) = (_segments, _total, _decayed);

        _params = accelerator.Allocate1D<float>(Math.Max(1, _total));
        _adapters = lora is null ? null : accelerator.Allocate1D<float>(Math.Max(1, _trainTotal));
        _grads = accelerator.Allocate1D<float>(Math.Max(1, _trainTotal));
        _partials = accelerator.Allocate1D<double>(TrainKernels.NormGroups);
        _scalars = accelerator.Allocate1D<double>(4);
        Upload(parameters);
        if (lora is not null) UploadAdapters(lora.Parameters);
        ZeroGradients();
    }

    /// <summary>The architecture.</summary>
    public ModelConfig Config { get; }
    /// <summary>The accelerator everything lives on.</summary>
    public Accelerator Accelerator => _acc;
    /// <summary>Number of parameter values (of the base, without the adapters).</summary>
    public long ParameterCount => _total;
    /// <summary>The LoRA hyper-parameters the model trains adapters with (null: full fine-tuning).</summary>
    public LoraConfig? Lora => _lora;
    /// <summary>Number of trained values: the adapters' under LoRA, else <see cref="ParameterCount"/>.</summary>
    public long TrainedParameterCount => _trainTotal;
    /// <summary>
    /// Under LoRA, whether the adapters take part in the forward (default true); false computes exactly the base model
    /// (no adapter op runs), and a backward of such a forward gives the adapters no gradient.
    /// </summary>
    public bool AdaptersEnabled { get; set; } = true;
    /// <summary>Batch size of the last forward (0 before one).</summary>
    public int Batch => _batch;
    /// <summary>Sequence length of the last forward.</summary>
    public int SeqLen => _seqLen;

    /// <summary>The logits [B·T, V] of the last <see cref="Forward"/> (a device view; a loss may overwrite it with dL/dlogits in place).</summary>
    public ArrayView<float> Logits
    {
        get
        {
            if (_act is null || !_forwardDone) throw new InvalidOperationException("no forward has run yet.");
            return _act.Logits.SubView(0, (long)_batch * _seqLen * _v);
        }
    }

    // ------------------------------------------------------------------ parameters

    private ArrayView<float> P(long offset, long length) => _params.View.BaseView.SubView(offset, length);
    private ArrayView<float> PA(long offset, long length) => _adapters!.View.BaseView.SubView(offset, length);
    // the trained parameters: the base's, or the adapters' under LoRA
    private MemoryBuffer1D<float, Stride1D.Dense> Trained => _adapters ?? _params;
    private ArrayView<float> G(long offset, long length) => _grads.View.BaseView.SubView(offset, length);

    /// <summary>Replaces the device parameters with <paramref name="parameters"/> (same names and shapes).</summary>
    public void Upload(TensorSet parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ThrowIfDisposed();
        foreach (var s in _segments)
            _params.View.BaseView.SubView(s.Offset, s.Length).CopyFromCPU(Get(parameters, s, nameof(parameters)).Data);
    }

    /// <summary>Copies the device parameters into <paramref name="parameters"/> (same names and shapes; for checkpoints and rollouts).</summary>
    public void Download(TensorSet parameters) => DownloadFlat(_params, _segments, parameters, nameof(parameters));

    /// <summary>
    /// Copies the accumulated gradients into <paramref name="gradients"/> (names and shapes of the trained tensors: the
    /// parameters, or under LoRA the adapters, <see cref="LoraAdapters.Parameters"/>).
    /// </summary>
    public void DownloadGradients(TensorSet gradients) => DownloadFlat(_grads, _trainSegments, gradients, nameof(gradients));

    /// <summary>Replaces the device adapters with <paramref name="adapters"/> (PEFT names and shapes of <see cref="LoraAdapters.Parameters"/>).</summary>
    public void UploadAdapters(TensorSet adapters)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        ThrowIfDisposed();
        RequireLora();
        foreach (var s in _loraSegments)
            _adapters!.View.BaseView.SubView(s.Offset, s.Length).CopyFromCPU(Get(adapters, s, nameof(adapters)).Data);
    }

    /// <summary>Copies the device adapters into <paramref name="adapters"/> (names and shapes of <see cref="LoraAdapters.Parameters"/>).</summary>
    public void DownloadAdapters(TensorSet adapters)
    {
        RequireLora();
        DownloadFlat(_adapters!, _loraSegments, adapters, nameof(adapters));
    }

    private void RequireLora()
    {
        if (_lora is null) throw new InvalidOperationException("the model has no LoRA adapters.");
    }

    /// <summary>A host copy of the parameters (a new set, in <see cref="DecoderLayout.Tensors"/> order).</summary>
    public TensorSet DownloadParameters()
    {
        var set = new TensorSet();
        foreach (var (name, shape) in Config.TensorShapes()) set.Add(Tensor.Zeros(name, shape));
        Download(set);
        return set;
    }

    private void DownloadFlat(MemoryBuffer1D<float, Stride1D.Dense> buffer, List<Segment> segments, TensorSet into, string argName)
    {
        ArgumentNullException.ThrowIfNull(into, argName);
        ThrowIfDisposed();
        _acc.DefaultStream.Synchronize();
        foreach (var s in segments)
            buffer.View.BaseView.SubView(s.Offset, s.Length).CopyToCPU(Get(into, s, argName).Data);
    }

    private static Tensor Get(TensorSet set, Segment s, string argName)
    {
        if (!set.TryGet(s.Name, out var t))
            throw new ArgumentException($"tensor {s.Name} is missing (expected shape [{string.Join(", ", s.Shape)}]).", argName);
        if (!t.Shape.AsSpan().SequenceEqual(s.Shape))
            throw new ArgumentException($"tensor {s.Name} has shape {t.ShapeText}, expected [{string.Join(", ", s.Shape)}].", argName);
        return t;
    }

    /// <summary>Sets every gradient to 0 (<see cref="Backward(ArrayView{float})"/> accumulates).</summary>
    public void ZeroGradients()
    {
        ThrowIfDisposed();
        _grads.View.MemSetToZero();
    }

    // ------------------------------------------------------------------ activations

    private sealed class Activations
    {
        public required ArrayView<float>[] XIn, XMid, Rstd1, Rstd2, Xn1, Xn2, Qkv, Att, Lse, Gu, Hh, QRaw, KRaw, QRstd, KRstd;
        public required ArrayView<float> RstdF, XnF, Logits, DX, DXn, DH, DGu, DAtt, DQkv, DSum, RowLoss, QkA, QkB;
        public required ArrayView<int> Tokens, Targets;
        /// <summary>LoRA: per layer and target, s·A·x [N, r] of the forward (empty where not wrapped); the backward's du [N, r].</summary>
        public required ArrayView<float>[][] Su;
        public required ArrayView<float> Du;
    }

    private void EnsureCapacity(int rows)
    {
        if (_act is not null && rows <= _capacityRows) return;
        int cap = Math.Max(rows, _capacityRows);
        _arena?.Dispose(); _arena = null; _act = null;
        _ints?.Dispose(); _ints = null;
        int layers = _layers.Length;
        long n = cap, used = 0;
        var plan = new List<(long Offset, long Length)>();
        long Take(long len) { plan.Add((used, len)); used += Math.Max(len, 1); return plan.Count - 1; }
        // per layer: XIn, XMid [N, D]; Rstd1, Rstd2 [N]; Xn1, Xn2 [N, D]; Qkv [N, W3]; Att [N, Q]; Lse [N·H]; Gu [N, 2F]; Hh [N, F]
        var idx = new long[layers + 1, 15];
        bool qkNorm = _layers.Any(l => l.Qn >= 0);
        for (int l = 0; l <= layers; l++)
        {
            idx[l, 0] = Take(n * _d);
            if (l == layers) break;
            idx[l, 1] = Take(n * _d); idx[l, 2] = Take(n); idx[l, 3] = Take(n); idx[l, 4] = Take(n * _d); idx[l, 5] = Take(n * _d);
            idx[l, 6] = Take(n * _w3); idx[l, 7] = Take(n * _q); idx[l, 8] = Take(n * _h); idx[l, 9] = Take(n * 2 * _f); idx[l, 10] = Take(n * _f);
            // Qwen3: q and k before their per-head norm, and the norms' inverse RMS
            idx[l, 11] = Take(qkNorm ? n * _q : 0); idx[l, 12] = Take(qkNorm ? n * _kvw : 0);
            idx[l, 13] = Take(qkNorm ? n * _h : 0); idx[l, 14] = Take(qkNorm ? n * _kv : 0);
        }
        long iQkA = Take(qkNorm ? n * Math.Max(_q, _kvw) : 0), iQkB = Take(qkNorm ? n * Math.Max(_q, _kvw) : 0);
        int rank = _lora?.Rank ?? 0;
        var iSu = new long[layers, LoraConfig.ModuleNames.Count];
        for (int l = 0; l < layers; l++)
            for (int t = 0; t < LoraConfig.ModuleNames.Count; t++) iSu[l, t] = Take(_layers[l].Lora[t] is null ? 0 : n * rank);
        long iDu = Take(n * rank);
        long iRstdF = Take(n), iXnF = Take(n * _d), iLogits = Take(n * _v), iDX = Take(n * _d), iDXn = Take(n * _d), iDH = Take(n * _f),
            iDGu = Take(n * 2 * _f), iDAtt = Take(n * _q), iDQkv = Take(n * _w3), iDSum = Take(n * _h), iRowLoss = Take(n);
        _arena = _acc.Allocate1D<float>(used);
        _ints = _acc.Allocate1D<int>(2 * n);
        var arena = _arena.View.BaseView;
        ArrayView<float> V(long i) => arena.SubView(plan[(int)i].Offset, plan[(int)i].Length);
        ArrayView<float>[] Per(int j) => Enumerable.Range(0, layers).Select(l => V(idx[l, j])).ToArray();
        _act = new Activations
        {
            XIn = Enumerable.Range(0, layers + 1).Select(l => V(idx[l, 0])).ToArray(),
            XMid = Per(1), Rstd1 = Per(2), Rstd2 = Per(3), Xn1 = Per(4), Xn2 = Per(5), Qkv = Per(6), Att = Per(7), Lse = Per(8), Gu = Per(9), Hh = Per(10),
            QRaw = Per(11), KRaw = Per(12), QRstd = Per(13), KRstd = Per(14), QkA = V(iQkA), QkB = V(iQkB),
            RstdF = V(iRstdF), XnF = V(iXnF), Logits = V(iLogits), DX = V(iDX), DXn = V(iDXn), DH = V(iDH), DGu = V(iDGu), DAtt = V(iDAtt),
            DQkv = V(iDQkv), DSum = V(iDSum), RowLoss = V(iRowLoss),
            Tokens = _ints.View.BaseView.SubView(0, n), Targets = _ints.View.BaseView.SubView(n, n),
            Su = Enumerable.Range(0, layers).Select(l => Enumerable.Range(0, LoraConfig.ModuleNames.Count).Select(t => V(iSu[l, t])).ToArray()).ToArray(),
            Du = V(iDu),
        };
        _capacityRows = cap;
        _forwardDone = false;
    }

    private void EnsureRope(int positions)
    {
        if (_rope.DependsOnLength && _rope.TableLength(positions - 1) is var length && length != _ropeLength)
        {
            // dynamic NTK: the frequencies of a forward over positions 0..T−1 depend on T once T > max_position_embeddings
            _ropeLength = length;
            _invFreq = _rope.InverseFrequenciesF32(length);
            _tablePositions = 0;
        }
        if (positions <= _tablePositions) return;
        int cap = Math.Max(positions, Math.Max(64, _tablePositions * 2));
        int half = _hd / 2;
        var cos = new float[(long)cap * half];
        var sin = new float[(long)cap * half];
        for (int p = 0; p < cap; p++)
            for (int i = 0; i < half; i++)
            {
                float a = (float)p * _invFreq[i];   // as Raft.Model.Ops.RopeTable: the angle in fp32
                cos[p * half + i] = _ropeScale == 1f ? MathF.Cos(a) : MathF.Cos(a) * _ropeScale;
                sin[p * half + i] = _ropeScale == 1f ? MathF.Sin(a) : MathF.Sin(a) * _ropeScale;
            }
        _cos?.Dispose(); _sin?.Dispose();
        _cos = _acc.Allocate1D(cos);
        _sin = _acc.Allocate1D(sin);
        _tablePositions = cap;
    }

    // ------------------------------------------------------------------ forward

    /// <summary>
    /// Full forward of B sequences of length T (positions 0..T-1): tokens [B·T] → <see cref="Logits"/> [B·T, V],
    /// recording what <see cref="Backward(ArrayView{float})"/> needs. Enqueued without waiting for the device.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen)
    {
        ThrowIfDisposed();
        CheckTokens(tokens, batch, seqLen);
        int n = batch * seqLen;
        EnsureCapacity(n);
        _act!.Tokens.SubView(0, n).CopyFromCPU(tokens);
        RunForward(batch, seqLen);
    }

    /// <summary>A host copy of <see cref="Logits"/> [B·T, V] (synchronises).</summary>
    public float[] DownloadLogits()
    {
        var view = Logits;
        var host = new float[view.Length];
        _acc.DefaultStream.Synchronize();
        view.CopyToCPU(host);
        return host;
    }

    private void CheckTokens(ReadOnlySpan<int> tokens, int batch, int seqLen)
    {
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be > 0.");
        if (seqLen <= 0) throw new ArgumentOutOfRangeException(nameof(seqLen), seqLen, "seqLen must be > 0.");
        if (tokens.Length != (long)batch * seqLen)
            throw new ArgumentException($"tokens has {tokens.Length} values, needs [B·T] = [{batch}·{seqLen}].", nameof(tokens));
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)_v)
                throw new ArgumentOutOfRangeException(nameof(tokens), tokens[i], $"token at index {i} is {tokens[i]}, outside the vocabulary 0..{_v - 1}.");
    }

    private AttnParams Attn(int batch, int seqLen) => new()
    {
        Batch = batch, SeqLen = seqLen, Heads = _h, KvHeads = _kv, GroupSize = _h / _kv, HeadDim = _hd,
        W3 = _w3, KCol = _q, VCol = _q + _kvw, QWidth = _q, Scale = 1f / MathF.Sqrt(_hd),
    };

    private RopeParams Rope(int n, int seqLen, float sign) => new()
    {
        Rows = n, SeqLen = seqLen, Heads = _h + _kv, Half = _hd / 2, HeadDim = _hd, Stride = _w3, Sign = sign,
        TablePositions = _tablePositions,
    };

    private void RunForward(int batch, int seqLen)
    {
        int n = batch * seqLen;
        EnsureRope(seqLen);
        var a = _act!;
        _k.Embedding(a.Tokens, P(_embed, (long)_v * _d), a.XIn[0], n, _d);
        var attn = Attn(batch, seqLen);
        bool lora = _lora is not null && AdaptersEnabled;
        for (int l = 0; l < _layers.Length; l++)
        {
            var w = _layers[l];
            _k.RmsNorm(a.XIn[l], P(w.Ln1, _d), a.Xn1[l], a.Rstd1[l], n, _d, _eps);
            _k.Linear(a.Xn1[l], P(w.Wqkv, (long)_w3 * _d), w.Bqkv >= 0 ? P(w.Bqkv, _w3) : default, a.Qkv[l], default, n, _d, _w3);
            if (lora)
            {
                LoraForward(l, LoraTarget.QProj, a.Xn1[l], a.Qkv[l], n);
                LoraForward(l, LoraTarget.KProj, a.Xn1[l], a.Qkv[l], n);
                LoraForward(l, LoraTarget.VProj, a.Xn1[l], a.Qkv[l], n);
            }
            if (w.Qn >= 0)
            {
                // Qwen3: RMSNorm of every head of q and k (rows [n·heads, head_dim]) before RoPE, through a contiguous block
                _k.CopyColumns(a.Qkv[l], _w3, 0, a.QRaw[l], _q, 0, n, _q);
                _k.RmsNorm(a.QRaw[l], P(w.Qn, _hd), a.QkA, a.QRstd[l], n * _h, _hd, _eps);
                _k.CopyColumns(a.QkA, _q, 0, a.Qkv[l], _w3, 0, n, _q);
                _k.CopyColumns(a.Qkv[l], _w3, _q, a.KRaw[l], _kvw, 0, n, _kvw);
                _k.RmsNorm(a.KRaw[l], P(w.Kn, _hd), a.QkA, a.KRstd[l], n * _kv, _hd, _eps);
                _k.CopyColumns(a.QkA, _kvw, 0, a.Qkv[l], _w3, _q, n, _kvw);
            }
            _k.Rope(a.Qkv[l], _cos!.View.BaseView, _sin!.View.BaseView, Rope(n, seqLen, 1f));
            _k.AttentionForward(a.Qkv[l], a.Att[l], a.Lse[l], attn with { Window = w.Window });
            _k.Linear(a.Att[l], P(w.Wo, (long)_d * _q), w.Bo >= 0 ? P(w.Bo, _d) : default, a.XMid[l], a.XIn[l], n, _q, _d);
            if (lora) LoraForward(l, LoraTarget.OProj, a.Att[l], a.XMid[l], n);
            _k.RmsNorm(a.XMid[l], P(w.Ln2, _d), a.Xn2[l], a.Rstd2[l], n, _d, _eps);
            _k.Linear(a.Xn2[l], P(w.Wgu, 2L * _f * _d), w.Bgu >= 0 ? P(w.Bgu, 2L * _f) : default, a.Gu[l], default, n, _d, 2 * _f);
            if (lora)
            {
                LoraForward(l, LoraTarget.GateProj, a.Xn2[l], a.Gu[l], n);
                LoraForward(l, LoraTarget.UpProj, a.Xn2[l], a.Gu[l], n);
            }
            _k.SwiGlu(a.Gu[l], a.Hh[l], n, _f);
            _k.Linear(a.Hh[l], P(w.Wd, (long)_d * _f), w.Bd >= 0 ? P(w.Bd, _d) : default, a.XIn[l + 1], a.XMid[l], n, _f, _d);
            if (lora) LoraForward(l, LoraTarget.DownProj, a.Hh[l], a.XIn[l + 1], n);
        }
        _k.RmsNorm(a.XIn[_layers.Length], P(_norm, _d), a.XnF, a.RstdF, n, _d, _eps);
        _k.Linear(a.XnF, P(_lmHead, (long)_v * _d), default, a.Logits, default, n, _d, _v);
        _batch = batch; _seqLen = seqLen; _forwardDone = true; _forwardLora = lora;
    }

    private bool _forwardLora;

    /// <summary>y[:, Col..Col+out) (rows Stride apart) += B·(s·A·x) for x [n, in], keeping su = s·A·x [n, r] for the backward.</summary>
    private void LoraForward(int l, LoraTarget target, ArrayView<float> x, ArrayView<float> y, int n)
    {
        if (_layers[l].Lora[(int)target] is not { } m) return;
        int r = _lora!.Rank;
        var su = _act!.Su[l][(int)target].SubView(0, (long)n * r);
        _k.Linear(x, PA(m.A, (long)r * m.In), default, su, default, n, m.In, r);
        _k.Scale(su, _loraScale);
        var block = y.SubView(m.Col, y.Length - m.Col);
        _k.Linear(su, PA(m.B, (long)m.Out * r), default, block, block, n, r, m.Out, ldy: m.Stride);
    }

    /// <summary>
    /// Backward of <see cref="LoraForward"/> from dy (the column block of the projection's output gradient): dB += dyᵀ·su,
    /// du = s·dy·B, dA += duᵀ·x, dx += du·A.
    /// </summary>
    private void LoraBackward(int l, LoraTarget target, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, int n)
    {
        if (_layers[l].Lora[(int)target] is not { } m) return;
        int r = _lora!.Rank;
        var a = _act!;
        var su = a.Su[l][(int)target].SubView(0, (long)n * r);
        var du = a.Du.SubView(0, (long)n * r);
        var block = dy.SubView(m.Col, dy.Length - m.Col);
        // the adapters' weight gradients are summed without split-K atomics: a LoRA step is deterministic on the device
        _k.LinearDw(block, su, G(m.B, (long)m.Out * r), n, r, m.Out, ldDy: m.Stride, deterministic: true);
        _k.LinearDx(block, PA(m.B, (long)m.Out * r), du, false, n, r, m.Out, ldDy: m.Stride);
        _k.Scale(du, _loraScale);
        _k.LinearDw(du, x, G(m.A, (long)r * m.In), n, m.In, r, deterministic: true);
        _k.LinearDx(du, PA(m.A, (long)r * m.In), dx, true, n, m.In, r);
    }

    // ------------------------------------------------------------------ backward

    /// <summary>
    /// Backward of the last forward from dL/dlogits [B·T, V] on the host: uploads it (into the logits buffer) and
    /// ACCUMULATES dL/dθ into the device gradients (a tied embedding receives both contributions).
    /// </summary>
    public void Backward(ReadOnlySpan<float> dLogits)
    {
        var logits = Logits;
        if (dLogits.Length != logits.Length)
            throw new ArgumentException($"dLogits has {dLogits.Length} values, needs [B·T, V] = [{_batch * _seqLen}, {_v}].", nameof(dLogits));
        for (int i = 0; i < dLogits.Length; i++)
            if (!float.IsFinite(dLogits[i]))
                throw new ArgumentException($"dLogits[{i / _v}, {i % _v}] is {dLogits[i]}.", nameof(dLogits));
        logits.CopyFromCPU(dLogits);
        RunBackward(logits);
    }

    /// <summary>
    /// Backward of the last forward from a device dL/dlogits [B·T, V] (for example <see cref="Logits"/> after a loss
    /// wrote its gradient in place): ACCUMULATES dL/dθ into the device gradients. Enqueued without waiting.
    /// </summary>
    public void Backward(ArrayView<float> dLogits)
    {
        ThrowIfDisposed();
        if (_act is null || !_forwardDone) throw new InvalidOperationException("no forward has run yet.");
        long need = (long)_batch * _seqLen * _v;
        if (dLogits.Length != need)
            throw new ArgumentException($"dLogits has {dLogits.Length} values, needs [B·T, V] = [{_batch * _seqLen}, {_v}].", nameof(dLogits));
        RunBackward(dLogits);
    }

    private void RunBackward(ArrayView<float> dLogits)
    {
        int n = _batch * _seqLen, L = _layers.Length;
        var a = _act!;
        var attn = Attn(_batch, _seqLen);
        // LoRA: the base is frozen, so none of its gradients is computed (only the input gradients that reach the adapters),
        // and the adapters get theirs when they took part in the forward
        bool fb = _lora is not null, lora = fb && _forwardLora;
        if (fb && !lora) return;   // adapters off: nothing trained took part in the forward
        _k.LinearDx(dLogits, P(_lmHead, (long)_v * _d), a.DXn, false, n, _d, _v);
        if (!fb) _k.LinearDw(dLogits, a.XnF, G(_lmHead, (long)_v * _d), n, _d, _v);
        _k.RmsNormBackward(a.DXn, a.XIn[L], P(_norm, _d), a.RstdF, a.DX, fb ? default : G(_norm, _d), n, _d, accumulate: false);
        for (int l = L - 1; l >= 0; l--)
        {
            var w = _layers[l];
            // MLP: x_out = x_mid + down(h), h = silu(g) ⊙ u
            _k.LinearDx(a.DX, P(w.Wd, (long)_d * _f), a.DH, false, n, _f, _d);
            if (!fb)
            {
                _k.LinearDw(a.DX, a.Hh[l], G(w.Wd, (long)_d * _f), n, _f, _d);
                if (w.Bd >= 0) _k.ColumnSums(a.DX, default, default, G(w.Bd, _d), n, _d, normWeight: false);
            }
            if (lora) LoraBackward(l, LoraTarget.DownProj, a.Hh[l], a.DX, a.DH, n);
            _k.SwiGluBackward(a.DH, a.Gu[l], a.DGu, n, _f);
            _k.LinearDx(a.DGu, P(w.Wgu, 2L * _f * _d), a.DXn, false, n, _d, 2 * _f);
            if (!fb)
            {
                _k.LinearDw(a.DGu, a.Xn2[l], G(w.Wgu, 2L * _f * _d), n, _d, 2 * _f);
                if (w.Bgu >= 0) _k.ColumnSums(a.DGu, default, default, G(w.Bgu, 2L * _f), n, 2 * _f, normWeight: false);
            }
            if (lora)
            {
                LoraBackward(l, LoraTarget.GateProj, a.Xn2[l], a.DGu, a.DXn, n);
                LoraBackward(l, LoraTarget.UpProj, a.Xn2[l], a.DGu, a.DXn, n);
            }
            _k.RmsNormBackward(a.DXn, a.XMid[l], P(w.Ln2, _d), a.Rstd2[l], a.DX, fb ? default : G(w.Ln2, _d), n, _d, accumulate: true);
            // attention: x_mid = x_in + o(att)
            _k.LinearDx(a.DX, P(w.Wo, (long)_d * _q), a.DAtt, false, n, _q, _d);
            if (!fb)
            {
                _k.LinearDw(a.DX, a.Att[l], G(w.Wo, (long)_d * _q), n, _q, _d);
                if (w.Bo >= 0) _k.ColumnSums(a.DX, default, default, G(w.Bo, _d), n, _d, normWeight: false);
            }
            if (lora) LoraBackward(l, LoraTarget.OProj, a.Att[l], a.DX, a.DAtt, n);
            _k.AttentionBackward(a.DAtt, a.Qkv[l], a.Att[l], a.Lse[l], a.DQkv, a.DSum, attn with { Window = w.Window });
            _k.Rope(a.DQkv, _cos!.View.BaseView, _sin!.View.BaseView, Rope(n, _seqLen, -1f));
            if (w.Qn >= 0)
            {
                // through the per-head norms: the q and k columns of dqkv become the raw projections' gradients
                _k.CopyColumns(a.DQkv, _w3, 0, a.QkA, _q, 0, n, _q);
                _k.RmsNormBackward(a.QkA, a.QRaw[l], P(w.Qn, _hd), a.QRstd[l], a.QkB, fb ? default : G(w.Qn, _hd), n * _h, _hd, accumulate: false);
                _k.CopyColumns(a.QkB, _q, 0, a.DQkv, _w3, 0, n, _q);
                _k.CopyColumns(a.DQkv, _w3, _q, a.QkA, _kvw, 0, n, _kvw);
                _k.RmsNormBackward(a.QkA, a.KRaw[l], P(w.Kn, _hd), a.KRstd[l], a.QkB, fb ? default : G(w.Kn, _hd), n * _kv, _hd, accumulate: false);
                _k.CopyColumns(a.QkB, _kvw, 0, a.DQkv, _w3, _q, n, _kvw);
            }
            _k.LinearDx(a.DQkv, P(w.Wqkv, (long)_w3 * _d), a.DXn, false, n, _d, _w3);
            if (!fb)
            {
                _k.LinearDw(a.DQkv, a.Xn1[l], G(w.Wqkv, (long)_w3 * _d), n, _d, _w3);
                if (w.Bqkv >= 0) _k.ColumnSums(a.DQkv, default, default, G(w.Bqkv, _w3), n, _w3, normWeight: false);
            }
            if (lora)
            {
                LoraBackward(l, LoraTarget.QProj, a.Xn1[l], a.DQkv, a.DXn, n);
                LoraBackward(l, LoraTarget.KProj, a.Xn1[l], a.DQkv, a.DXn, n);
                LoraBackward(l, LoraTarget.VProj, a.Xn1[l], a.DQkv, a.DXn, n);
            }
            if (fb && l == 0) break;   // the frozen embedding needs no input gradient
            _k.RmsNormBackward(a.DXn, a.XIn[l], P(w.Ln1, _d), a.Rstd1[l], a.DX, fb ? default : G(w.Ln1, _d), n, _d, accumulate: true);
        }
        if (!fb) _k.EmbeddingBackward(a.Tokens, a.DX, G(_embed, (long)_v * _d), n, _d);
    }

    // ------------------------------------------------------------------ optimizer

    /// <summary>The AdamW hyper-parameters (null until <see cref="SetOptimizer"/>).</summary>
    public AdamWOptions? OptimizerOptions { get; private set; }
    /// <summary>The learning-rate schedule (null until <see cref="SetOptimizer"/>).</summary>
    public LearningRateSchedule? Schedule { get; private set; }
    /// <summary>AdamW updates applied so far (the schedule's position; settable for a resumed run).</summary>
    public long OptimizerStep { get; set; }
    /// <summary>The learning rate the next update will use.</summary>
    public double CurrentLearningRate => Schedule?.At(OptimizerStep) ?? throw new InvalidOperationException("no optimizer: call SetOptimizer first.");

    /// <summary>
    /// Sets up AdamW exactly as <see cref="AdamW"/> (same options, schedule and decayed tensors) with zero moments at
    /// step <paramref name="step"/>.
    /// </summary>
    public void SetOptimizer(AdamWOptions options, LearningRateSchedule schedule, long step = 0)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ThrowIfDisposed();
        options.Validate();
        schedule.Validate();
        OptimizerOptions = options; Schedule = schedule; OptimizerStep = step;
        _m ??= _acc.Allocate1D<float>(Math.Max(1, _trainTotal));
        _vMoment ??= _acc.Allocate1D<float>(Math.Max(1, _trainTotal));
        _m.View.MemSetToZero();
        _vMoment.View.MemSetToZero();
    }

    // runs of adjacent trainable segments [offset, offset + length), each all weight-decayed or all not; null: everything
    private List<(long Offset, long Length, bool Decayed)>? _trainableRuns;
    private List<Segment>? _frozen;

    /// <summary>
    /// Freezes the tensors for which <paramref name="isTrainable"/> (given the tensor's name) is false, as
    /// <see cref="AdamW.SetTrainable"/>: their gradients are zeroed before the norm and AdamW leaves them, their moments
    /// and their weight decay alone. Returns how many tensors stay trainable.
    /// </summary>
    public int SetTrainable(Func<string, bool> isTrainable)
    {
        ArgumentNullException.ThrowIfNull(isTrainable);
        ThrowIfDisposed();
        if (_lora is not null) throw new InvalidOperationException("the model trains LoRA adapters: the base is frozen and the adapters are trained whole (trainable cannot be combined with lora_rank).");
        var runs = new List<(long Offset, long Length, bool Decayed)>();
        var frozen = new List<Segment>();
        int trainable = 0;
        foreach (var seg in _segments)
        {
            if (!isTrainable(seg.Name)) { frozen.Add(seg); continue; }
            trainable++;
            bool decayed = seg.Offset < _decayed;
            if (runs.Count > 0 && runs[^1].Offset + runs[^1].Length == seg.Offset && runs[^1].Decayed == decayed)
                runs[^1] = (runs[^1].Offset, runs[^1].Length + seg.Length, decayed);
            else runs.Add((seg.Offset, seg.Length, decayed));
        }
        (_trainableRuns, _frozen) = frozen.Count == 0 ? (null, null) : (runs, frozen);
        return trainable;
    }

    /// <summary>
    /// Copies host moments (names and shapes of the trained tensors — the parameters, or under LoRA the adapters —
    /// e.g. <see cref="AdamW.FirstMoment"/>) to the device.
    /// </summary>
    public void UploadOptimizerState(TensorSet firstMoment, TensorSet secondMoment)
    {
        RequireOptimizer();
        foreach (var s in _trainSegments)
        {
            _m!.View.BaseView.SubView(s.Offset, s.Length).CopyFromCPU(Get(firstMoment, s, nameof(firstMoment)).Data);
            _vMoment!.View.BaseView.SubView(s.Offset, s.Length).CopyFromCPU(Get(secondMoment, s, nameof(secondMoment)).Data);
        }
    }

    /// <summary>Copies the device moments into host sets (names and shapes of the trained tensors).</summary>
    public void DownloadOptimizerState(TensorSet firstMoment, TensorSet secondMoment)
    {
        RequireOptimizer();
        DownloadFlat(_m!, _trainSegments, firstMoment, nameof(firstMoment));
        DownloadFlat(_vMoment!, _trainSegments, secondMoment, nameof(secondMoment));
    }

    private void RequireOptimizer()
    {
        ThrowIfDisposed();
        if (_m is null || Schedule is null) throw new InvalidOperationException("no optimizer: call SetOptimizer first.");
    }

    /// <summary>
    /// Global-norm clipping (<paramref name="maxNorm"/> ≤ 0: none, the norm is still measured) and one AdamW update of
    /// the accumulated gradients, on the device; synchronises once to read the norm. A norm that is NaN or infinite
    /// leaves the parameters, the moments and <see cref="OptimizerStep"/> unchanged (as the CPU trainer skips such a step).
    /// </summary>
    public GpuStepResult ClipAndUpdate(double maxNorm)
    {
        RequireOptimizer();
        CheckMaxNorm(maxNorm);
        double lr = EnqueueUpdate(maxNorm, hasLoss: false, default, 0, 0);
        return ReadResult(lr, hasLoss: false);
    }

    /// <summary>
    /// One supervised step on the device, as the CPU trainer's SFT step: forward of <paramref name="inputs"/> [B·T],
    /// mean cross-entropy against <paramref name="targets"/> [B·T] over the targets ≠ <paramref name="ignoreIndex"/>,
    /// gradients zeroed then backward, global-norm clipping to <paramref name="maxNorm"/> (≤ 0: none) and AdamW.
    /// Inputs and targets are uploaded once; the only synchronisation is the read-back of the loss and norm at the end.
    /// </summary>
    public GpuStepResult SftStep(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int batch, int seqLen, double maxNorm,
        int ignoreIndex = -100)
    {
        RequireOptimizer();
        CheckTokens(inputs, batch, seqLen);
        CheckMaxNorm(maxNorm);
        int n = batch * seqLen;
        if (targets.Length != n)
            throw new ArgumentException($"targets has {targets.Length} values, needs [B·T] = [{batch}·{seqLen}].", nameof(targets));
        int count = 0;
        for (int i = 0; i < n; i++)
        {
            int t = targets[i];
            if (t == ignoreIndex) continue;
            if ((uint)t >= (uint)_v)
                throw new ArgumentOutOfRangeException(nameof(targets), t, $"target at index {i} is {t}, outside the vocabulary 0..{_v - 1} and not the ignore index {ignoreIndex}.");
            count++;
        }
        EnsureCapacity(n);
        var a = _act!;
        // one upload: tokens then targets, adjacent in the int buffer when the arena is exactly this size
        if (_capacityRows == n)
        {
            var both = new int[2 * n];
            inputs.CopyTo(both);
            targets.CopyTo(both.AsSpan(n));
            _ints!.View.BaseView.SubView(0, 2L * n).CopyFromCPU(both);
        }
        else
        {
            a.Tokens.SubView(0, n).CopyFromCPU(inputs);
            a.Targets.SubView(0, n).CopyFromCPU(targets);
        }
        RunForward(batch, seqLen);
        var logits = Logits;
        _k.CrossEntropy(logits, a.Targets, a.RowLoss, new LossParams { Rows = n, Vocab = _v, IgnoreIndex = ignoreIndex, Count = count });
        _grads.View.MemSetToZero();
        RunBackward(logits);
        double lr = EnqueueUpdate(maxNorm, hasLoss: true, a.RowLoss, n, count);
        return ReadResult(lr, hasLoss: true);
    }

    private static void CheckMaxNorm(double maxNorm)
    {
        if (double.IsNaN(maxNorm) || double.IsInfinity(maxNorm))
            throw new ArgumentException($"maxNorm must be finite (≤ 0: no clipping), got {maxNorm}.", nameof(maxNorm));
    }

    private double EnqueueUpdate(double maxNorm, bool hasLoss, ArrayView<float> rowLoss, int rows, int count)
    {
        var o = OptimizerOptions!;
        var lp = new LossParams
        {
            Rows = rows, Vocab = _v, Count = count, MaxNorm = maxNorm > 0 ? maxNorm : 0, GradLength = _trainTotal, HasLoss = hasLoss ? 1 : 0,
        };
        if (_frozen is not null)
            foreach (var f in _frozen) _grads.View.BaseView.SubView(f.Offset, f.Length).MemSetToZero();
        _k.NormAndFinish(_grads.View.BaseView.SubView(0, _trainTotal), rowLoss, _partials.View.BaseView, _scalars.View.BaseView, lp);
        double lr = Schedule!.At(OptimizerStep);
        // the same fp32 scalars as the CPU optimizer's (AdamW.StepScalars), so both take the same step
        var c = AdamW.StepScalars(o, lr, OptimizerStep + 1, out float decayFactor);
        var k = new AdamParams
        {
            Beta1 = c.Beta1, OneMinusBeta1 = c.OneMinusBeta1, Beta2 = c.Beta2, OneMinusBeta2 = c.OneMinusBeta2,
            StepSize = c.StepSize, SqrtBc2 = c.SqrtBc2, Epsilon = c.Epsilon,
            DecayFactor = decayFactor, DecayedLength = _trainDecayed, Length = _trainTotal,
        };
        var trained = Trained.View.BaseView;
        if (_trainableRuns is null)
            _k.AdamW(trained.SubView(0, _trainTotal), _grads.View.BaseView.SubView(0, _trainTotal), _m!.View.BaseView.SubView(0, _trainTotal),
                _vMoment!.View.BaseView.SubView(0, _trainTotal), _scalars.View.BaseView, k);
        else
            foreach (var (offset, length, decayed) in _trainableRuns)
                _k.AdamW(_params.View.BaseView.SubView(offset, length), _grads.View.BaseView.SubView(offset, length), _m!.View.BaseView.SubView(offset, length),
                    _vMoment!.View.BaseView.SubView(offset, length), _scalars.View.BaseView, k with { DecayedLength = decayed ? length : 0, Length = length });
        return lr;
    }

    private GpuStepResult ReadResult(double lr, bool hasLoss)
    {
        var s = new double[4];
        _scalars.View.BaseView.CopyToCPU(s);   // waits for the step
        double norm = s[TrainKernels.NormSlot];
        bool applied = double.IsFinite(norm);
        if (applied) OptimizerStep++;
        return new GpuStepResult(hasLoss ? s[TrainKernels.LossSlot] : double.NaN, norm, lr, applied);
    }

    /// <summary>Scales a device view in place (e.g. a loss gradient by its adaptive weight), enqueued.</summary>
    public void Scale(ArrayView<float> values, float factor)
    {
        ThrowIfDisposed();
        _k.Scale(values, factor);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Frees the device buffers (not the accelerator).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _params.Dispose(); _adapters?.Dispose(); _grads.Dispose(); _m?.Dispose(); _vMoment?.Dispose(); _partials.Dispose(); _scalars.Dispose();
        _arena?.Dispose(); _ints?.Dispose(); _cos?.Dispose(); _sin?.Dispose();
    }
}
