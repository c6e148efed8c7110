using Raft.Kernels;

namespace Raft.Cuda.Tests;

/// <summary>
/// The CUDA loss kernels against the double-precision reference (Raft.Kernels.ReferenceKernels, the spec) on fresh
/// random inputs. Indices must match exactly; values within fp32 tolerances.
/// </summary>
public class LossKernelGpuTests(GpuFixture gpu) : IClassFixture<GpuFixture>
{
    private CudaDevice Device => gpu.Device;

    // ------------------------------------------------------------------ top-K

    public static TheoryData<int, int, int, float, bool> TopKCases => new()
    {
        // rows, vocab, k, tau, ties
        { 4, 1000, 10, 1.0f, false },
        { 3, 1003, 50, 2.0f, false },    // odd vocab: rows start off the 16-byte grid (scalar head and tail)
        { 2, 7, 7, 0.5f, false },        // k = vocab
        { 3, 1, 1, 1.0f, false },
        { 5, 513, 17, 1.5f, true },      // many exact ties: lower index first
        { 3, 4099, 1024, 1.0f, false },
        { 2, 20000, 4096, 1.0f, true },  // the largest k sorted in shared memory
        { 2, 20000, 4097, 1.0f, false }, // sorted in the output arrays instead
        { 2, 151936, 64, 1.0f, false },  // a Qwen-sized vocabulary
    };

    [GpuTheory]
    [MemberData(nameof(TopKCases))]
    public void TopKSoftmaxMatchesTheReference(int rows, int vocab, int k, float tau, bool ties)
    {
        var rng = TestRandom.Fresh();
        var logits = rng.Normals(rows * vocab, 3.0);
        if (ties)
            for (int i = 0; i < logits.Length; i++) logits[i] = MathF.Round(logits[i]); // also makes -0 and +0
        var expectedIdx = new int[rows * k];
        var expectedP = new float[rows * k];
        ReferenceKernels.Instance.TopKSoftmax(logits, rows, vocab, k, tau, expectedIdx, expectedP);

        using var dLogits = Device.Upload<float>(logits);
        using var dIdx = Device.Allocate<int>(rows * k);
        using var dP = Device.Allocate<float>(rows * k);
        using var dStatus = Device.Allocate<int>(rows);
        gpu.Kernels.TopKSoftmax(dLogits.Pointer, rows, vocab, k, tau, dIdx.Pointer, dP.Pointer, dStatus.Pointer);
        Device.Synchronize();

        Assert.All(dStatus.ToArray(), s => Assert.Equal(0, s));
        var idx = dIdx.ToArray();
        var p = dP.ToArray();
        for (int i = 0; i < idx.Length; i++)
        {
            if (idx[i] != expectedIdx[i])
                Assert.Fail($"index [{i / k}, {i % k}]: got {idx[i]}, expected {expectedIdx[i]} ({rng})");
            AssertClose(expectedP[i], p[i], 1e-5, 1e-7, $"prob [{i / k}, {i % k}] ({rng})");
        }
    }

    [GpuFact]
    public void TopKFlagsRowsWithNonFiniteLogits()
    {
        var rng = TestRandom.Fresh();
        const int rows = 3, vocab = 300, k = 8;
        var logits = rng.Normals(rows * vocab, 1.0);
        logits[1 * vocab + 17] = float.NaN;
        logits[2 * vocab + 250] = float.PositiveInfinity;
        using var dLogits = Device.Upload<float>(logits);
        using var dIdx = Device.Allocate<int>(rows * k);
        using var dP = Device.Allocate<float>(rows * k);
        using var dStatus = Device.Allocate<int>(rows);
        gpu.Kernels.TopKSoftmax(dLogits.Pointer, rows, vocab, k, 1f, dIdx.Pointer, dP.Pointer, dStatus.Pointer);
        Device.Synchronize();
        Assert.Equal([0, 1, 1], dStatus.ToArray());
    }

    // ------------------------------------------------------------------ distillation

    public enum GradientMode { None, Separate, InPlace }

