using ILGPU;
using ILGPU.Runtime;

namespace Raft.Kernels.Tests;

/// <summary>One ILGPU CPU accelerator (with its context) shared by every test of <see cref="IlgpuKernelsTests"/>.</summary>
public sealed class IlgpuCpuFixture : IDisposable
{
    /// <summary>The kernels under test, owning their context and CPU accelerator.</summary>
    public IlgpuKernels Kernels { get; } = IlgpuKernels.CreateCpu();

    /// <summary>
    /// The run's base seed: RAFT_TEST_SEED when set (to replay a failure), else fresh per run. Every
    /// case mixes it with its own parameters and prints the seed it used in failure messages.
    /// </summary>
    public int RunSeed { get; } = int.TryParse(Environment.GetEnvironmentVariable("RAFT_TEST_SEED"), out int s)
        ? s : Environment.TickCount;

    /// <inheritdoc />
    public void Dispose() => Kernels.Dispose();
}

/// <summary>
/// <see cref="IlgpuKernels"/> (on ILGPU's CPU accelerator) against <see cref="ReferenceKernels"/> on fresh
/// random inputs. Tolerances: loss |Δ| ≤ 1e-5·max(|ref|, 1e-6); gradient |Δ_i| ≤ 1e-5·max_i|g_ref| + 1e-7
/// element-wise; top-K indices identical, probabilities |Δ| ≤ 1e-5·p_ref + 1e-7; EMA weights exactly equal
/// (the device step is double precision with the same operations in the same order).
/// </summary>
public class IlgpuKernelsTests : IClassFixture<IlgpuCpuFixture>
{
    private const double LossRelTol = 1e-5;
    private const double GradRelTol = 1e-5;
    private const double GradAbsTol = 1e-7;

    private readonly IlgpuKernels _k;
    private readonly int _runSeed;

    public IlgpuKernelsTests(IlgpuCpuFixture fixture)
    {
        _k = fixture.Kernels;
        _runSeed = fixture.RunSeed;
    }

    // ================================================================ data

    /// <summary>A seed from the run seed and the case's parameters (FNV-1a: stable across processes, unlike HashCode).</summary>
    private int Seed(params object[] parts)
    {
        uint h = 2166136261u ^ (uint)_runSeed;
        foreach (char c in string.Join("|", parts.Select(p => Convert.ToString(p, System.Globalization.CultureInfo.InvariantCulture))))
            h = (h ^ c) * 16777619u;
        return (int)(h & 0x7FFFFFFF);
    }

    /// <summary>Logits [rows, vocab]: N(0, σ²) with σ ∈ [0.5, 4); rows listed in <paramref name="large"/> sit near ±1e4.</summary>
    private static float[] Logits(Random rng, int rows, int vocab, params int[] large)
    {
        var x = new float[rows * vocab];
        for (int r = 0; r < rows; r++)
        {
            double sigma = 0.5 + 3.5 * rng.NextDouble();
            bool big = Array.IndexOf(large, r) >= 0;
            double offset = big ? (r % 2 == 0 ? 1e4 : -1e4) : 0;
            for (int i = 0; i < vocab; i++)
            {
                double v = offset + sigma * Gauss.Next(rng);
                // A large row also spreads: some entries far below (exp underflows to exactly 0 at any τ).
                if (big && rng.NextDouble() < 0.2) v -= 2e4 * Math.Sign(offset) * rng.NextDouble();
                x[r * vocab + i] = (float)v;
            }
        }
        return x;
    }

    /// <summary>Teacher top-K from fresh random teacher logits, through the reference (the realistic input).</summary>
    private static (int[] Idx, float[] P) Teacher(Random rng, int rows, int vocab, int k, float tau)
    {
        var t = Logits(rng, rows, vocab);
        var idx = new int[rows * k];
        var p = new float[rows * k];
        ReferenceKernels.Instance.TopKSoftmax(t, rows, vocab, k, tau, idx, p);
        return (idx, p);
    }

    private static float[] Weights(Random rng, int rows, params int[] zero)
    {
        var w = new float[rows];
        for (int r = 0; r < rows; r++) w[r] = Array.IndexOf(zero, r) >= 0 ? 0f : (float)(0.25 + 1.5 * rng.NextDouble());
        return w;
    }

    // ================================================================ checks

    private static void AssertLoss(LossResult expected, LossResult actual, string what)
    {
        AssertClose(expected.Loss, actual.Loss, LossRelTol, $"{what}: Loss");
        AssertClose(expected.LossSum, actual.LossSum, LossRelTol, $"{what}: LossSum");
        AssertClose(expected.WeightSum, actual.WeightSum, 1e-12, $"{what}: WeightSum");
        AssertClose(expected.Normalizer, actual.Normalizer, 1e-12, $"{what}: Normalizer");
    }

