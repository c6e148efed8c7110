using ILGPU;
using ILGPU.Runtime;
using static Raft.Kernels.Tests.WeightZeroRows;

namespace Raft.Kernels.Cuda.Tests;

/// <summary>
/// The CUDA C kernels behind <see cref="ILossKernels"/> (host spans) and <see cref="IDeviceLossKernels"/> (views on ILGPU's
/// CUDA accelerator) against the double-precision reference, and the weight-0 contract (<see cref="Raft.Kernels.Tests.WeightZeroRows"/>).
/// GPU tests: skipped with the reason without a CUDA device and NVRTC.
/// </summary>
public class CudaCKernelsTests(CudaCFixture gpu) : IClassFixture<CudaCFixture>
{
    [GpuFact]
    public void CudaCKernelsOnHostSpansMatchTheReference()
    {
        Assert.True(CudaCKernels.TryCreate(1, out var kernels, out var reason), reason);
        using (kernels)
        {
            Assert.Equal("cuda-c", kernels.Name);
            Assert.StartsWith("cuda-c: ", kernels.Description);
            var random = new Random();
            int seed = random.Next();
            const int rows = 5, vocab = 3001, k = 32;
            var teacher = TestRandom.Logits(rows * vocab, seed, 3.0);
            var student = TestRandom.Logits(rows * vocab, seed + 1, 2.0);
            var weights = new float[] { 1f, 0f, 0.5f, 2f, 1f };
            foreach (var config in new[] { new DistillSettings(k, 2f), new DistillSettings(k, 1.5f, DistillLossKind.ReverseKL), new DistillSettings(k, 1f, DistillLossKind.Jsd, 0.3f) })
            {
                var idx = new int[rows * k];
                var p = new float[rows * k];
                var refIdx = new int[rows * k];
                var refP = new float[rows * k];
                kernels.TopKSoftmax(teacher, rows, vocab, k, config.Temperature, idx, p);
                ReferenceKernels.Instance.TopKSoftmax(teacher, rows, vocab, k, config.Temperature, refIdx, refP);
                Assert.Equal(refIdx, idx);
                for (int i = 0; i < p.Length; i++) Assert.True(Math.Abs(p[i] - refP[i]) <= 1e-5 * refP[i] + 1e-7, $"prob {i}: {p[i]} vs {refP[i]} (seed {seed})");

                var grad = (float[])student.Clone();
                var refGrad = new float[student.Length];
                var loss = kernels.Distill(grad, rows, vocab, refIdx, refP, config, weights, grad); // in place
                var expected = ReferenceKernels.Instance.Distill(student, rows, vocab, refIdx, refP, config, weights, refGrad);
                Assert.True(Math.Abs(loss.Loss - expected.Loss) <= 1e-4 * Math.Abs(expected.Loss) + 1e-6, $"{config.Kind} loss {loss.Loss} vs {expected.Loss} (seed {seed})");
                Assert.Equal(expected.WeightSum, loss.WeightSum, 6);
                double tolerance = 1e-4 * refGrad.Max(v => Math.Abs(v)) + 1e-9;
                for (int i = 0; i < grad.Length; i++)
                    Assert.True(Math.Abs(grad[i] - refGrad[i]) <= tolerance, $"{config.Kind} gradient {i}: {grad[i]} vs {refGrad[i]} (seed {seed})");
            }
            var bad = (float[])teacher.Clone();
            bad[3 * vocab + 7] = float.NaN;
            var e = Assert.Throws<NonFiniteLogitException>(() => kernels.TopKSoftmax(bad, rows, vocab, k, 1f, new int[rows * k], new float[rows * k]));
            Assert.Equal(3, e.Row);
            Assert.Equal(7, e.Column);
        }
    }