    public static TheoryData<DistillLossKind, float, GradientMode, int, int, bool> DistillCases()
    {
        var data = new TheoryData<DistillLossKind, float, GradientMode, int, int, bool>();
        foreach (var (kind, beta) in new[] { (DistillLossKind.ForwardKL, 0.5f), (DistillLossKind.ReverseKL, 0.5f), (DistillLossKind.Jsd, 0.5f), (DistillLossKind.Jsd, 0.1f) })
            foreach (var mode in Enum.GetValues<GradientMode>())
            {
                data.Add(kind, beta, mode, 1000, 20, true);
                data.Add(kind, beta, mode, 1003, 100, false); // rows off the 16-byte grid
            }
        data.Add(DistillLossKind.ForwardKL, 0.5f, GradientMode.InPlace, 32003, 8192, true); // the largest in-place k
        data.Add(DistillLossKind.Jsd, 0.3f, GradientMode.Separate, 20000, 9000, true);      // k gathered from global memory
        data.Add(DistillLossKind.ReverseKL, 0.5f, GradientMode.Separate, 5, 5, true);
        return data;
    }

    [GpuTheory]
    [MemberData(nameof(DistillCases))]
    public void DistillMatchesTheReference(DistillLossKind kind, float beta, GradientMode mode, int vocab, int k, bool weighted)
    {
        var rng = TestRandom.Fresh();
        const int rows = 6;
        const float tau = 1.5f;
        var config = new DistillConfig(k, tau, kind, beta);
        var student = rng.Normals(rows * vocab, 2.0);
        var (tIdx, tP) = Teacher(rng, rows, vocab, k, tau);
        var weights = weighted ? Enumerable.Range(0, rows).Select(r => r == 2 ? 0f : 0.5f + r).ToArray() : [];
        double weightSum = weighted ? weights.Sum(w => (double)w) : rows;
        float normalizer = (float)(weightSum * 1.25);

        var expectedGrad = new float[rows * vocab];
        var expected = ReferenceKernels.Instance.Distill(student, rows, vocab, tIdx, tP, config, weights,
            mode == GradientMode.None ? default : expectedGrad, normalizer);

        using var dStudent = Device.Upload<float>(student);
        using var dGrad = Device.Allocate<float>(mode == GradientMode.Separate ? rows * vocab : 0);
        using var dIdx = Device.Upload<int>(tIdx);
        using var dP = Device.Upload<float>(tP);
        using var dW = Device.Upload<float>(weights);
        using var dLoss = Device.Allocate<float>(rows);
        using var dStatus = Device.Allocate<int>(rows);
        var gradPointer = mode switch
        {
            GradientMode.Separate => dGrad.Pointer,
            GradientMode.InPlace => dStudent.Pointer,
            _ => DevicePointer.Null,
        };
        gpu.Kernels.Distill(dStudent.Pointer, gradPointer, rows, vocab, dIdx.Pointer, dP.Pointer, k,
            weighted ? dW.Pointer : DevicePointer.Null, normalizer, tau, ToDivergence(config.EffectiveKind), beta,
            dLoss.Pointer, dStatus.Pointer);
        Device.Synchronize();

        Assert.All(dStatus.ToArray(), s => Assert.Equal(0, s));
        var rowLoss = dLoss.ToArray();
        double lossSum = 0;
        var s = new double[vocab];
        var g = new double[vocab];
        var p = new double[k];
        for (int r = 0; r < rows; r++)
        {
            double w = weighted ? weights[r] : 1.0;
            if (w == 0)
            {
                Assert.Equal(0f, rowLoss[r]);
                continue;
            }
            for (int i = 0; i < vocab; i++) s[i] = student[r * vocab + i];
            for (int j = 0; j < k; j++) p[j] = tP[r * k + j];
            double rowExpected = ReferenceKernels.DistillRow(s, tIdx.AsSpan(r * k, k), p, config, g);
            AssertClose(rowExpected, rowLoss[r], 1e-4, 1e-5, $"row {r} loss ({rng})");
            lossSum += w * rowLoss[r];
        }
        AssertClose(expected.Loss, lossSum / normalizer, 1e-4, 1e-5, $"loss ({rng})");

        if (mode == GradientMode.None)
        {
            Assert.Equal(student, dStudent.ToArray()); // loss only: the student is untouched
            return;
        }
        var grad = mode == GradientMode.Separate ? dGrad.ToArray() : dStudent.ToArray();
        double maxAbs = expectedGrad.Max(v => Math.Abs((double)v));
        double tolerance = 1e-4 * maxAbs + 1e-9;
        for (int i = 0; i < grad.Length; i++)
            if (Math.Abs(grad[i] - expectedGrad[i]) > tolerance)
                Assert.Fail($"gradient [{i / vocab}, {i % vocab}]: got {grad[i]}, expected {expectedGrad[i]} (tolerance {tolerance:g3}, {rng})");
        if (weighted)
            for (int i = 0; i < vocab; i++) Assert.Equal(0f, grad[2 * vocab + i]); // the row of weight 0
    }

