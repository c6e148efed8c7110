using ILGPU;
using ILGPU.Runtime;

namespace Raft.Kernels;

/// <summary>
/// Loss kernels that run on an ILGPU <see cref="ILGPU.Runtime.Accelerator"/> and, besides the host-span overloads of
/// <see cref="ILossKernels"/>, take device-resident tensors: <see cref="ArrayView{T}"/>s on <see cref="Accelerator"/>
/// (implemented by <see cref="IlgpuKernels"/> and by the CUDA C kernels of Raft.Kernels.Cuda). The device overloads
/// compute what the span overloads compute (same math, same rules): shapes and scalars are checked on the host, the
/// contents of index, probability, weight and target tensors on the device before anything is written, and only a
/// small summary comes back (each call synchronises once, or a few times).
/// </summary>
public interface IDeviceLossKernels : ILossKernels
{
    /// <summary>The accelerator the kernels run on; every view passed in must live on it.</summary>
    Accelerator Accelerator { get; }

    /// <summary>
    /// Device-resident top-K temperature softmax (see <see cref="ILossKernels.TopKSoftmax"/>).
    /// Shapes: <paramref name="teacherLogits"/> [rows, vocab] → <paramref name="indices"/> and
    /// <paramref name="probs"/> [rows, k].
    /// </summary>
    /// <exception cref="ArgumentException">A shape, <paramref name="k"/> or <paramref name="temperature"/> is invalid.</exception>
    /// <exception cref="NonFiniteLogitException">A teacher row holds a NaN or infinite logit.</exception>
    void TopKSoftmax(ArrayView<float> teacherLogits, int rows, int vocab, int k, float temperature,
        ArrayView<int> indices, ArrayView<float> probs);

    /// <summary>
    /// Device-resident fused distillation loss and gradient (see <see cref="ILossKernels.Distill"/>: rows of weight 0 are
    /// neither read nor validated, and get a zero gradient). Shapes: <paramref name="studentLogits"/> [rows, vocab];
    /// <paramref name="teacherIndices"/> and <paramref name="teacherProbs"/> [rows, k]; <paramref name="rowWeights"/>
    /// [rows] or empty (all 1); <paramref name="gradient"/> [rows, vocab], empty (loss only) or the very student view
    /// (in place); <paramref name="rowLosses"/> [rows] or empty: receives each row's unweighted τ²·D_r (0 for rows of
    /// weight 0).
    /// </summary>
    /// <exception cref="ArgumentException">A shape, a config field, a teacher index or probability of a weighted row, a
    /// weight or the normalizer is invalid (contents are checked on the device before anything is written).</exception>
    /// <exception cref="NonFiniteLogitException">A student row that is read holds a NaN or infinite logit.</exception>
    LossResult Distill(ArrayView<float> studentLogits, int rows, int vocab,
        ArrayView<int> teacherIndices, ArrayView<float> teacherProbs, DistillSettings config,
        ArrayView<float> rowWeights, ArrayView<float> gradient, ArrayView<float> rowLosses, float normalizer = 0f);

    /// <summary>
    /// Device-resident cross-entropy with label smoothing (see <see cref="ILossKernels.CrossEntropy"/>).
    /// Shapes: <paramref name="logits"/> [rows, vocab]; <paramref name="targets"/> [rows]; <paramref name="gradient"/>
    /// [rows, vocab], empty (loss only) or the logits view itself (in place); <paramref name="rowLosses"/> [rows] or
    /// empty: receives each row's loss L_r (0 for ignored rows).
    /// </summary>
    /// <exception cref="ArgumentException">A shape, a target, <paramref name="labelSmoothing"/> or the normalizer is
    /// invalid (targets are checked on the device before anything is written).</exception>
    /// <exception cref="NonFiniteLogitException">A row that is read holds a NaN or infinite logit.</exception>
    LossResult CrossEntropy(ArrayView<float> logits, int rows, int vocab, ArrayView<int> targets,
        ArrayView<float> gradient, ArrayView<float> rowLosses, int ignoreIndex = -100, float labelSmoothing = 0f,
        float normalizer = 0f);
}