    [GpuFact]
    public void CudaCKernelsOnDeviceViewsMatchTheReference()
    {
        var kernels = gpu.Kernels;
        var acc = kernels.Accelerator;
        int seed = TestRandom.NextSeed();
        const int rows = 5, vocab = 3001, k = 32;
        var teacher = TestRandom.Logits(rows * vocab, seed, 3.0);
        var student = TestRandom.Logits(rows * vocab, seed + 1, 2.0);
        var weights = new float[] { 1f, 0f, 0.5f, 2f, 1f };
        using var dTeacher = acc.Allocate1D(teacher);
        using var dIdx = acc.Allocate1D<int>(rows * k);
        using var dP = acc.Allocate1D<float>(rows * k);
        using var dW = acc.Allocate1D(weights);
        foreach (var config in new[] { new DistillSettings(k, 2f), new DistillSettings(k, 1.5f, DistillLossKind.ReverseKL), new DistillSettings(k, 1f, DistillLossKind.Jsd, 0.3f) })
        {
            var refIdx = new int[rows * k];
            var refP = new float[rows * k];
            ReferenceKernels.Instance.TopKSoftmax(teacher, rows, vocab, k, config.Temperature, refIdx, refP);
            kernels.TopKSoftmax(dTeacher.View, rows, vocab, k, config.Temperature, dIdx.View, dP.View);
            Assert.Equal(refIdx, dIdx.GetAsArray1D());
            var p = dP.GetAsArray1D();
            for (int i = 0; i < p.Length; i++) Assert.True(Math.Abs(p[i] - refP[i]) <= 1e-5 * refP[i] + 1e-7, $"prob {i}: {p[i]} vs {refP[i]} (seed {seed})");

            var refGrad = new float[student.Length];
            var expected = ReferenceKernels.Instance.Distill(student, rows, vocab, refIdx, refP, config, weights, refGrad);
            using var dStudent = acc.Allocate1D(student);
            using var dRowLoss = acc.Allocate1D<float>(rows);
            var loss = kernels.Distill(dStudent.View, rows, vocab, dIdx.View, dP.View, config, dW.View, dStudent.View, dRowLoss.View); // in place
            Assert.True(Math.Abs(loss.Loss - expected.Loss) <= 1e-4 * Math.Abs(expected.Loss) + 1e-6, $"{config.Kind} loss {loss.Loss} vs {expected.Loss} (seed {seed})");
            Assert.Equal(expected.WeightSum, loss.WeightSum, 6);
            Assert.Equal(0f, dRowLoss.GetAsArray1D()[1]);
            var grad = dStudent.GetAsArray1D();
            double tolerance = 1e-4 * refGrad.Max(v => Math.Abs(v)) + 1e-9;
            for (int i = 0; i < grad.Length; i++)
                Assert.True(Math.Abs(grad[i] - refGrad[i]) <= tolerance, $"{config.Kind} gradient {i}: {grad[i]} vs {refGrad[i]} (seed {seed})");
        }

        // cross-entropy on the same accelerator (ILGPU's kernels: there is no CUDA C one)
        var targets = new[] { 3, -100, 2999, 0, 57 };
        var ceRef = new float[student.Length];
        var ceExpected = ReferenceKernels.Instance.CrossEntropy(student, rows, vocab, targets, ceRef, labelSmoothing: 0.1f);
        using var dLogits = acc.Allocate1D(student);
        using var dTargets = acc.Allocate1D(targets);
        var ce = kernels.CrossEntropy(dLogits.View, rows, vocab, dTargets.View, dLogits.View, ArrayView<float>.Empty, labelSmoothing: 0.1f);
        Assert.True(Math.Abs(ce.Loss - ceExpected.Loss) <= 1e-5 * Math.Abs(ceExpected.Loss) + 1e-7, $"CE {ce.Loss} vs {ceExpected.Loss} (seed {seed})");

        // contents checked on the device, before anything is written; a NaN logit named with its row and column
        var dup = (int[])dIdx.GetAsArray1D().Clone();
        dup[2 * k + 5] = dup[2 * k + 4];
        using var dDup = acc.Allocate1D(dup);
        using var dGrad = acc.Allocate1D<float>(student.Length);
        dGrad.MemSetToZero();
        using var dS = acc.Allocate1D(student);
        var e = Assert.ThrowsAny<ArgumentException>(() => kernels.Distill(dS.View, rows, vocab, dDup.View, dP.View, new DistillSettings(k, 1f), dW.View, dGrad.View, ArrayView<float>.Empty));
        Assert.Equal("teacherIndices", e.ParamName);
        Assert.Contains("row 2 holds index", e.Message);
        Assert.All(dGrad.GetAsArray1D(), g => Assert.Equal(0f, g));
        var nan = (float[])student.Clone();
        nan[3 * vocab + 11] = float.NaN;
        using var dNan = acc.Allocate1D(nan);
        var bad = Assert.Throws<NonFiniteLogitException>(() => kernels.Distill(dNan.View, rows, vocab, dIdx.View, dP.View, new DistillSettings(k, 1f), dW.View, dGrad.View, ArrayView<float>.Empty));
        Assert.Equal((3, 11), (bad.Row, bad.Column));
        nan[3 * vocab + 11] = student[3 * vocab + 11];
        nan[vocab + 11] = float.NaN; // row 1 has weight 0: not read
        dNan.View.CopyFromCPU(nan);
        kernels.Distill(dNan.View, rows, vocab, dIdx.View, dP.View, new DistillSettings(k, 1f), dW.View, dGrad.View, ArrayView<float>.Empty);
    }

