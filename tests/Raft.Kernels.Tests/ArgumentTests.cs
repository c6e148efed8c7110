namespace Raft.Kernels.Tests;

/// <summary>Bad arguments raise ArgumentException naming the argument and value, before anything is written.</summary>
public class ArgumentTests
{
    public static TheoryData<string> Implementations => new() { "reference", "cpu" };

    private static ILossKernels Make(string name) => name == "reference" ? ReferenceKernels.Instance : new CpuKernels();

    private const int Rows = 3, Vocab = 10, K = 4;

    private static void AssertRejected(Action call, string param, string valueText, float[] untouched)
    {
        var before = (float[])untouched.Clone();
        var e = Assert.ThrowsAny<ArgumentException>(call);
        Assert.Equal(param, e.ParamName);
        Assert.Contains(valueText, e.Message);
        Assert.True(before.AsSpan().SequenceEqual(untouched), "the buffer was written before the argument error");
    }

    [Theory, MemberData(nameof(Implementations))]
    public void DistillRejectsBadArguments(string impl)
    {
        var kernels = Make(impl);
        var rng = new Random(TestData.NextSeed());
        var s = TestData.Logits(rng, Rows, Vocab);
        var (idx, p) = TestData.TeacherTopK(rng, Rows, Vocab, K, 1f);
        var cfg = new DistillSettings(K, 1f);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p, cfg with { TopK = 0 }, default, s), "TopK", "got 0", s);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p, cfg with { TopK = 11 }, default, s), "TopK", "got 11", s);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p, cfg with { Temperature = 0 }, default, s), "Temperature", "got 0", s);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p, cfg with { Temperature = -1 }, default, s), "Temperature", "got -1", s);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p, cfg with { Kind = DistillLossKind.Jsd, Beta = 1.5f }, default, s), "Beta", "got 1.5", s);
        AssertRejected(() => kernels.Distill(s.AsSpan(1), Rows, Vocab, idx, p, cfg, default, default), "studentLogits", "got 29", s);
        AssertRejected(() => kernels.Distill(s, Rows + 1, Vocab, idx, p, cfg, default, s), "studentLogits", "got 30", s);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx.AsSpan(1), p, cfg, default, s), "teacherIndices", "got 11", s);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p.AsSpan(2), cfg, default, s), "teacherProbs", "got 10", s);
        var badIdx = (int[])idx.Clone(); badIdx[5] = Vocab;
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, badIdx, p, cfg, default, s), "teacherIndices", "got 10", s);
        var dupIdx = (int[])idx.Clone(); dupIdx[K + 3] = dupIdx[K + 1];
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, dupIdx, p, cfg, default, s), "teacherIndices", $"row 1 holds index {dupIdx[K + 1]} twice", s);
        var badP = (float[])p.Clone(); badP[2] = float.NaN;
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, badP, cfg, default, s), "teacherProbs", "got NaN", s);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p, cfg, new float[Rows - 1], s), "rowWeights", "got 2", s);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p, cfg, new[] { 1f, -1f, 1f }, s), "rowWeights", "got -1", s);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p, cfg, default, new float[5]), "gradient", "got 5", s);
        AssertRejected(() => kernels.Distill(s.AsSpan(0, Rows * Vocab - 1), Rows, Vocab - 0, idx, p, cfg, default, s.AsSpan(1)), "studentLogits", "got 29", s);
        var big = new float[Rows * Vocab + 1];
        AssertRejected(() => kernels.Distill(big.AsSpan(0, Rows * Vocab), Rows, Vocab, idx, p, cfg, default, big.AsSpan(1)), "gradient", "offset of 1", big);
        AssertRejected(() => kernels.Distill(s, Rows, Vocab, idx, p, cfg, default, s, normalizer: -2), "normalizer", "got -2", s);
    }

    [Theory, MemberData(nameof(Implementations))]
    public void TopKRejectsBadArguments(string impl)
    {
        var kernels = Make(impl);
        var t = TestData.Logits(new Random(TestData.NextSeed()), Rows, Vocab);
        var idx = new int[Rows * K]; var p = new float[Rows * K];
        AssertRejected(() => kernels.TopKSoftmax(t, Rows, Vocab, 0, 1f, idx, p), "k", "got 0", p);
        AssertRejected(() => kernels.TopKSoftmax(t, Rows, Vocab, Vocab + 1, 1f, new int[Rows * 11], new float[Rows * 11]), "k", "got 11", p);
        AssertRejected(() => kernels.TopKSoftmax(t, Rows, Vocab, K, 0f, idx, p), "temperature", "got 0", p);
        AssertRejected(() => kernels.TopKSoftmax(t, Rows, Vocab, K, float.NaN, idx, p), "temperature", "got NaN", p);
        AssertRejected(() => kernels.TopKSoftmax(t, Rows, Vocab, K, 1f, idx.AsSpan(1), p), "indices", "got 11", p);
        AssertRejected(() => kernels.TopKSoftmax(t, Rows, Vocab, K, 1f, idx, p.AsSpan(1)), "probs", "got 11", p);
        AssertRejected(() => kernels.TopKSoftmax(t, Rows, 0, K, 1f, idx, p), "vocab", "got 0", p);
        AssertRejected(() => kernels.TopKSoftmax(t, -1, Vocab, K, 1f, idx, p), "rows", "got -1", p);
    }

    [Theory, MemberData(nameof(Implementations))]
    public void CrossEntropyRejectsBadArguments(string impl)
    {
        var kernels = Make(impl);
        var s = TestData.Logits(new Random(TestData.NextSeed()), Rows, Vocab);
        AssertRejected(() => kernels.CrossEntropy(s, Rows, Vocab, new[] { 1, 10, 2 }, s), "targets", "got 10", s);
        AssertRejected(() => kernels.CrossEntropy(s, Rows, Vocab, new[] { 1, -1, 2 }, s), "targets", "got -1", s);
        AssertRejected(() => kernels.CrossEntropy(s, Rows, Vocab, new[] { 1, 2 }, s), "targets", "got 2", s);
        AssertRejected(() => kernels.CrossEntropy(s, Rows, Vocab, new[] { 1, 2, 3 }, s, labelSmoothing: 1.5f), "labelSmoothing", "got 1.5", s);
        AssertRejected(() => kernels.CrossEntropy(s, Rows, Vocab, new[] { 1, 2, 3 }, new float[3]), "gradient", "got 3", s);
    }
}
