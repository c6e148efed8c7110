using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Raft.Model;

/// <summary>AdamW's hyper-parameters (the learning rate comes from a <see cref="LearningRateSchedule"/>).</summary>
public sealed record AdamWOptions
{
    /// <summary>First-moment decay β1.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>Second-moment decay β2.</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>ε added to the root of the second moment.</summary>
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay λ (the parameter shrinks by lr·λ per step); not applied to norm weights, biases and other 1-D tensors.</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Checks the fields; throws <see cref="ArgumentException"/> naming the field and value.</summary>
    public void Validate()
    {
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new ArgumentException($"Beta1 must be in [0, 1), got {Beta1}.", nameof(Beta1));
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentException($"Beta2 must be in [0, 1), got {Beta2}.", nameof(Beta2));
        if (!(Epsilon > 0) || !double.IsFinite(Epsilon)) throw new ArgumentException($"Epsilon must be finite and > 0, got {Epsilon}.", nameof(Epsilon));
        if (!(WeightDecay >= 0) || !double.IsFinite(WeightDecay)) throw new ArgumentException($"WeightDecay must be finite and ≥ 0, got {WeightDecay}.", nameof(WeightDecay));
    }
}

/// <summary>
/// AdamW (Loshchilov &amp; Hutter), in PyTorch's formulation: p ← p·(1 − lr·λ); m ← β1·m + (1−β1)·g;
/// v ← β2·v + (1−β2)·g²; p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε). Element-wise in fp32 with the step's
/// scalars computed in fp64, vectorised (Vector512/Vector256, with no fused multiply-adds, so every path gives the
/// same bits) and threaded over fixed blocks: the result does not depend on thread count or vector width.
/// </summary>
public sealed class AdamW
{
    /// <summary>The moments' file in a checkpoint directory.</summary>
    public const string StateFile = "optimizer.safetensors";
    /// <summary>The scalars' file (step, options, schedule) in a checkpoint directory.</summary>
    public const string ScalarsFile = "optimizer.json";
    internal const int Block = 1 << 15;

    private readonly bool[] _decay;
    private readonly bool[] _trainable;

    /// <summary>Creates an optimizer over <paramref name="parameters"/> (updated in place) with zero moments at step 0.</summary>
    public AdamW(TensorSet parameters, AdamWOptions options, LearningRateSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(schedule);
        options.Validate();
        schedule.Validate();
        Parameters = parameters; Options = options; Schedule = schedule;
        FirstMoment = parameters.ZerosLike();
        SecondMoment = parameters.ZerosLike();
        _decay = parameters.Tensors.Select(IsDecayed).ToArray();
        _trainable = parameters.Tensors.Select(_ => true).ToArray();
    }

    /// <summary>
    /// Freezes the tensors for which <paramref name="isTrainable"/> (given the tensor's name) is false: <see cref="Update"/>
    /// leaves them, their moments and their weight decay alone (PyTorch's <c>requires_grad = False</c>: they are not in the
    /// optimizer). All tensors are trainable until this is called. Returns how many tensors stay trainable.
    /// </summary>
    public int SetTrainable(Func<string, bool> isTrainable)
    {
        ArgumentNullException.ThrowIfNull(isTrainable);
        for (int i = 0; i < Parameters.Count; i++) _trainable[i] = isTrainable(Parameters.Tensors[i].Name);
        return _trainable.Count(t => t);
    }

    /// <summary>Whether tensor <paramref name="index"/> (in <see cref="TensorSet.Tensors"/> order) is updated.</summary>
    public bool IsTrainable(int index) => _trainable[index];

