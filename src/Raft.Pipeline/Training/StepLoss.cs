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
    public StepLosses Compute(ILossKernels kernels, PackedBatch b, Span<float> logits, int vocab, float kdNormalizer, float ceNormalizer)
    {
        if (!b.TeacherFinite) return new(StepLosses.Unknown, default, false);
        var kdLogits = logits[..(b.KdRows * vocab)];
        var sftLogits = logits.Slice(b.KdRows * vocab, b.SftRows * vocab);
        try
        {
            var kd = raft ? kernels.Distill(kdLogits, b.KdRows, vocab, b.TeacherIndices, b.TeacherProbs, distill, b.RowWeights, kdLogits, kdNormalizer) : default;
            var ce = kernels.CrossEntropy(sftLogits, b.SftRows, vocab, b.Targets, sftLogits, normalizer: ceNormalizer);
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
    public static void Weigh(Span<float> gradient, PackedBatch b, int vocab, double wKd, double wSft)
    {
        var kd = gradient[..(b.KdRows * vocab)];
        var sft = gradient.Slice(b.KdRows * vocab, b.SftRows * vocab);
        TensorPrimitives.Multiply(kd, (float)wKd, kd);
        TensorPrimitives.Multiply(sft, (float)wSft, sft);
    }
}
