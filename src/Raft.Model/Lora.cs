using System.Numerics.Tensors;
using Raft.Model.Ops;

namespace Raft.Model;

/// <summary>A projection a LoRA adapter may wrap, by PEFT's module name (<see cref="LoraConfig.ModuleNames"/>).</summary>
public enum LoraTarget
{
    /// <summary>self_attn.q_proj</summary>
    QProj,
    /// <summary>self_attn.k_proj</summary>
    KProj,
    /// <summary>self_attn.v_proj</summary>
    VProj,
    /// <summary>self_attn.o_proj</summary>
    OProj,
    /// <summary>mlp.gate_proj</summary>
    GateProj,
    /// <summary>mlp.up_proj</summary>
    UpProj,
    /// <summary>mlp.down_proj</summary>
    DownProj,
}

/// <summary>
/// LoRA's hyper-parameters as PEFT names them: <c>r</c>, <c>lora_alpha</c>, <c>lora_dropout</c>, <c>target_modules</c>.
/// The adapted projection computes y = W·x (+ b) + (α/r)·B·A·dropout(x) (PEFT's non-rsLoRA scaling; the dropout feeds
/// the adapter path only and is active only in training).
/// </summary>
public sealed record LoraConfig
{
    /// <summary>PEFT's module names, in <see cref="LoraTarget"/> order.</summary>
    public static readonly IReadOnlyList<string> ModuleNames = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>The rank r (≥ 1).</summary>
    public required int Rank { get; init; }
    /// <summary>lora_alpha (finite, &gt; 0); the update is scaled by α/r.</summary>
    public required double Alpha { get; init; }
    /// <summary>lora_dropout in [0, 1).</summary>
    public double Dropout { get; init; }
    /// <summary>The wrapped projections (PEFT module names; each once).</summary>
    public required IReadOnlyList<string> TargetModules { get; init; }

    /// <summary>α/r.</summary>
    public double Scale => Alpha / Rank;

    /// <summary>Parses a comma-separated list of module names (e.g. <c>q_proj,v_proj</c>; case-insensitive, kept in PEFT's lower case); "all-linear" names all seven.</summary>
    public static IReadOnlyList<string> ParseTargets(string text, string argument)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Trim().Equals("all-linear", StringComparison.OrdinalIgnoreCase)) return ModuleNames;
        var list = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(m => m.ToLowerInvariant()).ToArray();
        if (list.Length == 0) throw new ArgumentException($"{argument} = \"{text}\": needs at least one of {string.Join(", ", ModuleNames)}.", argument);
        return list;
    }

    /// <summary>Checks every field; the error names the field (PEFT's key) and its value.</summary>
    public void Validate()
    {
        if (Rank < 1) throw new ArgumentOutOfRangeException("r", Rank, $"LoRA r = {Rank}: must be ≥ 1.");
        if (!double.IsFinite(Alpha) || Alpha <= 0) throw new ArgumentOutOfRangeException("lora_alpha", Alpha, $"lora_alpha = {Alpha}: must be finite and > 0.");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentOutOfRangeException("lora_dropout", Dropout, $"lora_dropout = {Dropout}: must be in [0, 1).");
        if (TargetModules is null || TargetModules.Count == 0)
            throw new ArgumentException($"target_modules is empty: needs at least one of {string.Join(", ", ModuleNames)}.", "target_modules");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in TargetModules)
        {
            if (!ModuleNames.Contains(m))
                throw new ArgumentException($"target_modules names \"{m}\": not one of {string.Join(", ", ModuleNames)}.", "target_modules");
            if (!seen.Add(m)) throw new ArgumentException($"target_modules names \"{m}\" twice.", "target_modules");
        }
    }

    /// <summary>Whether <paramref name="target"/> is wrapped.</summary>
    public bool Targets(LoraTarget target) => TargetModules.Contains(ModuleNames[(int)target]);
}