    [GpuFact]
    public void DistillFlagsRowsWithNonFiniteLogits()
    {
        var rng = TestRandom.Fresh();
        const int rows = 3, vocab = 500, k = 4;
        var student = rng.Normals(rows * vocab, 1.0);
        student[2 * vocab + 499] = float.NegativeInfinity;
        student[1 * vocab + 3] = float.NaN;
        var (tIdx, tP) = Teacher(rng, rows, vocab, k, 1f);
        using var dStudent = Device.Upload<float>(student);
        using var dIdx = Device.Upload<int>(tIdx);
        using var dP = Device.Upload<float>(tP);
        using var dLoss = Device.Allocate<float>(rows);
        using var dStatus = Device.Allocate<int>(rows);
        gpu.Kernels.Distill(dStudent.Pointer, DevicePointer.Null, rows, vocab, dIdx.Pointer, dP.Pointer, k,
            DevicePointer.Null, rows, 1f, KdDivergence.ForwardKL, 0.5f, dLoss.Pointer, dStatus.Pointer);
        Device.Synchronize();
        Assert.Equal([0, 1, 1], dStatus.ToArray());
    }

    [GpuFact]
    public void LaunchArgumentsAreValidated()
    {
        var k = gpu.Kernels;
        var p = new DevicePointer(256);
        Assert.Throws<ArgumentOutOfRangeException>(() => k.TopKSoftmax(p, 1, 10, 11, 1f, p, p, p));
        Assert.Throws<ArgumentOutOfRangeException>(() => k.TopKSoftmax(p, 1, 10, 0, 1f, p, p, p));
        Assert.Throws<ArgumentOutOfRangeException>(() => k.TopKSoftmax(p, 1, 10, 3, 0f, p, p, p));
        Assert.Throws<ArgumentException>(() => k.TopKSoftmax(DevicePointer.Null, 1, 10, 3, 1f, p, p, p));
        Assert.Throws<ArgumentOutOfRangeException>(() => k.Distill(p, p, 1, 10, p, p, 3, p, 1f, 1f, KdDivergence.Jsd, 1f, p, p));
        Assert.Throws<ArgumentOutOfRangeException>(() => k.Distill(p, p, 1, 10, p, p, 3, p, float.NaN, 1f, KdDivergence.ForwardKL, 0.5f, p, p));
        Assert.Throws<ArgumentOutOfRangeException>(() => k.Distill(p, p, 1, 20000, p, p, 9000, p, 1f, 1f, KdDivergence.ForwardKL, 0.5f, p, p));
    }

    // ------------------------------------------------------------------ helpers

    private static (int[] Indices, float[] Probs) Teacher(TestRandom rng, int rows, int vocab, int k, float tau)
    {
        var teacher = rng.Normals(rows * vocab, 2.0);
        var idx = new int[rows * k];
        var p = new float[rows * k];
        ReferenceKernels.Instance.TopKSoftmax(teacher, rows, vocab, k, tau, idx, p);
        if (k > 2) p[k - 1] = 0f; // a probability that underflowed: exercises the 0·log 0 and floor paths
        return (idx, p);
    }

    private static KdDivergence ToDivergence(DistillLossKind kind) => kind switch
    {
        DistillLossKind.ForwardKL => KdDivergence.ForwardKL,
        DistillLossKind.ReverseKL => KdDivergence.ReverseKL,
        _ => KdDivergence.Jsd,
    };

    private static void AssertClose(double expected, double actual, double relative, double absolute, string what)
    {
        double error = Math.Abs(actual - expected);
        if (!(error <= absolute + relative * Math.Abs(expected)))
            Assert.Fail($"{what}: got {actual:R}, expected {expected:R} (error {error:g3})");
    }
}
