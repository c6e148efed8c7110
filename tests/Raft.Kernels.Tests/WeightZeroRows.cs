using ILGPU;
using ILGPU.Runtime;

namespace Raft.Kernels.Tests;

/// <summary>
/// The contract of <see cref="ILossKernels.Distill"/> for rows of weight 0, as one check that every implementation runs
/// (this project's and, compiled in, Raft.Kernels.Cuda.Tests' CUDA C ones): such rows are neither read nor validated, so
/// garbage in them — repeated or out-of-range teacher indices, NaN or negative probabilities, NaN or infinite student
/// logits — raises nothing, leaves the loss and the other rows' gradients bit for bit those of a run where the rows
/// hold valid data, and the rows get a zero gradient. The same garbage in a weighted row is still rejected.
/// </summary>
public static class WeightZeroRows
{
    /// <summary>What the rows of weight 0 hold.</summary>
    public enum Garbage
    {
        /// <summary>A teacher index repeated within the row.</summary>
        DuplicateIndices,
        /// <summary>Teacher indices −1, vocab and int.MaxValue.</summary>
        OutOfRangeIndices,
        /// <summary>NaN teacher probabilities.</summary>
        NaNProbabilities,
        /// <summary>Negative and above-1 teacher probabilities.</summary>
        OutOfRangeProbabilities,
        /// <summary>NaN student logits.</summary>
        NaNStudentLogits,
        /// <summary>±∞ student logits.</summary>
        InfiniteStudentLogits,
        /// <summary>All of the above at once.</summary>
        All,
    }

    /// <summary>One distillation call on host arrays; <c>gradient</c> is null (loss only), the student array itself (in place) or a separate array.</summary>
    public delegate LossResult DistillCall(float[] student, int rows, int vocab, int[] indices, float[] probs, DistillSettings settings,
        float[] weights, float[]? gradient, float normalizer);

    /// <summary>The shape of the check: rows 1 and 4 have weight 0 (one +0, one −0).</summary>
    public const int Rows = 6, Vocab = 97, K = 7;

    /// <summary>The rows of weight 0.</summary>
    public static readonly int[] ZeroRows = [1, 4];

    /// <summary>Every garbage kind, for theory data.</summary>
    public static IEnumerable<Garbage> Kinds => Enum.GetValues<Garbage>();

    /// <summary>The divergences checked (JSD at β = 1 is reverse KL).</summary>
    public static readonly DistillSettings[] Settings =
    [
        new(K, 2f, DistillLossKind.ForwardKL),
        new(K, 1.5f, DistillLossKind.ReverseKL),
        new(K, 1f, DistillLossKind.Jsd, 0.3f),
        new(K, 0.7f, DistillLossKind.Jsd, 1f),
    ];

    /// <summary>Valid inputs, fresh per seed: student logits, the teacher's top-K (distinct indices, softmax probabilities), weights.</summary>
    public static (float[] Student, int[] Indices, float[] Probs, float[] Weights) Valid(int seed)
    {
        var rng = new Random(seed);
        var student = new float[Rows * Vocab];
        var teacher = new float[Rows * Vocab];
        for (int i = 0; i < student.Length; i++)
        {
            student[i] = (float)(2.0 * Gaussian(rng));
            teacher[i] = (float)(3.0 * Gaussian(rng));
        }
        var indices = new int[Rows * K];
        var probs = new float[Rows * K];
        ReferenceKernels.Instance.TopKSoftmax(teacher, Rows, Vocab, K, 1.3f, indices, probs);
        var weights = new float[Rows];
        for (int r = 0; r < Rows; r++) weights[r] = 0.25f + (float)rng.NextDouble();
        weights[ZeroRows[0]] = 0f;
        weights[ZeroRows[1]] = -0f;
        return (student, indices, probs, weights);
    }

    /// <summary>Copies of the inputs with <paramref name="garbage"/> written into row <paramref name="row"/>.</summary>
    public static (float[] Student, int[] Indices, float[] Probs) Spoil(float[] student, int[] indices, float[] probs, Garbage garbage, int row)
    {
        var s = (float[])student.Clone();
        var idx = (int[])indices.Clone();
        var p = (float[])probs.Clone();
        int kb = row * K, vb = row * Vocab;
        bool all = garbage == Garbage.All;
        if (all || garbage == Garbage.DuplicateIndices) { idx[kb + 2] = idx[kb + 5]; idx[kb + 6] = idx[kb + 5]; }
        if (all || garbage == Garbage.OutOfRangeIndices) { idx[kb] = -1; idx[kb + 3] = Vocab; idx[kb + 4] = int.MaxValue; }
        if (all || garbage == Garbage.NaNProbabilities) { p[kb + 1] = float.NaN; p[kb + 6] = float.NaN; }
        if (all || garbage == Garbage.OutOfRangeProbabilities) { p[kb + 2] = -0.5f; p[kb + 5] = 3f; }
        if (all || garbage == Garbage.NaNStudentLogits) { s[vb] = float.NaN; s[vb + Vocab / 2] = float.NaN; s[vb + Vocab - 1] = float.NaN; }
        if (all || garbage == Garbage.InfiniteStudentLogits) { s[vb + 3] = float.PositiveInfinity; s[vb + 7] = float.NegativeInfinity; }
        return (s, idx, p);
    }

    /// <summary>The host-span overload.</summary>
    public static DistillCall Spans(ILossKernels kernels) =>
        (student, rows, vocab, idx, p, settings, w, gradient, n) =>
            kernels.Distill(student, rows, vocab, idx, p, settings, w, gradient is null ? Span<float>.Empty : gradient, n);

