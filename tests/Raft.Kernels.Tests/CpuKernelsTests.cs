namespace Raft.Kernels.Tests;

/// <summary>
/// Every CPU kernel variant (each vector width this machine runs, one and several threads) against the
/// double-precision reference on fresh random inputs: odd vocabularies, K = 1 and K = V, τ below and
/// above 1, masked rows, rows near ±1e4, in-place, separate and loss-only gradients.
/// </summary>
public class CpuKernelsTests
{
    private static readonly int[] Vocabs = [1, 37, 1000, 4099];
    private static readonly float[] Taus = [0.5f, 2f];
    private const double LossTol = 1e-5, GradTol = 1e-5;

    public static TheoryData<SimdLevel, int> Variants()
    {
        var d = new TheoryData<SimdLevel, int>();
        foreach (var level in CpuKernels.SupportedLevels)
            foreach (int threads in new[] { 1, 2 })
                d.Add(level, threads);
        return d;
    }

    public static TheoryData<SimdLevel, int, DistillLossKind, float> DistillVariants()
    {
        var d = new TheoryData<SimdLevel, int, DistillLossKind, float>();
        foreach (var level in CpuKernels.SupportedLevels)
            foreach (int threads in new[] { 1, 2 })
            {
                d.Add(level, threads, DistillLossKind.ForwardKL, 0f);
                d.Add(level, threads, DistillLossKind.ReverseKL, 0f);
                d.Add(level, threads, DistillLossKind.Jsd, 0.3f);
                d.Add(level, threads, DistillLossKind.Jsd, 0f);
                d.Add(level, threads, DistillLossKind.Jsd, 1f);
            }
        return d;
    }

    /// <summary>[rows, vocab] with rows cycling through offsets 0, +1e4, −1e4.</summary>
    private static float[] Rows(Random rng, int rows, int vocab)
    {
        var a = TestData.Logits(rng, rows, vocab);
        for (int r = 0; r < rows; r++)
        {
            float offset = (r % 3) switch { 1 => 1e4f, 2 => -1e4f, _ => 0f };
            for (int i = 0; i < vocab; i++) a[r * vocab + i] += offset;
        }
        return a;
    }

    private static IEnumerable<int> Ks(int vocab) => new[] { 1, Math.Min(17, vocab), vocab }.Distinct();

    [Theory, MemberData(nameof(Variants))]
    public void TopKSoftmaxMatchesReference(SimdLevel level, int threads)
    {
        var cpu = new CpuKernels(threads, level);
        int seed = TestData.NextSeed();
        var rng = new Random(seed);
        const int rows = 7;
        foreach (int vocab in Vocabs.Append(40000))
            foreach (int k in Ks(vocab).Append(Math.Min(vocab, 2500)).Distinct())
                foreach (float tau in Taus)
                {
                    var t = Rows(rng, rows, vocab);
                    var (ei, ep) = (new int[rows * k], new float[rows * k]);
                    var (ai, ap) = (new int[rows * k], new float[rows * k]);
                    ReferenceKernels.Instance.TopKSoftmax(t, rows, vocab, k, tau, ei, ep);
                    cpu.TopKSoftmax(t, rows, vocab, k, tau, ai, ap);
                    string what = $"seed {seed} {cpu.Name} V={vocab} K={k} τ={tau}";
                    Assert.True(ei.AsSpan().SequenceEqual(ai), $"{what}: indices differ");
                    TestData.AssertAllClose(ep, ap, 1e-5, 1e-12, what + " probs");
                }
    }

    [Theory, MemberData(nameof(DistillVariants))]
    public void DistillMatchesReference(SimdLevel level, int threads, DistillLossKind kind, float beta)
    {
        var cpu = new CpuKernels(threads, level);
        int seed = TestData.NextSeed();
        var rng = new Random(seed);
        const int rows = 6;
        foreach (int vocab in Vocabs)
            foreach (int k in Ks(vocab))
                foreach (float tau in Taus)
                {
                    var cfg = new DistillSettings(k, tau, kind, beta);
                    var s = Rows(rng, rows, vocab);
                    var (idx, p) = TestData.TeacherTopK(rng, rows, vocab, k, tau);
                    var w = TestData.Weights(rng, rows);
                    string what = $"seed {seed} {cpu.Name} {kind} β={beta} V={vocab} K={k} τ={tau}";

                    var eg = new float[s.Length];
                    var expected = ReferenceKernels.Instance.Distill(s, rows, vocab, idx, p, cfg, w, eg);

                    var ag = new float[s.Length];
                    var separate = cpu.Distill(s, rows, vocab, idx, p, cfg, w, ag);
                    TestData.AssertClose(expected.Loss, separate.Loss, LossTol, what + " loss");
                    TestData.AssertAllClose(eg, ag, GradTol, 1e-9, what + " gradient");

                    var inPlace = (float[])s.Clone();
                    var r2 = cpu.Distill(inPlace, rows, vocab, idx, p, cfg, w, inPlace);
                    Assert.Equal(separate.Loss, r2.Loss);
                    Assert.True(ag.AsSpan().SequenceEqual(inPlace), $"{what}: in-place gradient differs from the separate one");

                    var lossOnly = cpu.Distill(s, rows, vocab, idx, p, cfg, w, default);
                    Assert.Equal(separate.Loss, lossOnly.Loss);
                    Assert.Equal(expected.WeightSum, separate.WeightSum, 6);
                }
    }

