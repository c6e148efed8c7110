namespace Raft.Kernels.Tests;

/// <summary>
/// The reference's gradients against central finite differences of the reference's own loss, in double,
/// and the reference's values against textbook formulas computed independently here.
/// </summary>
public class ReferenceGradientTests
{
    public static TheoryData<DistillLossKind, float, float, int> DistillCases => new()
    {
        { DistillLossKind.ForwardKL, 0.5f, 0f, 5 },
        { DistillLossKind.ForwardKL, 2f, 0f, 1 },
        { DistillLossKind.ForwardKL, 1f, 0f, 23 },
        { DistillLossKind.ReverseKL, 0.7f, 0f, 5 },
        { DistillLossKind.ReverseKL, 3f, 0f, 23 },
        { DistillLossKind.ReverseKL, 1f, 0f, 1 },
        { DistillLossKind.Jsd, 1.5f, 0.5f, 5 },
        { DistillLossKind.Jsd, 0.5f, 0.1f, 23 },
        { DistillLossKind.Jsd, 2f, 0.9f, 7 },
        { DistillLossKind.Jsd, 1f, 0f, 5 },
        { DistillLossKind.Jsd, 1f, 1f, 5 },
    };

    [Theory, MemberData(nameof(DistillCases))]
    public void DistillGradientMatchesFiniteDifferences(DistillLossKind kind, float tau, float beta, int k)
    {
        int seed = TestData.NextSeed();
        var rng = new Random(seed);
        const int vocab = 23;
        var cfg = new DistillSettings(k, tau, kind, beta);
        var (idx, pf) = TestData.TeacherTopK(rng, 1, vocab, k, tau);
        var p = pf.Select(x => (double)x).ToArray();
        var s = TestData.Logits(rng, 1, vocab).Select(x => (double)x).ToArray();
        var grad = new double[vocab];
        ReferenceKernels.DistillRow(s, idx, p, cfg, grad);
        var scratch = new double[vocab];
        for (int i = 0; i < vocab; i++)
        {
            double h = 1e-5 * Math.Max(1, Math.Abs(s[i]));
            var sp = (double[])s.Clone(); sp[i] += h;
            var sm = (double[])s.Clone(); sm[i] -= h;
            double fd = (ReferenceKernels.DistillRow(sp, idx, p, cfg, scratch) - ReferenceKernels.DistillRow(sm, idx, p, cfg, scratch)) / (2 * h);
            Assert.True(Math.Abs(fd - grad[i]) <= 1e-6 + 1e-5 * Math.Abs(fd),
                $"seed {seed}, {kind} τ={tau} β={beta} K={k}: ∂L/∂s[{i}] analytic {grad[i]:E6} vs finite difference {fd:E6}");
        }
    }

    [Theory]
    [InlineData(0f, 17)]
    [InlineData(0.1f, 17)]
    [InlineData(1f, 4)]
    public void CrossEntropyGradientMatchesFiniteDifferences(float eps, int vocab)
    {
        int seed = TestData.NextSeed();
        var rng = new Random(seed);
        var s = TestData.Logits(rng, 1, vocab).Select(x => (double)x).ToArray();
        int target = rng.Next(vocab);
        var grad = new double[vocab];
        var scratch = new double[vocab];
        ReferenceKernels.CrossEntropyRow(s, target, eps, grad);
        for (int i = 0; i < vocab; i++)
        {
            double h = 1e-5;
            var sp = (double[])s.Clone(); sp[i] += h;
            var sm = (double[])s.Clone(); sm[i] -= h;
            double fd = (ReferenceKernels.CrossEntropyRow(sp, target, eps, scratch) - ReferenceKernels.CrossEntropyRow(sm, target, eps, scratch)) / (2 * h);
            Assert.True(Math.Abs(fd - grad[i]) <= 1e-7 + 1e-6 * Math.Abs(fd), $"seed {seed}: ∂L/∂s[{i}] {grad[i]:E6} vs {fd:E6}");
        }
    }

    [Fact]
    public void ForwardKlWithFullSupportIsTextbookKlTimesTauSquared()
    {
        var rng = new Random(TestData.NextSeed());
        const int vocab = 11; const float tau = 1.7f;
        var t = TestData.Logits(rng, 1, vocab);
        var s = TestData.Logits(rng, 1, vocab);
        var idx = new int[vocab]; var p = new float[vocab];
        ReferenceKernels.Instance.TopKSoftmax(t, 1, vocab, vocab, tau, idx, p);
        double Softmax(float[] x, int i) => Math.Exp(x[i] / tau) / x.Sum(v => Math.Exp(v / tau));
        double kl = 0;
        for (int i = 0; i < vocab; i++) kl += Softmax(t, i) * Math.Log(Softmax(t, i) / Softmax(s, i));
        var r = ReferenceKernels.Instance.Distill(s, 1, vocab, idx, p, new DistillSettings(vocab, tau), default, default);
        TestData.AssertClose(tau * tau * kl, r.Loss, 1e-6, "forward KL");
        var same = ReferenceKernels.Instance.Distill(t, 1, vocab, idx, p, new DistillSettings(vocab, tau), default, default);
        Assert.True(Math.Abs(same.Loss) < 1e-6, $"KL(p‖p) should be 0, got {same.Loss}");
    }

    [Fact]
    public void JsdMatchesItsDefinitionAndIsSymmetricAtHalf()
    {
        var rng = new Random(TestData.NextSeed());
        const int vocab = 9; const float tau = 1f;
        var t = TestData.Logits(rng, 1, vocab);
        var s = TestData.Logits(rng, 1, vocab);
        var idx = new int[vocab]; var p = new float[vocab];
        ReferenceKernels.Instance.TopKSoftmax(t, 1, vocab, vocab, tau, idx, p);
        var P = new double[vocab];
        for (int j = 0; j < vocab; j++) P[idx[j]] = p[j];
        var Q = s.Select(x => Math.Exp(x)).ToArray(); double z = Q.Sum();
        for (int i = 0; i < vocab; i++) Q[i] /= z;
        foreach (double beta in new[] { 0.2, 0.5, 0.8 })
        {
            double d = 0;
            for (int i = 0; i < vocab; i++)
            {
                double m = beta * P[i] + (1 - beta) * Q[i];
                d += beta * P[i] * Math.Log(P[i] / m) + (1 - beta) * Q[i] * Math.Log(Q[i] / m);
            }
            var r = ReferenceKernels.Instance.Distill(s, 1, vocab, idx, p, new DistillSettings(vocab, tau, DistillLossKind.Jsd, (float)beta), default, default);
            TestData.AssertClose(d, r.Loss, 1e-6, $"JSD β={beta}");
        }
    }

    [Fact]
    public void TopKTiesGoToTheLowerIndex()
    {
        float[] row = [1f, 3f, 2f, 3f, 1f, 3f, 0f];
        var idx = new int[4]; var p = new float[4];
        foreach (ILossKernels kernels in new ILossKernels[] { ReferenceKernels.Instance, new CpuKernels() })
        {
            kernels.TopKSoftmax(row, 1, row.Length, 4, 1f, idx, p);
            Assert.Equal(new[] { 1, 3, 5, 2 }, idx);
            Assert.Equal(p[0], p[1]);
            TestData.AssertClose(Math.Exp(3) / (3 * Math.Exp(3) + Math.Exp(2)), p[0], 1e-6, kernels.Name);
        }
    }
}