    /// <summary>The device-view overload: inputs uploaded, the gradient (separate or in place) brought back.</summary>
    public static DistillCall Views(IDeviceLossKernels kernels) =>
        (student, rows, vocab, idx, p, settings, w, gradient, n) =>
        {
            var acc = kernels.Accelerator;
            using var dStudent = acc.Allocate1D(student);
            using var dIdx = acc.Allocate1D(idx);
            using var dP = acc.Allocate1D(p);
            using var dW = acc.Allocate1D(w);
            using var dGrad = acc.Allocate1D<float>(gradient is null || ReferenceEquals(gradient, student) ? 1 : gradient.Length);
            if (gradient is not null && !ReferenceEquals(gradient, student)) dGrad.View.CopyFromCPU(gradient);
            ArrayView<float> g = gradient is null ? ArrayView<float>.Empty : ReferenceEquals(gradient, student) ? dStudent.View : dGrad.View;
            var result = kernels.Distill(dStudent.View, rows, vocab, dIdx.View, dP.View, settings, dW.View, g, ArrayView<float>.Empty, n);
            if (gradient is not null) g.CopyToCPU(gradient);
            return result;
        };

    /// <summary>
    /// The whole check for one implementation and one garbage kind: every divergence, the gradient separate (pre-filled
    /// with 7), in place and absent, with N = Σ w and with a caller's N.
    /// </summary>
    public static void Check(DistillCall distill, Garbage garbage, int seed)
    {
        var (student, indices, probs, weights) = Valid(seed);
        var (badStudent, badIndices, badProbs) = (student, indices, probs);
        foreach (int z in ZeroRows) (badStudent, badIndices, badProbs) = Spoil(badStudent, badIndices, badProbs, garbage, z);
        foreach (var settings in Settings)
            foreach (string mode in (string[])["separate", "in place", "loss only"])
                foreach (float normalizer in (float[])[0f, 5.5f])
                {
                    string what = $"{garbage}, {settings.Kind} β {settings.Beta}, {mode}, N {normalizer}, seed {seed}";
                    var (expected, expectedGrad) = Run(distill, student, indices, probs, settings, weights, mode, normalizer);
                    var (actual, actualGrad) = Run(distill, badStudent, badIndices, badProbs, settings, weights, mode, normalizer);
                    Assert.True(double.IsFinite(expected.Loss), $"{what}: loss {expected.Loss}");
                    Assert.True(expected == actual, $"{what}: loss {actual} with garbage in the rows of weight 0, {expected} without");
                    if (expectedGrad is null) continue;
                    for (int r = 0; r < Rows; r++)
                    {
                        var e = expectedGrad.AsSpan(r * Vocab, Vocab);
                        var a = actualGrad!.AsSpan(r * Vocab, Vocab);
                        for (int i = 0; i < Vocab; i++)
                        {
                            if (ZeroRows.Contains(r))
                                Assert.True(a[i] == 0f && e[i] == 0f, $"{what}: row {r} of weight 0 has gradient {a[i]} (valid data: {e[i]}) at column {i}");
                            else
                                Assert.True(BitConverter.SingleToInt32Bits(e[i]) == BitConverter.SingleToInt32Bits(a[i]) && float.IsFinite(a[i]),
                                    $"{what}: row {r} column {i}: gradient {a[i]:R} with garbage in the rows of weight 0, {e[i]:R} without");
                        }
                    }
                }
    }

    /// <summary>
    /// The garbage in a weighted row (row 2, weight 1) is still refused: an <see cref="ArgumentException"/> naming the
    /// teacher tensor for bad teacher entries, a <see cref="NonFiniteLogitException"/> for the row's bad logits.
    /// </summary>
    public static void CheckRejectedInAWeightedRow(DistillCall distill, Garbage garbage, int seed)
    {
        var (student, indices, probs, weights) = Valid(seed);
        const int row = 2;
        weights[row] = 1f;
        var single = garbage == Garbage.All ? Garbage.DuplicateIndices : garbage;
        var (s, idx, p) = Spoil(student, indices, probs, single, row);
        var settings = Settings[0];
        var gradient = new float[s.Length];
        switch (single)
        {
            case Garbage.DuplicateIndices or Garbage.OutOfRangeIndices:
                Assert.Equal("teacherIndices", Assert.ThrowsAny<ArgumentException>(() => distill(s, Rows, Vocab, idx, p, settings, weights, gradient, 0f)).ParamName);
                break;
            case Garbage.NaNProbabilities or Garbage.OutOfRangeProbabilities:
                Assert.Equal("teacherProbs", Assert.ThrowsAny<ArgumentException>(() => distill(s, Rows, Vocab, idx, p, settings, weights, gradient, 0f)).ParamName);
                break;
            default:
                var e = Assert.Throws<NonFiniteLogitException>(() => distill(s, Rows, Vocab, idx, p, settings, weights, gradient, 0f));
                Assert.Equal(row, e.Row);
                Assert.Equal("studentLogits", e.Tensor);
                break;
        }
    }

    private static (LossResult Result, float[]? Gradient) Run(DistillCall distill, float[] student, int[] indices, float[] probs,
        DistillSettings settings, float[] weights, string mode, float normalizer)
    {
        var s = (float[])student.Clone();
        float[]? gradient = mode switch
        {
            "separate" => Enumerable.Repeat(7f, s.Length).ToArray(),
            "in place" => s,
            _ => null,
        };
        var result = distill(s, Rows, Vocab, (int[])indices.Clone(), (float[])probs.Clone(), settings, (float[])weights.Clone(), gradient, normalizer);
        return (result, gradient);
    }

    private static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