    [Theory, MemberData(nameof(Variants))]
    public void CrossEntropyMatchesReference(SimdLevel level, int threads)
    {
        var cpu = new CpuKernels(threads, level);
        int seed = TestData.NextSeed();
        var rng = new Random(seed);
        const int rows = 7;
        foreach (int vocab in Vocabs)
            foreach (float eps in new[] { 0f, 0.1f })
            {
                var s = Rows(rng, rows, vocab);
                var targets = Enumerable.Range(0, rows).Select(r => r == 4 ? -100 : rng.Next(vocab)).ToArray();
                string what = $"seed {seed} {cpu.Name} V={vocab} ε={eps}";
                var eg = new float[s.Length];
                var expected = ReferenceKernels.Instance.CrossEntropy(s, rows, vocab, targets, eg, labelSmoothing: eps);
                var ag = new float[s.Length];
                var actual = cpu.CrossEntropy(s, rows, vocab, targets, ag, labelSmoothing: eps);
                TestData.AssertClose(expected.Loss, actual.Loss, LossTol, what + " loss");
                TestData.AssertAllClose(eg, ag, GradTol, 1e-9, what + " gradient");
                Assert.Equal(rows - 1, actual.WeightSum);
                var inPlace = (float[])s.Clone();
                cpu.CrossEntropy(inPlace, rows, vocab, targets, inPlace, labelSmoothing: eps);
                Assert.True(ag.AsSpan().SequenceEqual(inPlace), $"{what}: in-place gradient differs");
                Assert.All(ag.AsSpan(4 * vocab, vocab).ToArray(), g => Assert.Equal(0f, g));
            }
    }

    [Fact]
    public void ResultsDoNotDependOnTheThreadCount()
    {
        var rng = new Random(TestData.NextSeed());
        const int rows = 64, vocab = 3001, k = 16;
        var s = TestData.Logits(rng, rows, vocab);
        var (idx, p) = TestData.TeacherTopK(rng, rows, vocab, k, 2f);
        var g1 = new float[s.Length]; var g2 = new float[s.Length];
        var a = new CpuKernels(1).Distill(s, rows, vocab, idx, p, new DistillSettings(k, 2f), default, g1);
        var b = new CpuKernels(2).Distill(s, rows, vocab, idx, p, new DistillSettings(k, 2f), default, g2);
        Assert.Equal(a.Loss, b.Loss);
        Assert.True(g1.AsSpan().SequenceEqual(g2));
    }

    [Fact]
    public void NormalizerOverridesTheWeightSumForChunkedBatches()
    {
        var rng = new Random(TestData.NextSeed());
        const int rows = 8, vocab = 100, k = 8;
        var s = TestData.Logits(rng, rows, vocab);
        var (idx, p) = TestData.TeacherTopK(rng, rows, vocab, k, 1f);
        var cpu = new CpuKernels();
        var cfg = new DistillSettings(k, 1f);
        var whole = new float[s.Length];
        var all = cpu.Distill(s, rows, vocab, idx, p, cfg, default, whole);
        var parts = new float[s.Length];
        var a = cpu.Distill(s.AsSpan(0, 3 * vocab), 3, vocab, idx.AsSpan(0, 3 * k), p.AsSpan(0, 3 * k), cfg, default, parts.AsSpan(0, 3 * vocab), normalizer: rows);
        var b = cpu.Distill(s.AsSpan(3 * vocab), 5, vocab, idx.AsSpan(3 * k), p.AsSpan(3 * k), cfg, default, parts.AsSpan(3 * vocab), normalizer: rows);
        TestData.AssertClose(all.Loss, a.Loss + b.Loss, 1e-12, "chunked loss");
        Assert.True(whole.AsSpan().SequenceEqual(parts));
    }

    public static TheoryData<float> NonFinite => new() { float.NaN, float.PositiveInfinity, float.NegativeInfinity };

    [Theory, MemberData(nameof(NonFinite))]
    public void NonFiniteLogitsAreReportedWithTheirRow(float bad)
    {
        foreach (ILossKernels kernels in new ILossKernels[] { ReferenceKernels.Instance, new CpuKernels(1), new CpuKernels(2) })
        {
            var rng = new Random(TestData.NextSeed());
            const int rows = 9, vocab = 333, k = 5;
            var s = TestData.Logits(rng, rows, vocab);
            s[5 * vocab + 123] = bad;
            var (idx, p) = TestData.TeacherTopK(rng, rows, vocab, k, 1f);
            var e1 = Assert.Throws<NonFiniteLogitException>(() => kernels.Distill(s, rows, vocab, idx, p, new DistillSettings(k, 1f), default, new float[s.Length]));
            Assert.Equal((5, "studentLogits"), (e1.Row, e1.Tensor));
            var e2 = Assert.Throws<NonFiniteLogitException>(() => kernels.TopKSoftmax(s, rows, vocab, k, 1f, new int[rows * k], new float[rows * k]));
            Assert.Equal((5, "teacherLogits"), (e2.Row, e2.Tensor));
            var e3 = Assert.Throws<NonFiniteLogitException>(() => kernels.CrossEntropy(s, rows, vocab, new int[rows], new float[s.Length]));
            Assert.Equal((5, "logits"), (e3.Row, e3.Tensor));
            Assert.Contains("row 5", e3.Message);
            // A masked row is not read: garbage there is not an error.
            var w = Enumerable.Repeat(1f, rows).ToArray(); w[5] = 0;
            var r = kernels.Distill(s, rows, vocab, idx, p, new DistillSettings(k, 1f), w, new float[s.Length]);
            Assert.True(double.IsFinite(r.Loss));
        }
    }
}
