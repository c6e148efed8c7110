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

    public enum RowOrder { Random, Ascending, Descending }

    public static TheoryData<TopKVariant, int, int, int, float, bool, RowOrder> TopKCases()
    {
        var data = new TheoryData<TopKVariant, int, int, int, float, bool, RowOrder>();
        var cases = new (int Rows, int Vocab, int K, float Tau, bool Ties, RowOrder Order)[]
        {
            (4, 1000, 10, 1.0f, false, RowOrder.Random),
            (3, 1003, 50, 2.0f, false, RowOrder.Random),    // odd vocab: rows start off the 16-byte grid (scalar head and tail)
            (2, 7, 7, 0.5f, false, RowOrder.Random),        // k = vocab
            (3, 1, 1, 1.0f, false, RowOrder.Random),
            (5, 513, 17, 1.5f, true, RowOrder.Random),      // many exact ties: lower index first
            (3, 4099, 1024, 1.0f, false, RowOrder.Random),
            (2, 20000, 2048, 1.0f, true, RowOrder.Random),  // the filter kernel's largest k
            (2, 20000, 4096, 1.0f, true, RowOrder.Random),  // the largest k sorted in shared memory
            (2, 20000, 4097, 1.0f, false, RowOrder.Random), // sorted in the output arrays instead
            (2, 151936, 64, 1.0f, false, RowOrder.Random),  // a Qwen-sized vocabulary
            (2, 30001, 64, 1.0f, false, RowOrder.Ascending), // every element beats the running threshold: a compaction a step
            (2, 30001, 64, 1.0f, true, RowOrder.Descending),
            (2, 9000, 300, 1.0f, true, RowOrder.Ascending),
        };
        foreach (var variant in new[] { TopKVariant.Auto, TopKVariant.Radix, TopKVariant.Filter })
            foreach (var c in cases)
                if (variant != TopKVariant.Filter || c.K <= CudaLossKernels.TopKFilterMaxK)
                    data.Add(variant, c.Rows, c.Vocab, c.K, c.Tau, c.Ties, c.Order);
        return data;
    }

    [GpuTheory]
    [MemberData(nameof(TopKCases))]
    public void TopKSoftmaxMatchesTheReference(TopKVariant variant, int rows, int vocab, int k, float tau, bool ties, RowOrder order)
    {
        var rng = TestRandom.Fresh();
        var logits = rng.Normals(rows * vocab, 3.0);
        if (ties)
            for (int i = 0; i < logits.Length; i++) logits[i] = MathF.Round(logits[i]); // also makes -0 and +0
        if (order != RowOrder.Random)
            for (int r = 0; r < rows; r++)
            {
                var row = logits.AsSpan(r * vocab, vocab);
                row.Sort();
                if (order == RowOrder.Descending) row.Reverse();
            }
        var expectedIdx = new int[rows * k];
        var expectedP = new float[rows * k];
        ReferenceKernels.Instance.TopKSoftmax(logits, rows, vocab, k, tau, expectedIdx, expectedP);

        using var dLogits = Device.Upload<float>(logits);
        using var dIdx = Device.Allocate<int>(rows * k);
        using var dP = Device.Allocate<float>(rows * k);
        using var dStatus = Device.Allocate<int>(rows);
        dIdx.CopyFrom(Enumerable.Repeat(-1, rows * k).ToArray()); // poisoned: an unwritten element fails
        gpu.Kernels.TopKSoftmax(dLogits.Pointer, rows, vocab, k, tau, dIdx.Pointer, dP.Pointer, dStatus.Pointer, variant);
        Device.Synchronize();

        Assert.All(dStatus.ToArray(), s => Assert.Equal(0, s));
        var idx = dIdx.ToArray();
        var p = dP.ToArray();
        for (int i = 0; i < idx.Length; i++)
        {
            if (idx[i] != expectedIdx[i])
                Assert.Fail($"{variant}: index [{i / k}, {i % k}]: got {idx[i]}, expected {expectedIdx[i]} ({rng})");
            AssertClose(expectedP[i], p[i], 1e-5, 1e-7, $"prob [{i / k}, {i % k}] ({rng})");
        }
    }

    [GpuTheory]
    [InlineData(TopKVariant.Radix)]
    [InlineData(TopKVariant.Filter)]
    public void TopKFlagsRowsWithNonFiniteLogits(TopKVariant variant)
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
        gpu.Kernels.TopKSoftmax(dLogits.Pointer, rows, vocab, k, 1f, dIdx.Pointer, dP.Pointer, dStatus.Pointer, variant);
        Device.Synchronize();
        Assert.Equal([0, 1, 1], dStatus.ToArray());
    }

    // ------------------------------------------------------------------ distillation

    public enum GradientMode { None, Separate, InPlace }

    /// <summary>Every distillation kernel variant; the test skips a variant this device cannot run (reported in the message).</summary>
    public static readonly DistillVariant[] DistillVariants =
        [DistillVariant.Auto, DistillVariant.TwoPass, DistillVariant.TwoPassL2, DistillVariant.Resident1, DistillVariant.Resident2, DistillVariant.Resident4, DistillVariant.Resident8,
         DistillVariant.Bulk2, DistillVariant.Bulk4, DistillVariant.Bulk8];

    public static TheoryData<DistillVariant, DistillLossKind, float, GradientMode, int, int, bool> DistillCases()
    {
        var data = new TheoryData<DistillVariant, DistillLossKind, float, GradientMode, int, int, bool>();
        foreach (var variant in DistillVariants)
        {
            foreach (var (kind, beta) in new[] { (DistillLossKind.ForwardKL, 0.5f), (DistillLossKind.ReverseKL, 0.5f), (DistillLossKind.Jsd, 0.5f), (DistillLossKind.Jsd, 0.1f) })
                foreach (var mode in Enum.GetValues<GradientMode>())
                {
                    data.Add(variant, kind, beta, mode, 1000, 20, true);
                    data.Add(variant, kind, beta, mode, 1003, 100, false); // rows off the 16-byte grid
                }
            data.Add(variant, DistillLossKind.ForwardKL, 0.5f, GradientMode.InPlace, 151936, 64, true); // a Qwen-sized vocabulary
            data.Add(variant, DistillLossKind.ForwardKL, 0.5f, GradientMode.InPlace, 9, 9, false);      // fewer logits than blocks
            data.Add(variant, DistillLossKind.ReverseKL, 0.5f, GradientMode.Separate, 5, 5, true);
        }
        data.Add(DistillVariant.TwoPass, DistillLossKind.ForwardKL, 0.5f, GradientMode.InPlace, 32003, 8192, true); // the largest in-place k
        data.Add(DistillVariant.TwoPass, DistillLossKind.Jsd, 0.3f, GradientMode.Separate, 20000, 9000, true);      // k gathered from global memory
        return data;
    }

    [GpuTheory]
    [MemberData(nameof(DistillCases))]
    public void DistillMatchesTheReference(DistillVariant variant, DistillLossKind kind, float beta, GradientMode mode, int vocab, int k, bool weighted)
    {
        if (!gpu.Kernels.Supports(variant, vocab, k))
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => gpu.Kernels.Distill(new DevicePointer(256), new DevicePointer(256), 1, vocab,
                new DevicePointer(256), new DevicePointer(256), k, DevicePointer.Null, 1f, 1f, KdDivergence.ForwardKL, 0.5f,
                new DevicePointer(256), DevicePointer.Null, variant));
            return; // this device cannot run the variant (no clusters, or too little shared memory): refused, as it should be
        }
        var rng = TestRandom.Fresh();
        const int rows = 6;
        const float tau = 1.5f;
        var config = new DistillSettings(k, tau, kind, beta);
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
            dLoss.Pointer, dStatus.Pointer, variant);
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
                Assert.Fail($"{variant}: gradient [{i / vocab}, {i % vocab}]: got {grad[i]}, expected {expectedGrad[i]} (tolerance {tolerance:g3}, {rng})");
        if (weighted)
            for (int i = 0; i < vocab; i++) Assert.Equal(0f, grad[2 * vocab + i]); // the row of weight 0
    }

    [GpuTheory]
    [InlineData(DistillVariant.TwoPass)]
    [InlineData(DistillVariant.Resident1)]
    [InlineData(DistillVariant.Resident2)]
    [InlineData(DistillVariant.Resident8)]
    [InlineData(DistillVariant.Bulk8)]
    public void DistillFlagsRowsWithNonFiniteLogits(DistillVariant variant)
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
        if (!gpu.Kernels.Supports(variant, vocab, k)) return; // refused on this device (see DistillMatchesTheReference)
        gpu.Kernels.Distill(dStudent.Pointer, dStudent.Pointer, rows, vocab, dIdx.Pointer, dP.Pointer, k,
            DevicePointer.Null, rows, 1f, KdDivergence.ForwardKL, 0.5f, dLoss.Pointer, dStatus.Pointer, variant);
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

    internal static KdDivergence ToDivergence(DistillLossKind kind) => kind switch
    {
        DistillLossKind.ForwardKL => KdDivergence.ForwardKL,
        DistillLossKind.ReverseKL => KdDivergence.ReverseKL,
        _ => KdDivergence.Jsd,
    };

    internal static void AssertClose(double expected, double actual, double relative, double absolute, string what)
    {
        double error = Math.Abs(actual - expected);
        if (!(error <= absolute + relative * Math.Abs(expected)))
            Assert.Fail($"{what}: got {actual:R}, expected {expected:R} (error {error:g3})");
    }
}
