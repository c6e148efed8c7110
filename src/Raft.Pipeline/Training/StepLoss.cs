using System.Numerics.Tensors;
using ILGPU;
using ILGPU.Runtime;
using Raft.Kernels;

namespace Raft.Pipeline.Training;

/// <summary>A step's two loss terms on this rank (each its share of the global mean in a data-parallel run).</summary>
/// <param name="Kd">The distillation term (τ²·D over the scored rollout rows; default for SFT).</param>
/// <param name="Ce">The cross-entropy on the answer rows.</param>
/// <param name="Finite">False when a logit, a loss or the teacher was NaN or infinite: the step is skipped.</param>
internal readonly record struct StepLosses(LossResult Kd, LossResult Ce, bool Finite)
{
    /// <summary>Unknown losses, logged as NaN (not 0, which would read as a perfect step).</summary>
    public static readonly LossResult Unknown = new(double.NaN, double.NaN, 0, 0);

    /// <summary>The losses of two chunks of one batch's rows (computed with the batch's normalizers): sums, finite when both are.</summary>
    public StepLosses Plus(StepLosses other) => new(Add(Kd, other.Kd), Add(Ce, other.Ce), Finite && other.Finite);

    private static LossResult Add(LossResult a, LossResult b) =>
        new(a.Loss + b.Loss, a.LossSum + b.LossSum, a.WeightSum + b.WeightSum, Math.Max(a.Normalizer, b.Normalizer));
}

/// <summary>
/// The loss of a step, a pure function of the packed batch and the student's logits [rows, V]: the distillation loss
/// (<see cref="ILossKernels.Distill"/>) on the first KdRows rows and the cross-entropy on the next SftRows, each writing
/// its unweighted gradient dL/dlogits in place; then <see cref="Weigh(Span{float}, PackedBatch, int, double, double)"/>
/// scales the two parts by the balancer's weights. Normalisers of 0 let the kernels count this call's rows (one
/// process); a data-parallel run passes the global counts so that the ranks' gradients sum to the global mean's.
/// Host logits go through any <see cref="ILossKernels"/>; device logits (the GPU student) through the device overloads
/// of <see cref="IDeviceLossKernels"/> on the accelerator that holds them.
/// </summary>
internal sealed class StepLoss(DistillSettings distill, bool raft)
{
    /// <summary>The losses of host logits [rows, V], gradients in place.</summary>
    public StepLosses Compute(ILossKernels kernels, PackedBatch b, Span<float> logits, int vocab, float kdNormalizer, float ceNormalizer) =>
        ComputeRows(kernels, b, 0, b.Sequences * b.SeqLen, logits, vocab, kdNormalizer, ceNormalizer);

    /// <summary>
    /// The losses of the batch's rows [<paramref name="row0"/>, row0 + <paramref name="rows"/>) from their host logits
    /// [rows, V] (a chunk of the batch; gradients in place): the distillation part on the chunk's rollout rows, the
    /// cross-entropy on its answer rows. With the batch's normalizers (not 0) the chunks' losses add up to the whole
    /// batch's (<see cref="StepLosses.Plus"/>) and their gradients are its rows.
    /// </summary>
    public StepLosses ComputeRows(ILossKernels kernels, PackedBatch b, int row0, int rows, Span<float> logits, int vocab, float kdNormalizer, float ceNormalizer)
    {
        if (!b.TeacherFinite) return new(StepLosses.Unknown, default, false);
        int kd0 = Math.Min(row0, b.KdRows), kd1 = Math.Min(row0 + rows, b.KdRows), kdRows = kd1 - kd0;
        int ce0 = Math.Max(row0, b.KdRows) - b.KdRows, ceRows = Math.Max(0, row0 + rows - b.KdRows - ce0);
        var kdLogits = logits[..(kdRows * vocab)];
        var sftLogits = logits.Slice(kdRows * vocab, ceRows * vocab);
        try
        {
            // the whole batch calls both kernels (as ever); a chunk only those with rows in it
            bool whole = row0 == 0 && rows == b.Sequences * b.SeqLen;
            int k = distill.TopK;
            var kd = raft && (kdRows > 0 || whole)
                ? kernels.Distill(kdLogits, kdRows, vocab, b.TeacherIndices.AsSpan(kd0 * k, kdRows * k), b.TeacherProbs.AsSpan(kd0 * k, kdRows * k),
                    distill, b.RowWeights.AsSpan(kd0, kdRows), kdLogits, kdNormalizer)
                : default;
            var ce = ceRows > 0 || whole
                ? kernels.CrossEntropy(sftLogits, ceRows, vocab, b.Targets.AsSpan(ce0, ceRows), sftLogits, normalizer: ceNormalizer)
                : default;
            return new(kd, ce, double.IsFinite(kd.Loss) && double.IsFinite(ce.Loss));
        }
        catch (NonFiniteLogitException) { return NonFinite(); }
    }

    /// <summary>
    /// The losses of device logits [rows, V] (gradients in place, on the device); the batch's targets, teacher top-K and
    /// row weights are uploaded into <paramref name="scratch"/>.
    /// </summary>
    public StepLosses Compute(IDeviceLossKernels kernels, PackedBatch b, ArrayView<float> logits, int vocab, float kdNormalizer, float ceNormalizer,
        DeviceBatchBuffers scratch)
    {
        if (!b.TeacherFinite) return new(StepLosses.Unknown, default, false);
        var kdLogits = logits.SubView(0, (long)b.KdRows * vocab);
        var sftLogits = logits.SubView((long)b.KdRows * vocab, (long)b.SftRows * vocab);
        try
        {
            LossResult kd = default;
            if (raft)
            {
                var (idx, probs, weights) = scratch.UploadTeacher(b);
                kd = kernels.Distill(kdLogits, b.KdRows, vocab, idx, probs, distill, weights, kdLogits, ArrayView<float>.Empty, kdNormalizer);
            }
            var ce = kernels.CrossEntropy(sftLogits, b.SftRows, vocab, scratch.UploadTargets(b), sftLogits, ArrayView<float>.Empty, normalizer: ceNormalizer);
            return new(kd, ce, double.IsFinite(kd.Loss) && double.IsFinite(ce.Loss));
        }
        catch (NonFiniteLogitException) { return NonFinite(); }
    }

    private StepLosses NonFinite() => new(raft ? StepLosses.Unknown : default, StepLosses.Unknown, false);

    /// <summary>Scales the distillation rows' gradient by <paramref name="wKd"/> and the answer rows' by <paramref name="wSft"/> (host logits).</summary>
    public static void Weigh(Span<float> gradient, PackedBatch b, int vocab, double wKd, double wSft) =>
        WeighRows(gradient, b, 0, b.Sequences * b.SeqLen, vocab, wKd, wSft);

    /// <summary>As <see cref="Weigh"/> for the gradient [rows, V] of the batch's rows [<paramref name="row0"/>, row0 + rows) (a chunk).</summary>
    public static void WeighRows(Span<float> gradient, PackedBatch b, int row0, int rows, int vocab, double wKd, double wSft)
    {
        int kdRows = Math.Max(0, Math.Min(row0 + rows, b.KdRows) - row0);
        var kd = gradient[..(kdRows * vocab)];
        var sft = gradient.Slice(kdRows * vocab, (rows - kdRows) * vocab);
        TensorPrimitives.Multiply(kd, (float)wKd, kd);
        TensorPrimitives.Multiply(sft, (float)wSft, sft);
    }
}