    public static TheoryData<string, Garbage> Cases()
    {
        var data = new TheoryData<string, Garbage>();
        foreach (string impl in (string[])["cuda-c-spans", "cuda-c-views"])
            foreach (var g in Kinds)
                data.Add(impl, g);
        return data;
    }

    public static TheoryData<string, Garbage> WeightedCases()
    {
        var data = new TheoryData<string, Garbage>();
        foreach (string impl in (string[])["cuda-c-spans", "cuda-c-views"])
            foreach (var g in Kinds.Where(g => g != Garbage.All))
                data.Add(impl, g);
        return data;
    }

    private DistillCall Make(string impl) => impl == "cuda-c-spans" ? Spans(gpu.Kernels) : Views(gpu.Kernels);

    [GpuTheory, MemberData(nameof(Cases))]
    public void GarbageInRowsOfWeightZeroIsNotReadNorValidatedAndGetsAZeroGradient(string impl, Garbage garbage) =>
        Check(Make(impl), garbage, TestRandom.NextSeed());

    [GpuTheory, MemberData(nameof(WeightedCases))]
    public void TheSameGarbageInAWeightedRowIsStillRejected(string impl, Garbage garbage) =>
        CheckRejectedInAWeightedRow(Make(impl), garbage, TestRandom.NextSeed());

    [Fact]
    public void TheDivergenceMappingFollowsTheEffectiveKind()
    {
        Assert.Equal(Raft.Cuda.KdDivergence.ForwardKL, CudaCKernels.Divergence(new DistillSettings(4, 1f)));
        Assert.Equal(Raft.Cuda.KdDivergence.ReverseKL, CudaCKernels.Divergence(new DistillSettings(4, 1f, DistillLossKind.ReverseKL)));
        Assert.Equal(Raft.Cuda.KdDivergence.Jsd, CudaCKernels.Divergence(new DistillSettings(4, 1f, DistillLossKind.Jsd, 0.5f)));
        Assert.Equal(Raft.Cuda.KdDivergence.ForwardKL, CudaCKernels.Divergence(new DistillSettings(4, 1f, DistillLossKind.Jsd, 0f)));
        Assert.Equal(Raft.Cuda.KdDivergence.ReverseKL, CudaCKernels.Divergence(new DistillSettings(4, 1f, DistillLossKind.Jsd, 1f)));
    }
}