/// <summary>One adapted projection: A [r, in], B [out, r] (PEFT's shapes), and the base tensor's name.</summary>
public sealed class LoraModule
{
    internal LoraModule(int layer, LoraTarget target, string baseName, int inDim, int outDim, Tensor a, Tensor b)
    {
        Layer = layer; Target = target; BaseName = baseName; In = inDim; Out = outDim; A = a; B = b;
    }

    /// <summary>The decoder layer.</summary>
    public int Layer { get; }
    /// <summary>The wrapped projection.</summary>
    public LoraTarget Target { get; }
    /// <summary>The Hugging Face name of the frozen base weight (e.g. <c>model.layers.0.self_attn.q_proj.weight</c>).</summary>
    public string BaseName { get; }
    /// <summary>Input width of the projection.</summary>
    public int In { get; }
    /// <summary>Output width of the projection.</summary>
    public int Out { get; }
    /// <summary>lora_A.weight [r, in].</summary>
    public Tensor A { get; }
    /// <summary>lora_B.weight [out, r].</summary>
    public Tensor B { get; }
}

/// <summary>
/// The LoRA adapters of a <see cref="DecoderLayout"/>: for every layer and every target module, A [r, in] and B [out, r]
/// in <see cref="Parameters"/> under PEFT's names (<c>base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight</c>).
/// Attached to a <see cref="LlamaModel"/> (<see cref="LlamaModel.Lora"/>), each wrapped projection computes
/// y = W·x (+ b) + (α/r)·B·(A·dropout(x)); the base weights are read in place, never copied or changed.
/// With <see cref="Enabled"/> false the model computes exactly the base model (no adapter op runs), which is how the
/// frozen base serves as RAFT's teacher. Dropout (inverted, scale 1/(1−p), as torch.nn.Dropout) runs only in
/// recorded forwards while <see cref="Training"/> is set; its mask is a pure function of (<see cref="DropoutSeed"/>,
/// <see cref="DropoutStep"/>, layer, module, element) (<see cref="Keeps"/>), so the reference and a backward can recompute it.
/// </summary>
public sealed class LoraAdapters
{
    private readonly LoraModule?[][] _modules;   // [layer][target]
    private float[] _u = [], _du = [], _dxd = [];