    /// <summary>
    /// An optimizer over <paramref name="parameters"/> that has made <paramref name="stepCount"/> updates, with zero
    /// moments for the caller to fill (<see cref="FirstMoment"/>, <see cref="SecondMoment"/>): the full state assembled
    /// from the slices of <see cref="AdamWShard"/>s, to save as a checkpoint.
    /// </summary>
    public static AdamW AtStep(TensorSet parameters, AdamWOptions options, LearningRateSchedule schedule, long stepCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stepCount);
        return new AdamW(parameters, options, schedule) { StepCount = stepCount };
    }

    /// <summary>The parameters being trained.</summary>
    public TensorSet Parameters { get; }
    /// <summary>The hyper-parameters.</summary>
    public AdamWOptions Options { get; }
    /// <summary>The learning-rate schedule (its position is <see cref="StepCount"/>).</summary>
    public LearningRateSchedule Schedule { get; }
    /// <summary>Updates made so far.</summary>
    public long StepCount { get; private set; }
    /// <summary>m, named and shaped as the parameters.</summary>
    public TensorSet FirstMoment { get; }
    /// <summary>v, named and shaped as the parameters.</summary>
    public TensorSet SecondMoment { get; }
    /// <summary>The learning rate the next update will use.</summary>
    public double CurrentLearningRate => Schedule.At(StepCount);

    /// <summary>Whether weight decay applies to a tensor: not for names ending in "norm.weight" or ".bias", nor for 1-D tensors.</summary>
    public static bool IsDecayed(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.Shape.Length > 1
            && !tensor.Name.EndsWith("norm.weight", StringComparison.Ordinal)
            && !tensor.Name.EndsWith(".bias", StringComparison.Ordinal);
    }

    /// <summary>
    /// One update with <paramref name="gradients"/> (same names, order and shapes as the parameters; clip them first
    /// with <see cref="GradientClipping"/> if wanted). Returns the learning rate used.
    /// </summary>
    public double Update(TensorSet gradients)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        if (gradients.Count != Parameters.Count)
            throw new ArgumentException($"gradients hold {gradients.Count} tensors, the parameters {Parameters.Count}.", nameof(gradients));
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters.Tensors[i];
            var g = gradients.Tensors[i];
            if (g.Name != p.Name || !g.Shape.AsSpan().SequenceEqual(p.Shape))
                throw new ArgumentException($"gradient {i} is {g.Name} {g.ShapeText}, the parameter is {p.Name} {p.ShapeText}.", nameof(gradients));
        }
        double lr = Schedule.At(StepCount);
        long t = StepCount + 1;
        var k = StepScalars(Options, lr, t, out float decayFactor);

        var items = new List<(int Tensor, int Start, int Length)>();
        for (int i = 0; i < Parameters.Count; i++)
        {
            if (!_trainable[i]) continue;
            for (int s = 0; s < Parameters.Tensors[i].Length; s += Block)
                items.Add((i, s, Math.Min(Block, Parameters.Tensors[i].Length - s)));
        }
        void Run(int j)
        {
            var (i, s, n) = items[j];
            Kernel(Parameters.Tensors[i].Data.AsSpan(s, n), gradients.Tensors[i].Data.AsSpan(s, n),
                FirstMoment.Tensors[i].Data.AsSpan(s, n), SecondMoment.Tensors[i].Data.AsSpan(s, n),
                _decay[i] ? decayFactor : 1f, k);
        }
        if (items.Count <= 2) for (int j = 0; j < items.Count; j++) Run(j);
        else Parallel.For(0, items.Count, Run);
        StepCount = t;
        return lr;
    }

    /// <summary>The fp32 scalars of update <paramref name="t"/> at learning rate <paramref name="lr"/> (computed in fp64), and the decay factor 1 − lr·λ.</summary>
    internal static Scalars StepScalars(AdamWOptions options, double lr, long t, out float decayFactor)
    {
        double bc1 = 1 - Pow(options.Beta1, t), bc2 = 1 - Pow(options.Beta2, t);
        decayFactor = (float)(1 - lr * options.WeightDecay);
        return new Scalars
        {
            Beta1 = (float)options.Beta1, OneMinusBeta1 = (float)(1 - options.Beta1),
            Beta2 = (float)options.Beta2, OneMinusBeta2 = (float)(1 - options.Beta2),
            StepSize = (float)(lr / bc1), SqrtBc2 = (float)Math.Sqrt(bc2), Epsilon = (float)options.Epsilon,
        };
    }

    /// <summary>bᵗ by repeated squaring (IEEE multiplications only, so the same on every platform).</summary>
    internal static double Pow(double b, long t)
    {
        double r = 1;
        while (t > 0)
        {
            if ((t & 1) != 0) r *= b;
            b *= b;
            t >>= 1;
        }
        return r;
    }

    internal struct Scalars
    {
        public float Beta1, OneMinusBeta1, Beta2, OneMinusBeta2, StepSize, SqrtBc2, Epsilon;
    }

    internal static void Kernel(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, float decay, in Scalars k)
    {
        int i = 0, n = p.Length;
        ref float rp = ref MemoryMarshal.GetReference(p);
        ref float rg = ref MemoryMarshal.GetReference(g);
        ref float rm = ref MemoryMarshal.GetReference(m);
        ref float rv = ref MemoryMarshal.GetReference(v);
        if (Vector512.IsHardwareAccelerated)
        {
            var b1 = Vector512.Create(k.Beta1); var c1 = Vector512.Create(k.OneMinusBeta1);
            var b2 = Vector512.Create(k.Beta2); var c2 = Vector512.Create(k.OneMinusBeta2);
            var ss = Vector512.Create(k.StepSize); var sb = Vector512.Create(k.SqrtBc2);
            var ep = Vector512.Create(k.Epsilon); var wd = Vector512.Create(decay);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var gi = Vector512.LoadUnsafe(ref rg, (nuint)i);
                var pi = Vector512.LoadUnsafe(ref rp, (nuint)i) * wd;
                var mi = b1 * Vector512.LoadUnsafe(ref rm, (nuint)i) + c1 * gi;
                var vi = b2 * Vector512.LoadUnsafe(ref rv, (nuint)i) + c2 * (gi * gi);
                var denom = Vector512.Sqrt(vi) / sb + ep;
                pi -= ss * (mi / denom);
                pi.StoreUnsafe(ref rp, (nuint)i);
                mi.StoreUnsafe(ref rm, (nuint)i);
                vi.StoreUnsafe(ref rv, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var b1 = Vector256.Create(k.Beta1); var c1 = Vector256.Create(k.OneMinusBeta1);
            var b2 = Vector256.Create(k.Beta2); var c2 = Vector256.Create(k.OneMinusBeta2);
            var ss = Vector256.Create(k.StepSize); var sb = Vector256.Create(k.SqrtBc2);
            var ep = Vector256.Create(k.Epsilon); var wd = Vector256.Create(decay);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var gi = Vector256.LoadUnsafe(ref rg, (nuint)i);
                var pi = Vector256.LoadUnsafe(ref rp, (nuint)i) * wd;
                var mi = b1 * Vector256.LoadUnsafe(ref rm, (nuint)i) + c1 * gi;
                var vi = b2 * Vector256.LoadUnsafe(ref rv, (nuint)i) + c2 * (gi * gi);
                var denom = Vector256.Sqrt(vi) / sb + ep;
                pi -= ss * (mi / denom);
                pi.StoreUnsafe(ref rp, (nuint)i);
                mi.StoreUnsafe(ref rm, (nuint)i);
                vi.StoreUnsafe(ref rv, (nuint)i);
            }
        }
        for (; i < n; i++) ScalarStep(ref p[i], g[i], ref m[i], ref v[i], decay, k);
    }

    private static void ScalarStep(ref float p, float g, ref float m, ref float v, float decay, in Scalars k)
    {
        float pi = p * decay;
        float mi = k.Beta1 * m + k.OneMinusBeta1 * g;
        float vi = k.Beta2 * v + k.OneMinusBeta2 * (g * g);
        float denom = MathF.Sqrt(vi) / k.SqrtBc2 + k.Epsilon;
        p = pi - k.StepSize * (mi / denom);
        m = mi;
        v = vi;
    }

    /// <summary>Test hook: the scalar path over a whole span, to check the vector paths against it.</summary>
    internal static void ScalarReference(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, float decay,
        float beta1, float beta2, float stepSize, float sqrtBc2, float eps)
    {
        var k = new Scalars { Beta1 = beta1, OneMinusBeta1 = 1 - beta1, Beta2 = beta2, OneMinusBeta2 = 1 - beta2, StepSize = stepSize, SqrtBc2 = sqrtBc2, Epsilon = eps };
        for (int i = 0; i < p.Length; i++) ScalarStep(ref p[i], g[i], ref m[i], ref v[i], decay, k);
    }

    /// <summary>Test hook: the vectorised kernel.</summary>
    internal static void VectorKernel(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, float decay,
        float beta1, float beta2, float stepSize, float sqrtBc2, float eps)
    {
        var k = new Scalars { Beta1 = beta1, OneMinusBeta1 = 1 - beta1, Beta2 = beta2, OneMinusBeta2 = 1 - beta2, StepSize = stepSize, SqrtBc2 = sqrtBc2, Epsilon = eps };
        Kernel(p, g, m, v, decay, k);
    }

    private sealed record ScalarsJson
    {
        [JsonPropertyName("step")] public long Step { get; init; }
        [JsonPropertyName("options")] public AdamWOptions Options { get; init; } = new();
        [JsonPropertyName("schedule")] public LearningRateSchedule Schedule { get; init; } = new();
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>
    /// Writes the state into <paramref name="directory"/>: m and v as F32 in <see cref="StateFile"/> (tensors
    /// <c>exp_avg.NAME</c>, <c>exp_avg_sq.NAME</c>, bit-exact) and the step, options and schedule in
    /// <see cref="ScalarsFile"/> (doubles written round-trippably). Each file is written atomically.
    /// </summary>
    public void SaveState(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory.CreateDirectory(directory);
        var tensors = new List<Tensor>(2 * Parameters.Count);
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters.Tensors[i];
            tensors.Add(new Tensor("exp_avg." + p.Name, p.Shape, FirstMoment.Tensors[i].Data));
            tensors.Add(new Tensor("exp_avg_sq." + p.Name, p.Shape, SecondMoment.Tensors[i].Data));
        }
        SafeTensorsWriter.Write(Path.Combine(directory, StateFile), tensors, SafeTensorDType.F32,
            new Dictionary<string, string> { ["step"] = StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        AtomicFile.WriteText(Path.Combine(directory, ScalarsFile),
            JsonSerializer.Serialize(new ScalarsJson { Step = StepCount, Options = Options, Schedule = Schedule }, Json));
    }

    /// <summary>
    /// Restores an optimizer saved by <see cref="SaveState"/> over <paramref name="parameters"/> (which must have the
    /// saved names and shapes): step, moments, options and schedule, so that training continues exactly as if it had
    /// not stopped. Errors name the file and, where there is one, the tensor.
    /// </summary>
    public static AdamW LoadState(string directory, TensorSet parameters)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(parameters);
        string scalarsPath = Path.GetFullPath(Path.Combine(directory, ScalarsFile));
        string statePath = Path.GetFullPath(Path.Combine(directory, StateFile));
        if (!File.Exists(scalarsPath)) throw new FileNotFoundException($"{directory}: no {ScalarsFile}.", scalarsPath);
        ScalarsJson? s;
        try { s = JsonSerializer.Deserialize<ScalarsJson>(File.ReadAllText(scalarsPath), Json); }
        catch (JsonException e) { throw new InvalidDataException($"{scalarsPath}: not valid optimizer state ({e.Message}).", e); }
        if (s is null) throw new InvalidDataException($"{scalarsPath}: empty.");
        if (s.Step < 0) throw new InvalidDataException($"{scalarsPath}: step must be ≥ 0, got {s.Step}.");
        AdamW opt;
        try { opt = new AdamW(parameters, s.Options, s.Schedule); }
        catch (ArgumentException e) { throw new InvalidDataException($"{scalarsPath}: {e.Message}", e); }
        using var f = SafeTensorsFile.Open(statePath);
        for (int i = 0; i < parameters.Count; i++)
        {
            var p = parameters.Tensors[i];
            foreach (var (prefix, set) in new[] { ("exp_avg.", opt.FirstMoment), ("exp_avg_sq.", opt.SecondMoment) })
            {
                string name = prefix + p.Name;
                var info = f[name];
                if (info.DType != "F32")
                    throw new InvalidDataException($"tensor {name} in {f.Path} has dtype {info.DType}; optimizer state must be F32.");
                if (!info.Shape.SequenceEqual(p.Shape.Select(d => (long)d)))
                    throw new InvalidDataException($"tensor {name} in {f.Path} has shape {info.ShapeText}, the parameter is {p.ShapeText}.");
                f.ReadInto(name, set.Tensors[i].Data);
            }
        }
        if (f.Tensors.Count != 2 * parameters.Count)
        {
            var known = parameters.Tensors.SelectMany(p => new[] { "exp_avg." + p.Name, "exp_avg_sq." + p.Name }).ToHashSet(StringComparer.Ordinal);
            var extra = f.Tensors.First(t => !known.Contains(t.Name));
            throw new InvalidDataException($"tensor {extra.Name} in {f.Path} belongs to no parameter being trained.");
        }
        opt.StepCount = s.Step;
        return opt;
    }
}