    private static void AssertClose(double expected, double actual, double rel, string what)
    {
        double tol = rel * Math.Max(Math.Abs(expected), 1e-6);
        Assert.True(Math.Abs(expected - actual) <= tol, $"{what}: expected {expected:R}, got {actual:R} (|Δ| = {Math.Abs(expected - actual):E3} > {tol:E3})");
    }

    private static void AssertGradient(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        foreach (float v in expected) max = Math.Max(max, Math.Abs(v));
        double tol = GradRelTol * max + GradAbsTol;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs((double)expected[i] - actual[i]);
            if (!(d <= tol))
                Assert.Fail($"{what}: gradient[{i}] expected {expected[i]:R}, got {actual[i]:R} (|Δ| = {d:E3} > {tol:E3}, max|g| = {max:E3})");
        }
    }

    // ================================================================ top-K

    [Theory]
    [InlineData(1, 1, 0.5f)]
    [InlineData(37, 1, 2.0f)]
    [InlineData(37, 37, 0.5f)]
    [InlineData(37, 5, 2.0f)]
    [InlineData(1000, 1, 0.5f)]
    [InlineData(1000, 64, 2.0f)]
    [InlineData(1000, 1000, 2.0f)]
    [InlineData(4099, 20, 0.5f)]
    [InlineData(4099, 4099, 0.5f)]
    public void TopKSoftmax_MatchesReference(int vocab, int k, float tau)
    {
        int seed = Seed(nameof(TopKSoftmax_MatchesReference), vocab, k, tau);
        var rng = new Random(seed);
        int rows = vocab * k > 1_000_000 ? 2 : 5;
        var logits = Logits(rng, rows, vocab, 1);
        CompareTopK(logits, rows, vocab, k, tau, $"seed {seed}");
    }

    [Fact]
    public void TopKSoftmax_TiesGoToTheLowerIndex()
    {
        int seed = Seed(nameof(TopKSoftmax_TiesGoToTheLowerIndex));
        var rng = new Random(seed);
        const int rows = 3, vocab = 300;
        var logits = new float[rows * vocab];
        for (int i = 0; i < logits.Length; i++) logits[i] = rng.Next(-8, 9) * 0.5f; // many exact ties
        logits[5] = -0f; logits[6] = 0f; // −0 and +0 compare equal
        foreach (int k in new[] { 1, 7, 40, 150, vocab })
            CompareTopK(logits, rows, vocab, k, 1.0f, $"seed {seed}, k {k}");
    }

    private void CompareTopK(float[] logits, int rows, int vocab, int k, float tau, string what)
    {
        var refIdx = new int[rows * k];
        var refP = new float[rows * k];
        ReferenceKernels.Instance.TopKSoftmax(logits, rows, vocab, k, tau, refIdx, refP);
        var idx = new int[rows * k];
        var p = new float[rows * k];
        Array.Fill(idx, -1);
        Array.Fill(p, float.NaN);
        _k.TopKSoftmax(logits, rows, vocab, k, tau, idx, p);
        for (int i = 0; i < idx.Length; i++)
        {
            Assert.True(refIdx[i] == idx[i], $"{what}: indices[{i / k}, {i % k}] expected {refIdx[i]}, got {idx[i]}");
            double tol = 1e-5 * refP[i] + 1e-7;
            Assert.True(Math.Abs(refP[i] - p[i]) <= tol, $"{what}: probs[{i / k}, {i % k}] expected {refP[i]:R}, got {p[i]:R}");
        }
    }

    // ================================================================ distillation

    public static TheoryData<int, int, float, DistillLossKind, float> DistillCases()
    {
        var data = new TheoryData<int, int, float, DistillLossKind, float>();
        foreach (var (vocab, k) in new[] { (1, 1), (37, 1), (37, 37), (37, 8), (1000, 50), (4099, 1), (4099, 4099) })
        foreach (float tau in new[] { 0.5f, 2.0f })
        foreach (var (kind, beta) in new[] { (DistillLossKind.ForwardKL, 0.5f), (DistillLossKind.ReverseKL, 0.5f),
                     (DistillLossKind.Jsd, 0f), (DistillLossKind.Jsd, 0.3f), (DistillLossKind.Jsd, 1f) })
            data.Add(vocab, k, tau, kind, beta);
        return data;
    }

    [Theory]
    [MemberData(nameof(DistillCases))]
    public void Distill_MatchesReference(int vocab, int k, float tau, DistillLossKind kind, float beta)
    {
        int seed = Seed(nameof(Distill_MatchesReference), vocab, k, tau, kind, beta);
        var rng = new Random(seed);
        const int rows = 6;
        var config = new DistillSettings(k, tau, kind, beta);
        var student = Logits(rng, rows, vocab, 2, 5);
        var (idx, p) = Teacher(rng, rows, vocab, k, tau);
        var w = Weights(rng, rows, 1, 4);
        string what = $"seed {seed}, V {vocab}, K {k}, τ {tau}, {kind} β {beta}";

        var refGrad = new float[student.Length];
        var expected = ReferenceKernels.Instance.Distill(student, rows, vocab, idx, p, config, w, refGrad);

        // Separate gradient buffer (pre-filled: every element must be written).
        var grad = new float[student.Length];
        Array.Fill(grad, float.NaN);
        var actual = _k.Distill(student, rows, vocab, idx, p, config, w, grad);
        AssertLoss(expected, actual, what + " (separate)");
        AssertGradient(refGrad, grad, what + " (separate)");

        // In place.
        var inPlace = (float[])student.Clone();
        actual = _k.Distill(inPlace, rows, vocab, idx, p, config, w, inPlace);
        AssertLoss(expected, actual, what + " (in place)");
        AssertGradient(refGrad, inPlace, what + " (in place)");

        // Loss only, no weights, explicit normalizer.
        expected = ReferenceKernels.Instance.Distill(student, rows, vocab, idx, p, config, default, default, normalizer: 3.5f);
        actual = _k.Distill(student, rows, vocab, idx, p, config, default, default, normalizer: 3.5f);
        AssertLoss(expected, actual, what + " (loss only)");
    }

    [Fact]
    public void Distill_ZeroProbabilityTeacherEntries()
    {
        // Probabilities that underflowed to 0 (the floor in log p of reverse KL and JSD; 0·log 0 = 0 in forward KL).
        int seed = Seed(nameof(Distill_ZeroProbabilityTeacherEntries));
        var rng = new Random(seed);
        const int rows = 4, vocab = 53, k = 6;
        var student = Logits(rng, rows, vocab);
        var idx = new int[rows * k];
        var p = new float[rows * k];
        for (int r = 0; r < rows; r++)
        {
            var perm = Enumerable.Range(0, vocab).OrderBy(_ => rng.Next()).Take(k).ToArray();
            for (int j = 0; j < k; j++)
            {
                idx[r * k + j] = perm[j];
                p[r * k + j] = j % 3 == 1 ? 0f : (float)rng.NextDouble() / k;
            }
        }
        foreach (var (kind, beta) in new[] { (DistillLossKind.ForwardKL, 0f), (DistillLossKind.ReverseKL, 0f), (DistillLossKind.Jsd, 0.7f) })
        {
            var config = new DistillSettings(k, 1.5f, kind, beta);
            var refGrad = new float[student.Length];
            var expected = ReferenceKernels.Instance.Distill(student, rows, vocab, idx, p, config, default, refGrad);
            var grad = new float[student.Length];
            var actual = _k.Distill(student, rows, vocab, idx, p, config, default, grad);
            AssertLoss(expected, actual, $"seed {seed}, {kind}");
            AssertGradient(refGrad, grad, $"seed {seed}, {kind}");
        }
    }

    [Fact]
    public void Distill_AllWeightsZero_GivesZeroLossAndGradientWithoutReading()
    {
        var rng = new Random(Seed(nameof(Distill_AllWeightsZero_GivesZeroLossAndGradientWithoutReading)));
        const int rows = 3, vocab = 20, k = 4;
        var student = Logits(rng, rows, vocab);
        student[vocab + 3] = float.NaN; // not read
        var (idx, p) = Teacher(rng, rows, vocab, k, 1f);
        var grad = new float[student.Length];
        Array.Fill(grad, 7f);
        var r = _k.Distill(student, rows, vocab, idx, p, new DistillSettings(k, 1f), new float[rows], grad);
        Assert.Equal(new LossResult(0, 0, 0, 0), r);
        Assert.All(grad, g => Assert.Equal(0f, g));
    }

    [Fact]
    public void Distill_ZeroRows()
    {
        var r = _k.Distill(ReadOnlySpan<float>.Empty, 0, 10, ReadOnlySpan<int>.Empty, ReadOnlySpan<float>.Empty,
            new DistillSettings(3, 1f), default, default);
        Assert.Equal(new LossResult(0, 0, 0, 0), r);
    }

    // ================================================================ cross-entropy

    [Theory]
    [InlineData(1, 0f)]
    [InlineData(37, 0f)]
    [InlineData(37, 0.1f)]
    [InlineData(1000, 0.1f)]
    [InlineData(1000, 1f)]
    [InlineData(4099, 0f)]
    [InlineData(4099, 0.2f)]
    public void CrossEntropy_MatchesReference(int vocab, float smoothing)
    {
        int seed = Seed(nameof(CrossEntropy_MatchesReference), vocab, smoothing);
        var rng = new Random(seed);
        const int rows = 7, ignore = -100;
        var logits = Logits(rng, rows, vocab, 3, 6);
        var targets = new int[rows];
        for (int r = 0; r < rows; r++) targets[r] = r is 1 or 4 ? ignore : rng.Next(vocab);
        logits[vocab + Math.Min(2, vocab - 1)] = float.PositiveInfinity; // row 1 is ignored: not read
        string what = $"seed {seed}, V {vocab}, ε {smoothing}";

        var refGrad = new float[logits.Length];
        var expected = ReferenceKernels.Instance.CrossEntropy(logits, rows, vocab, targets, refGrad, ignore, smoothing);

        var grad = new float[logits.Length];
        Array.Fill(grad, float.NaN);
        var actual = _k.CrossEntropy(logits, rows, vocab, targets, grad, ignore, smoothing);
        AssertLoss(expected, actual, what + " (separate)");
        AssertGradient(refGrad, grad, what + " (separate)");

        var inPlace = (float[])logits.Clone();
        actual = _k.CrossEntropy(inPlace, rows, vocab, targets, inPlace, ignore, smoothing);
        AssertLoss(expected, actual, what + " (in place)");
        AssertGradient(refGrad, inPlace, what + " (in place)");

        // Loss only, another ignore index, explicit normalizer.
        for (int r = 0; r < rows; r++) if (targets[r] == ignore) targets[r] = -1;
        expected = ReferenceKernels.Instance.CrossEntropy(logits, rows, vocab, targets, default, -1, smoothing, normalizer: 11f);
        actual = _k.CrossEntropy(logits, rows, vocab, targets, default, -1, smoothing, normalizer: 11f);
        AssertLoss(expected, actual, what + " (loss only)");
    }

    [Fact]
    public void CrossEntropy_AllRowsIgnored()
    {
        var logits = new float[] { 1f, 2f, float.NaN, 3f };
        var grad = new float[] { 5f, 5f, 5f, 5f };
        var r = _k.CrossEntropy(logits, 2, 2, new[] { -100, -100 }, grad);
        Assert.Equal(new LossResult(0, 0, 0, 0), r);
        Assert.All(grad, g => Assert.Equal(0f, g));
    }

    // ================================================================ non-finite logits

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void NonFiniteLogit_NamesTensorRowAndColumn(float bad)
    {
        var rng = new Random(Seed(nameof(NonFiniteLogit_NamesTensorRowAndColumn), bad));
        const int rows = 5, vocab = 41, k = 3;
        var x = Logits(rng, rows, vocab);
        x[2 * vocab + 17] = bad;
        x[4 * vocab + 3] = bad;

        var idx = new int[rows * k];
        var p = new float[rows * k];
        var e = Assert.Throws<NonFiniteLogitException>(() => _k.TopKSoftmax(x, rows, vocab, k, 1f, idx, p));
        Assert.Equal(("teacherLogits", 2, 17), (e.Tensor, e.Row, e.Column));

        var (ti, tp) = Teacher(rng, rows, vocab, k, 1f);
        foreach (var kind in new[] { DistillLossKind.ForwardKL, DistillLossKind.ReverseKL, DistillLossKind.Jsd })
        {
            var grad = new float[x.Length];
            e = Assert.Throws<NonFiniteLogitException>(() => _k.Distill(x, rows, vocab, ti, tp, new DistillSettings(k, 1f, kind), default, grad));
            Assert.Equal(("studentLogits", 2, 17), (e.Tensor, e.Row, e.Column));
            Assert.Equal(bad, e.Value);
            // Row 2 has weight 0: not read, so the first bad row is 4.
            var w = new float[] { 1, 1, 0, 1, 1 };
            e = Assert.Throws<NonFiniteLogitException>(() => _k.Distill(x, rows, vocab, ti, tp, new DistillSettings(k, 1f, kind), w, grad));
            Assert.Equal(("studentLogits", 4, 3), (e.Tensor, e.Row, e.Column));
        }

        var targets = new[] { 0, 1, 2, 3, 4 };
        e = Assert.Throws<NonFiniteLogitException>(() => _k.CrossEntropy(x, rows, vocab, targets, default));
        Assert.Equal(("logits", 2, 17), (e.Tensor, e.Row, e.Column));
        targets[2] = -100;
        e = Assert.Throws<NonFiniteLogitException>(() => _k.CrossEntropy(x, rows, vocab, targets, default));
        Assert.Equal(("logits", 4, 3), (e.Tensor, e.Row, e.Column));
    }

    [Fact]
    public void NonFiniteLogit_LeavesCallerBuffersUntouched()
    {
        var rng = new Random(Seed(nameof(NonFiniteLogit_LeavesCallerBuffersUntouched)));
        const int rows = 3, vocab = 30;
        var x = Logits(rng, rows, vocab);
        x[2 * vocab] = float.NaN;
        var copy = (float[])x.Clone();
        Assert.Throws<NonFiniteLogitException>(() => _k.CrossEntropy(x, rows, vocab, new[] { 1, 2, 3 }, x));
        Assert.Equal(copy, x);
    }

    // ================================================================ arguments

    [Fact]
    public void BadArguments_ThrowNamingTheParameter_BeforeWriting()
    {
        const int rows = 2, vocab = 5, k = 2;
        var x = new float[rows * vocab];
        for (int i = 0; i < x.Length; i++) x[i] = 0.1f * i - 0.3f;
        var idx = new[] { 0, 1, 2, 3 };
        var p = new[] { 0.6f, 0.4f, 0.7f, 0.3f };
        var grad = new float[x.Length];
        Array.Fill(grad, 9f);
        var cfg = new DistillSettings(k, 1f);

        void Expect(string param, Action call)
        {
            var e = Assert.ThrowsAny<ArgumentException>(call);
            Assert.Equal(param, e.ParamName);
            Assert.All(grad, g => Assert.Equal(9f, g));
        }

        var outIdx = new int[rows * k];
        var outP = new float[rows * k];
        Expect("rows", () => _k.TopKSoftmax(x, -1, vocab, k, 1f, outIdx, outP));
        Expect("vocab", () => _k.TopKSoftmax(x, rows, 0, k, 1f, outIdx, outP));
        Expect("teacherLogits", () => _k.TopKSoftmax(x.AsSpan(1), rows, vocab, k, 1f, outIdx, outP));
        Expect("k", () => _k.TopKSoftmax(x, rows, vocab, vocab + 1, 1f, outIdx, outP));
        Expect("k", () => _k.TopKSoftmax(x, rows, vocab, 0, 1f, outIdx, outP));
        Expect("temperature", () => _k.TopKSoftmax(x, rows, vocab, k, 0f, outIdx, outP));
        Expect("temperature", () => _k.TopKSoftmax(x, rows, vocab, k, float.NaN, outIdx, outP));
        Expect("indices", () => _k.TopKSoftmax(x, rows, vocab, k, 1f, new int[3], outP));
        Expect("probs", () => _k.TopKSoftmax(x, rows, vocab, k, 1f, outIdx, new float[5]));

        Expect("studentLogits", () => _k.Distill(x.AsSpan(1), rows, vocab, idx, p, cfg, default, grad));
        Expect("TopK", () => _k.Distill(x, rows, vocab, idx, p, cfg with { TopK = 6 }, default, grad));
        Expect("Temperature", () => _k.Distill(x, rows, vocab, idx, p, cfg with { Temperature = -1f }, default, grad));
        Expect("Beta", () => _k.Distill(x, rows, vocab, idx, p, cfg with { Kind = DistillLossKind.Jsd, Beta = 1.5f }, default, grad));
        Expect("Kind", () => _k.Distill(x, rows, vocab, idx, p, cfg with { Kind = (DistillLossKind)7 }, default, grad));
        Expect("teacherIndices", () => _k.Distill(x, rows, vocab, new[] { 0, 1, 5, 3 }, p, cfg, default, grad));
        Expect("teacherIndices", () => _k.Distill(x, rows, vocab, new[] { 0, 1, 2 }, p, cfg, default, grad));
        Expect("teacherIndices", () => _k.Distill(x, rows, vocab, new[] { 0, 1, 3, 3 }, p, cfg, default, grad));
        Expect("teacherProbs", () => _k.Distill(x, rows, vocab, idx, new[] { 0.6f, 0.4f, float.NaN, 0.3f }, cfg, default, grad));
        Expect("rowWeights", () => _k.Distill(x, rows, vocab, idx, p, cfg, new[] { 1f, -1f }, grad));
        Expect("rowWeights", () => _k.Distill(x, rows, vocab, idx, p, cfg, new[] { 1f }, grad));
        Expect("gradient", () => _k.Distill(x, rows, vocab, idx, p, cfg, default, grad.AsSpan(1)));
        Expect("normalizer", () => _k.Distill(x, rows, vocab, idx, p, cfg, default, grad, -1f));

        Expect("logits", () => _k.CrossEntropy(x.AsSpan(1), rows, vocab, new[] { 0, 1 }, grad));
        Expect("targets", () => _k.CrossEntropy(x, rows, vocab, new[] { 0, 5 }, grad));
        Expect("targets", () => _k.CrossEntropy(x, rows, vocab, new[] { 0 }, grad));
        Expect("labelSmoothing", () => _k.CrossEntropy(x, rows, vocab, new[] { 0, 1 }, grad, labelSmoothing: 1.5f));
        Expect("gradient", () => _k.CrossEntropy(x, rows, vocab, new[] { 0, 1 }, grad.AsSpan(2)));
        Expect("normalizer", () => _k.CrossEntropy(x, rows, vocab, new[] { 0, 1 }, grad, normalizer: float.PositiveInfinity));
    }

    [Fact]
    public void PartialOverlapOfGradientAndStudent_IsRejected()
    {
        var buffer = new float[21];
        for (int i = 0; i < buffer.Length; i++) buffer[i] = 0.05f * i;
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            _k.CrossEntropy(buffer.AsSpan(0, 20), 4, 5, new[] { 0, 1, 2, 3 }, buffer.AsSpan(1, 20)));
        Assert.Equal("gradient", e.ParamName);
    }

    // ================================================================ device-resident overloads

    [Fact]
    public void DeviceOverloads_MatchReference_WithPerRowLosses()
    {
        int seed = Seed(nameof(DeviceOverloads_MatchReference_WithPerRowLosses));
        var rng = new Random(seed);
        const int rows = 5, vocab = 203, k = 9;
        var acc = _k.Accelerator;
        var teacher = Logits(rng, rows, vocab, 3);
        var student = Logits(rng, rows, vocab, 1);
        var w = Weights(rng, rows, 2);
        string what = $"seed {seed}";

        // Top-K on device.
        using var dTeacher = acc.Allocate1D(teacher);
        using var dIdx = acc.Allocate1D<int>(rows * k);
        using var dProbs = acc.Allocate1D<float>(rows * k);
        _k.TopKSoftmax(dTeacher.View, rows, vocab, k, 0.7f, dIdx.View, dProbs.View);
        var refIdx = new int[rows * k];
        var refP = new float[rows * k];
        ReferenceKernels.Instance.TopKSoftmax(teacher, rows, vocab, k, 0.7f, refIdx, refP);
        Assert.Equal(refIdx, dIdx.GetAsArray1D());
        var probs = dProbs.GetAsArray1D();
        for (int i = 0; i < probs.Length; i++) Assert.True(Math.Abs(refP[i] - probs[i]) <= 1e-5 * refP[i] + 1e-7, what);

        // Distill on device, from the device top-K, in place and separate.
        foreach (var (kind, beta) in new[] { (DistillLossKind.ForwardKL, 0f), (DistillLossKind.ReverseKL, 0f), (DistillLossKind.Jsd, 0.3f) })
        {
            var config = new DistillSettings(k, 0.7f, kind, beta);
            var refGrad = new float[student.Length];
            var expected = ReferenceKernels.Instance.Distill(student, rows, vocab, refIdx, refP, config, w, refGrad);
            using var dStudent = acc.Allocate1D(student);
            using var dW = acc.Allocate1D(w);
            using var dGrad = acc.Allocate1D<float>(student.Length);
            using var dRowLoss = acc.Allocate1D<float>(rows);
            var actual = _k.Distill(dStudent.View, rows, vocab, dIdx.View, dProbs.View, config, dW.View, dGrad.View, dRowLoss.View);
            AssertLoss(expected, actual, $"{what} {kind}");
            AssertGradient(refGrad, dGrad.GetAsArray1D(), $"{what} {kind}");
            var rowLoss = dRowLoss.GetAsArray1D();
            for (int r = 0; r < rows; r++)
            {
                var one = ReferenceKernels.Instance.Distill(student.AsSpan(r * vocab, vocab), 1, vocab, refIdx.AsSpan(r * k, k),
                    refP.AsSpan(r * k, k), config, default, default);
                AssertClose(w[r] == 0 ? 0 : one.Loss, rowLoss[r], LossRelTol, $"{what} {kind} row {r}");
            }

            actual = _k.Distill(dStudent.View, rows, vocab, dIdx.View, dProbs.View, config, dW.View, dStudent.View, default);
            AssertLoss(expected, actual, $"{what} {kind} in place");
            AssertGradient(refGrad, dStudent.GetAsArray1D(), $"{what} {kind} in place");
        }

        // Cross-entropy on device.
        var targets = new[] { 3, -100, 200, 0, 57 };
        var ceRef = new float[student.Length];
        var ceExpected = ReferenceKernels.Instance.CrossEntropy(student, rows, vocab, targets, ceRef, labelSmoothing: 0.1f);
        using var dLogits = acc.Allocate1D(student);
        using var dTargets = acc.Allocate1D(targets);
        using var dCeRow = acc.Allocate1D<float>(rows);
        var ce = _k.CrossEntropy(dLogits.View, rows, vocab, dTargets.View, dLogits.View, dCeRow.View, labelSmoothing: 0.1f);
        AssertLoss(ceExpected, ce, $"{what} CE");
        AssertGradient(ceRef, dLogits.GetAsArray1D(), $"{what} CE");
        Assert.Equal(0f, dCeRow.GetAsArray1D()[1]);
        AssertClose(ceExpected.LossSum, dCeRow.GetAsArray1D().Sum(v => (double)v), LossRelTol, $"{what} CE row sum");
    }

    [Fact]
    public void DeviceOverloads_CheckContentsOnDevice_BeforeWriting()
    {
        const int rows = 2, vocab = 5, k = 2;
        var acc = _k.Accelerator;
        var x = new float[rows * vocab];
        for (int i = 0; i < x.Length; i++) x[i] = 0.3f * i - 1f;
        using var dX = acc.Allocate1D(x);
        using var dGrad = acc.Allocate1D<float>(x.Length);
        var nines = Enumerable.Repeat(9f, x.Length).ToArray();
        var cfg = new DistillSettings(k, 1f);

        void Expect(string param, Func<LossResult> call)
        {
            dGrad.View.CopyFromCPU(nines);
            var e = Assert.ThrowsAny<ArgumentException>(() => call());
            Assert.Equal(param, e.ParamName);
            Assert.Equal(nines, dGrad.GetAsArray1D());
        }

        using var badIdx = acc.Allocate1D(new[] { 0, 1, 2, -3 });
        using var goodIdx = acc.Allocate1D(new[] { 0, 1, 2, 3 });
        using var goodP = acc.Allocate1D(new[] { 0.5f, 0.5f, 0.9f, 0.1f });
        using var badP = acc.Allocate1D(new[] { 0.5f, 2f, 0.9f, 0.1f });
        using var badW = acc.Allocate1D(new[] { 1f, float.NaN });
        using var dupIdx = acc.Allocate1D(new[] { 0, 1, 4, 4 });
        using var badTargets = acc.Allocate1D(new[] { 9, 0 });
        using var targets = acc.Allocate1D(new[] { 1, 0 });
        Expect("teacherIndices", () => _k.Distill(dX.View, rows, vocab, badIdx.View, goodP.View, cfg, default, dGrad.View, default));
        Expect("teacherProbs", () => _k.Distill(dX.View, rows, vocab, goodIdx.View, badP.View, cfg, default, dGrad.View, default));
        var dupError = Assert.ThrowsAny<ArgumentException>(() => _k.Distill(dX.View, rows, vocab, dupIdx.View, goodP.View, cfg, default, dGrad.View, default));
        Assert.Contains("row 1 holds index 4 twice", dupError.Message);
        Expect("teacherIndices", () => _k.Distill(dX.View, rows, vocab, dupIdx.View, goodP.View, cfg, default, dGrad.View, default));
        Expect("rowWeights", () => _k.Distill(dX.View, rows, vocab, goodIdx.View, goodP.View, cfg, badW.View, dGrad.View, default));
        Expect("studentLogits", () => _k.Distill(dX.View.SubView(1, x.Length - 1), rows, vocab, goodIdx.View, goodP.View, cfg, default, dGrad.View, default));
        Expect("gradient", () => _k.Distill(dX.View, rows, vocab, goodIdx.View, goodP.View, cfg, default, dGrad.View.SubView(1, x.Length - 1), default));
        Expect("targets", () => _k.CrossEntropy(dX.View, rows, vocab, badTargets.View, dGrad.View, default));
        Expect("labelSmoothing", () => _k.CrossEntropy(dX.View, rows, vocab, targets.View, dGrad.View, default, labelSmoothing: -0.5f));

        using var big = acc.Allocate1D<float>(x.Length + 3);
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            _k.CrossEntropy(big.View.SubView(0, x.Length), rows, vocab, targets.View, big.View.SubView(2, x.Length), default));
        Assert.Equal("gradient", e.ParamName);

        var nan = (float[])x.Clone();
        nan[vocab + 4] = float.NaN;
        using var dNan = acc.Allocate1D(nan);
        var ex = Assert.Throws<NonFiniteLogitException>(() =>
            _k.Distill(dNan.View, rows, vocab, goodIdx.View, goodP.View, cfg, default, default, default));
        Assert.Equal(("studentLogits", 1, 4), (ex.Tensor, ex.Row, ex.Column));
        Assert.True(float.IsNaN(ex.Value));
    }

    // ================================================================ EMA balancer

    [Fact]
    public void EmaBalancerStep_OnDevice_MatchesEmaBalancerExactly()
    {
        int seed = Seed(nameof(EmaBalancerStep_OnDevice_MatchesEmaBalancerExactly));
        var rng = new Random(seed);
        var acc = _k.Accelerator;
        double decay = 0.9;
        var ratio = new[] { 1.0, 0.5 + rng.NextDouble(), 0.25 };
        var host = new EmaBalancer(decay, ratio);

        using var dRatio = acc.Allocate1D(ratio);
        using var dEma = acc.Allocate1D(new double[ratio.Length]);
        using var dSteps = acc.Allocate1D(new long[1]);
        using var dLoss = acc.Allocate1D<double>(ratio.Length);
        using var dWeights = acc.Allocate1D<double>(ratio.Length);
        using var dStatus = acc.Allocate1D<int>(1);
        var state = host.State;
        for (int step = 0; step < 25; step++)
        {
            var losses = new double[ratio.Length];
            for (int j = 0; j < losses.Length; j++) losses[j] = (rng.NextDouble() - 0.2) * Math.Pow(10, rng.Next(-3, 3));
            if (step == 3) losses[1] = 0; // a zero magnitude hits the ε floor
            var expected = host.Step(losses);

            // Device-resident state, step after step.
            dLoss.View.CopyFromCPU(losses);
            IlgpuKernels.EmaBalancerStep(acc, decay, dRatio.View, dEma.View, dSteps.View, dLoss.View, dWeights.View, dStatus.View);
            acc.Synchronize();
            Assert.Equal(0, dStatus.GetAsArray1D()[0]);
            Assert.Equal(expected, dWeights.GetAsArray1D());
            Assert.Equal(host.State.Ema, dEma.GetAsArray1D());
            Assert.Equal(host.Steps, dSteps.GetAsArray1D()[0]);

            // The host helper, from the saved state.
            var (w, next) = IlgpuKernels.RunEmaBalancerStep(acc, state, losses);
            Assert.Equal(expected, w);
            Assert.Equal(host.State.Ema, next.Ema);
            Assert.Equal(host.Steps, next.Steps);
            state = next;
        }

        // A non-finite loss: the device leaves the state unchanged and reports the term; the helper throws.
        var emaBefore = dEma.GetAsArray1D();
        dLoss.View.CopyFromCPU(new[] { 1.0, double.NaN, 2.0 });
        IlgpuKernels.EmaBalancerStep(acc, decay, dRatio.View, dEma.View, dSteps.View, dLoss.View, dWeights.View, dStatus.View);
        acc.Synchronize();
        Assert.Equal(2, dStatus.GetAsArray1D()[0]);
        Assert.Equal(emaBefore, dEma.GetAsArray1D());
        Assert.Equal(host.Steps, dSteps.GetAsArray1D()[0]);
        Assert.Equal(host.Weights(), dWeights.GetAsArray1D());
        var e = Assert.ThrowsAny<ArgumentException>(() => IlgpuKernels.RunEmaBalancerStep(acc, state, new[] { 1.0, double.PositiveInfinity, 2.0 }));
        Assert.Equal("losses", e.ParamName);
        e = Assert.ThrowsAny<ArgumentException>(() => IlgpuKernels.RunEmaBalancerStep(acc, state, new[] { 1.0 }));
        Assert.Equal("losses", e.ParamName);
    }

    [Fact]
    public void EmaBalancerStep_BeforeAnyUpdate_And_DecayZero()
    {
        var acc = _k.Accelerator;
        var state = new EmaBalancerState(0.0, new[] { 2.0, 1.0 }, new[] { 0.0, 0.0 }, 0);
        var host = new EmaBalancer(state);
        var (w, next) = IlgpuKernels.RunEmaBalancerStep(acc, state, new[] { 3.0, -0.5 });
        Assert.Equal(host.Step(new[] { 3.0, -0.5 }), w);
        Assert.Equal(host.State.Ema, next.Ema);
        Assert.Throws<ArgumentException>(() => IlgpuKernels.RunEmaBalancerStep(acc, state with { Decay = 1.0 }, new[] { 1.0, 1.0 }));
    }

    [Fact]
    public void Name_And_GroupSize()
    {
        Assert.Equal("ilgpu-cpu", _k.Name);
        Assert.True(_k.GroupSize >= 1 && (_k.GroupSize & (_k.GroupSize - 1)) == 0);
    }
}