    /// <summary>Wraps existing adapter tensors (PEFT names; every one must be present with its shape, none other).</summary>
    public LoraAdapters(DecoderLayout layout, LoraConfig config, TensorSet parameters)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(parameters);
        config.Validate();
        Layout = layout; Config = config; Parameters = parameters;
        _modules = new LoraModule?[layout.Layers.Count][];
        var expected = new HashSet<string>(StringComparer.Ordinal);
        foreach (var L in layout.Layers)
        {
            _modules[L.Index] = new LoraModule?[LoraConfig.ModuleNames.Count];
            for (int t = 0; t < LoraConfig.ModuleNames.Count; t++)
            {
                var target = (LoraTarget)t;
                if (!config.Targets(target)) continue;
                string baseName = BaseName(L, target);
                layout.TryGet(baseName, out var spec);
                int outDim = spec.Shape[0], inDim = spec.Shape[1];
                string an = AName(baseName), bn = BName(baseName);
                var a = Expect(parameters, an, config.Rank, inDim);
                var b = Expect(parameters, bn, outDim, config.Rank);
                expected.Add(an); expected.Add(bn);
                _modules[L.Index][t] = new LoraModule(L.Index, target, baseName, inDim, outDim, a, b);
            }
        }
        foreach (var t in parameters.Tensors)
            if (!expected.Contains(t.Name))
                throw new ArgumentException($"adapter tensor {t.Name} is not one of this model's LoRA tensors (target_modules = " +
                    $"{string.Join(",", config.TargetModules)}, {layout.Layers.Count} layers).", nameof(parameters));
    }

    private static Tensor Expect(TensorSet set, string name, int rows, int cols)
    {
        if (!set.TryGet(name, out var t))
            throw new ArgumentException($"adapter tensor {name} is missing (expected shape [{rows}, {cols}]).", "parameters");
        if (t.Shape.Length != 2 || t.Shape[0] != rows || t.Shape[1] != cols)
            throw new ArgumentException($"adapter tensor {name} has shape {t.ShapeText}, expected [{rows}, {cols}].", "parameters");
        return t;
    }

    /// <summary>
    /// Fresh adapters initialised as PEFT does: A by kaiming_uniform_(a = √5), i.e. uniform(−1/√in, 1/√in), and B zero
    /// (so the adapted model starts as the base). Deterministic for a seed (Philox draws, one sequence per tensor).
    /// </summary>
    public static LoraAdapters Create(DecoderLayout layout, LoraConfig config, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var set = new TensorSet();
        ulong sequence = 0;
        foreach (var (baseName, inDim, outDim) in Targets(layout, config))
        {
            var a = Tensor.Zeros(AName(baseName), config.Rank, inDim);
            double bound = 1.0 / Math.Sqrt(inDim);   // gain √(2/(1+5)) · √3 / √fan_in
            for (int i = 0; i < a.Data.Length; i++) a.Data[i] = (float)((2 * Philox.Uniform(seed, sequence, (ulong)i) - 1) * bound);
            sequence++;
            set.Add(a);
            set.Add(Tensor.Zeros(BName(baseName), outDim, config.Rank));
        }
        return new LoraAdapters(layout, config, set);
    }

    private static IEnumerable<(string BaseName, int In, int Out)> Targets(DecoderLayout layout, LoraConfig config)
    {
        foreach (var L in layout.Layers)
            for (int t = 0; t < LoraConfig.ModuleNames.Count; t++)
            {
                if (!config.Targets((LoraTarget)t)) continue;
                string baseName = BaseName(L, (LoraTarget)t);
                layout.TryGet(baseName, out var spec);
                yield return (baseName, spec.Shape[1], spec.Shape[0]);
            }
    }

    /// <summary>The Hugging Face name of layer <paramref name="layer"/>'s projection <paramref name="target"/>.</summary>
    public static string BaseName(DecoderLayerLayout layer, LoraTarget target) => target switch
    {
        LoraTarget.QProj => layer.QProj,
        LoraTarget.KProj => layer.KProj,
        LoraTarget.VProj => layer.VProj,
        LoraTarget.OProj => layer.OProj,
        LoraTarget.GateProj => layer.GateProj,
        LoraTarget.UpProj => layer.UpProj,
        LoraTarget.DownProj => layer.DownProj,
        _ => throw new ArgumentOutOfRangeException(nameof(target), target, "unknown LoRA target."),
    };

    private static string Stem(string baseName) =>
        "base_model.model." + (baseName.EndsWith(".weight", StringComparison.Ordinal) ? baseName[..^".weight".Length] : baseName);

    /// <summary>PEFT's name of A for a base weight: <c>base_model.model.{module}.lora_A.weight</c>.</summary>
    public static string AName(string baseName) => Stem(baseName) + ".lora_A.weight";
    /// <summary>PEFT's name of B for a base weight: <c>base_model.model.{module}.lora_B.weight</c>.</summary>
    public static string BName(string baseName) => Stem(baseName) + ".lora_B.weight";

    /// <summary>The layout the adapters were made for.</summary>
    public DecoderLayout Layout { get; }
    /// <summary>r, α, dropout, target modules.</summary>
    public LoraConfig Config { get; }
    /// <summary>The adapter tensors (PEFT names), used in place: the optimizer updates these.</summary>
    public TensorSet Parameters { get; }
    /// <summary>The adapters take part in the forward; false: exactly the base model.</summary>
    public bool Enabled { get; set; } = true;
    /// <summary>Dropout is applied in recorded (training) forwards; false (the default) is eval mode.</summary>
    public bool Training { get; set; }
    /// <summary>Seed of the dropout masks.</summary>
    public ulong DropoutSeed { get; set; }
    /// <summary>Counter of the dropout masks (the trainer advances it per forward).</summary>
    public ulong DropoutStep { get; set; }

    /// <summary>The adapted projections, layer by layer in <see cref="LoraTarget"/> order.</summary>
    public IEnumerable<LoraModule> Modules => _modules.SelectMany(m => m).OfType<LoraModule>();

    /// <summary>The names of layer <paramref name="layer"/>'s adapter tensors (A, B per module, in <see cref="LoraTarget"/> order).</summary>
    public IReadOnlyList<string> LayerTensorNames(int layer) =>
        _modules[layer].OfType<LoraModule>().SelectMany(m => new[] { m.A.Name, m.B.Name }).ToList();

    /// <summary>The module of (layer, target), or null when that projection is not wrapped.</summary>
    public LoraModule? Module(int layer, LoraTarget target) => _modules[layer][(int)target];

    /// <summary>Whether dropout element <paramref name="index"/> of (layer, target) is kept at the current seed and step.</summary>
    public bool Keeps(int layer, LoraTarget target, long index) => KeepsAt(DropoutStep, layer, target, index);

    /// <summary>
    /// A plain checkpoint's tensors with the adapters merged: W + (α/r)·B·A (computed in double, rounded to fp32) for every
    /// wrapped projection; every other tensor shared with <paramref name="baseParameters"/> (not copied).
    /// </summary>
    public TensorSet Merge(TensorSet baseParameters)
    {
        ArgumentNullException.ThrowIfNull(baseParameters);
        var merged = new Dictionary<string, LoraModule>(StringComparer.Ordinal);
        foreach (var m in Modules) merged[m.BaseName] = m;
        var set = new TensorSet();
        double s = Config.Scale;
        int r = Config.Rank;
        foreach (var t in baseParameters.Tensors)
        {
            if (!merged.TryGetValue(t.Name, out var m)) { set.Add(t); continue; }
            if (t.Shape.Length != 2 || t.Shape[0] != m.Out || t.Shape[1] != m.In)
                throw new ArgumentException($"base tensor {t.Name} has shape {t.ShapeText}, the adapter expects [{m.Out}, {m.In}].", nameof(baseParameters));
            var w = new float[t.Data.Length];
            var a = m.A.Data; var b = m.B.Data;
            for (int o = 0; o < m.Out; o++)
                for (int i = 0; i < m.In; i++)
                {
                    double acc = 0;
                    for (int k = 0; k < r; k++) acc += (double)b[o * r + k] * a[k * m.In + i];
                    w[o * m.In + i] = (float)(t.Data[o * m.In + i] + s * acc);
                }
            set.Add(new Tensor(t.Name, (int[])t.Shape.Clone(), w));
        }
        foreach (var m in merged.Values)
            if (!baseParameters.TryGet(m.BaseName, out _))
                throw new ArgumentException($"base tensor {m.BaseName} (wrapped by the adapter) is missing.", nameof(baseParameters));
        return set;
    }

    internal bool DropoutActive(bool recording) => recording && Training && Config.Dropout > 0;

    /// <summary>y [n, out] += (α/r)·B·A·dropout(x [n, in]); records what the backward needs when <paramref name="rec"/> is given.</summary>
    internal void Forward(int layer, LoraTarget target, ReadOnlySpan<float> x, Span<float> y, int n, LoraRecord? rec, int threads)
    {
        var m = _modules[layer][(int)target];
        if (m is null) return;
        int r = Config.Rank;
        float s = (float)Config.Scale;
        ReadOnlySpan<float> xin = x[..(n * m.In)];
        Span<float> su;
        if (rec != null)
        {
            var slot = rec.Slot(layer, target);
            if (rec.Dropout)
            {
                Buf.Ensure(ref slot.Xd, (long)n * m.In);
                float keepScale = (float)(1.0 / (1.0 - Config.Dropout));
                var xd = slot.Xd.AsSpan(0, n * m.In);
                for (int i = 0; i < xd.Length; i++) xd[i] = KeepsAt(rec.KeepStep, layer, target, i) ? xin[i] * keepScale : 0f;
                xin = xd;
            }
            Buf.Ensure(ref slot.Su, (long)n * r);
            su = slot.Su.AsSpan(0, n * r);
        }
        else
        {
            Buf.Ensure(ref _u, (long)n * r);
            su = _u.AsSpan(0, n * r);
        }
        Matmul.Forward(xin, m.A.Data, default, su, n, m.In, r, threads);
        TensorPrimitives.Multiply(su, s, su);
        Matmul.Forward(su, m.B.Data, default, y, n, r, m.Out, threads, accumulate: true);
    }

    /// <summary>
    /// Backward of <see cref="Forward"/>: dA, dB ACCUMULATE into the grads' adapter tensors (skipped when absent) and
    /// dx [n, in] += the adapter path's input gradient. x is the projection's (pre-dropout) input of the recorded forward.
    /// </summary>
    internal void Backward(int layer, LoraTarget target, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, int n,
        LoraRecord rec, TensorSet grads, int threads)
    {
        var m = _modules[layer][(int)target];
        if (m is null) return;
        int r = Config.Rank;
        float s = (float)Config.Scale;
        var slot = rec.Slot(layer, target);
        Span<float> dA = grads.TryGet(m.A.Name, out var ga) ? ga.Data : default;
        Span<float> dB = grads.TryGet(m.B.Name, out var gb) ? gb.Data : default;
        Buf.Ensure(ref _du, (long)n * r);
        var du = _du.AsSpan(0, n * r);
        // su = s·A·xd: du = dy·B, dB += dyᵀ·su; then du ← s·du = dL/d(A·xd)
        Matmul.Backward(dy, slot.Su, m.B.Data, du, dB, default, n, r, m.Out, threads);
        TensorPrimitives.Multiply(du, s, du);
        if (!rec.Dropout)
        {
            Matmul.Backward(du, x, m.A.Data, dx, dA, default, n, m.In, r, threads, accumulateDx: true);
            return;
        }
        Buf.Ensure(ref _dxd, (long)n * m.In);
        var dxd = _dxd.AsSpan(0, n * m.In);
        Matmul.Backward(du, slot.Xd, m.A.Data, dxd, dA, default, n, m.In, r, threads);
        float keepScale = (float)(1.0 / (1.0 - Config.Dropout));
        for (int i = 0; i < dxd.Length; i++)
            if (KeepsAt(rec.KeepStep, layer, target, i)) dx[i] += dxd[i] * keepScale;
    }

    private bool KeepsAt(ulong step, int layer, LoraTarget target, long index) =>
        Philox.Uniform(DropoutSeed, ((ulong)(layer * 8 + (int)target) << 40) | (ulong)index, step) >= Config.Dropout;
}

/// <summary>What a recorded forward keeps of the adapter paths: per module s·A·xd [N, r] and, with dropout, xd [N, in].</summary>
internal sealed class LoraRecord
{
    internal sealed class Entry
    {
        public float[] Su = [];
        public float[] Xd = [];
    }

    private readonly Entry[][] _slots;

    public LoraRecord(LoraAdapters owner, int layers)
    {
        Owner = owner;
        _slots = new Entry[layers][];
        for (int l = 0; l < layers; l++)
        {
            _slots[l] = new Entry[LoraConfig.ModuleNames.Count];
            for (int t = 0; t < _slots[l].Length; t++) _slots[l][t] = new Entry();
        }
    }

    public LoraAdapters Owner { get; }
    /// <summary>The adapters took part in the recorded forward.</summary>
    public bool Enabled { get; set; }
    /// <summary>Dropout was applied in the recorded forward.</summary>
    public bool Dropout { get; set; }
    /// <summary>The dropout step of the recorded forward.</summary>
    public ulong KeepStep { get; set; }

    public Entry Slot(int layer, LoraTarget target) => _slots[layer][(int)target];
}
