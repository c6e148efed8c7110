using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Raft.Cuda;

/// <summary>
/// The zero-copy path: the CUDA C kernels on ILGPU-allocated buffers, queued on an ILGPU stream, in ILGPU's context.
/// The kernels must be loaded on <see cref="CudaDevice.FromIlgpu"/> of the accelerator that owns the views; views
/// may be longer than the shapes need (a pooled buffer), never shorter; an empty view stands for an absent optional
/// buffer. Launches are asynchronous on <c>stream</c> (null: the accelerator's default stream); synchronize that
/// stream (or the accelerator) before reading the results.
/// </summary>
public sealed partial class CudaLossKernels
{
    /// <summary>The top-K temperature softmax of <see cref="TopKSoftmax(DevicePointer, int, int, int, float, DevicePointer, DevicePointer, DevicePointer, IntPtr)"/> on ILGPU views.</summary>
    /// <exception cref="InvalidOperationException">The kernels were not loaded on an ILGPU accelerator's device, or its context is not current.</exception>
    /// <exception cref="ArgumentException">A view is too short, or lives on another accelerator; the stream belongs to another accelerator.</exception>
    public void TopKSoftmax(ArrayView<float> logits, int rows, int vocab, int k, float temperature,
        ArrayView<int> indices, ArrayView<float> probs, ArrayView<int> status = default, AcceleratorStream? stream = null)
    {
        var accelerator = IlgpuAccelerator(nameof(TopKSoftmax));
        Shape(rows, vocab);
        if (k < 1 || k > vocab) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in 1..{vocab} (the vocabulary size).");
        AtLeast(logits.Length, (long)rows * vocab, nameof(logits), "rows·vocab");
        AtLeast(indices.Length, (long)rows * k, nameof(indices), "rows·k");
        AtLeast(probs.Length, (long)rows * k, nameof(probs), "rows·k");
        Optional(status.Length, rows, nameof(status));
        if (rows == 0) return;
        var s = IlgpuInterop.StreamOf(accelerator, stream);
        var (pl, pi, pp, ps) = (Ptr(logits, accelerator, nameof(logits)), Ptr(indices, accelerator, nameof(indices)),
            Ptr(probs, accelerator, nameof(probs)), Ptr(status, accelerator, nameof(status)));
        Device.EnsureCurrent(nameof(TopKSoftmax));
        TopKSoftmax(pl, rows, vocab, k, temperature, pi, pp, ps, s);
    }

    /// <summary>
    /// The fused distillation of <see cref="Distill(DevicePointer, DevicePointer, int, int, DevicePointer, DevicePointer, int, DevicePointer, float, float, KdDivergence, float, DevicePointer, DevicePointer, IntPtr)"/>
    /// on ILGPU views: <paramref name="gradient"/> empty (loss only), the same view as <paramref name="student"/> (in
    /// place) or a separate [rows, vocab] view; <paramref name="rowWeights"/> and <paramref name="rowStatus"/> may be empty.
    /// </summary>
    /// <exception cref="InvalidOperationException">The kernels were not loaded on an ILGPU accelerator's device, or its context is not current.</exception>
    /// <exception cref="ArgumentException">A view is too short, or lives on another accelerator; the stream belongs to another accelerator.</exception>
    public void Distill(ArrayView<float> student, ArrayView<float> gradient, int rows, int vocab,
        ArrayView<int> teacherIndices, ArrayView<float> teacherProbs, int k, ArrayView<float> rowWeights,
        float normalizer, float temperature, KdDivergence divergence, float beta,
        ArrayView<float> rowLoss, ArrayView<int> rowStatus = default, AcceleratorStream? stream = null)
    {
        var accelerator = IlgpuAccelerator(nameof(Distill));
        Shape(rows, vocab);
        if (k < 1 || k > vocab) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in 1..{vocab} (the vocabulary size).");
        AtLeast(student.Length, (long)rows * vocab, nameof(student), "rows·vocab");
        if (gradient.IsValid && gradient.Length > 0) AtLeast(gradient.Length, (long)rows * vocab, nameof(gradient), "rows·vocab");
        AtLeast(teacherIndices.Length, (long)rows * k, nameof(teacherIndices), "rows·k");
        AtLeast(teacherProbs.Length, (long)rows * k, nameof(teacherProbs), "rows·k");
        Optional(rowWeights.Length, rows, nameof(rowWeights));
        AtLeast(rowLoss.Length, rows, nameof(rowLoss), "rows");
        Optional(rowStatus.Length, rows, nameof(rowStatus));
        if (rows == 0) return;
        var s = IlgpuInterop.StreamOf(accelerator, stream);
        var ps = Ptr(student, accelerator, nameof(student));
        var pg = Ptr(gradient, accelerator, nameof(gradient));
        var (pi, pp, pw) = (Ptr(teacherIndices, accelerator, nameof(teacherIndices)), Ptr(teacherProbs, accelerator, nameof(teacherProbs)),
            Ptr(rowWeights, accelerator, nameof(rowWeights)));
        var (pLoss, pStatus) = (Ptr(rowLoss, accelerator, nameof(rowLoss)), Ptr(rowStatus, accelerator, nameof(rowStatus)));
        Device.EnsureCurrent(nameof(Distill));
        Distill(ps, pg, rows, vocab, pi, pp, k, pw, normalizer, temperature, divergence, beta, pLoss, pStatus, s);
    }

    /// <summary>Copies all of <paramref name="source"/> into the start of <paramref name="destination"/> (non-overlapping) with kernels/copy.cu.</summary>
    /// <exception cref="InvalidOperationException">The kernels were not loaded on an ILGPU accelerator's device, or its context is not current.</exception>
    /// <exception cref="ArgumentException">The destination is shorter than the source, or a view lives on another accelerator.</exception>
    public void Copy(ArrayView<float> source, ArrayView<float> destination, AcceleratorStream? stream = null)
    {
        var accelerator = IlgpuAccelerator(nameof(Copy));
        AtLeast(destination.Length, source.Length, nameof(destination), "the source's length");
        if (source.Length == 0) return;
        var s = IlgpuInterop.StreamOf(accelerator, stream);
        var (from, to) = (Ptr(source, accelerator, nameof(source)), Ptr(destination, accelerator, nameof(destination)));
        Device.EnsureCurrent(nameof(Copy));
        Copy(from, to, source.Length, s);
    }

    private CudaAccelerator IlgpuAccelerator(string operation) =>
        Device.IlgpuAccelerator ?? throw new InvalidOperationException(
            $"{operation} on ILGPU views needs the kernels loaded on CudaDevice.FromIlgpu(accelerator); these run in a context of their own ({Device}).");

    private static DevicePointer Ptr<T>(ArrayView<T> view, CudaAccelerator accelerator, string name) where T : unmanaged =>
        IlgpuInterop.PointerOf(view, accelerator, name);

    private static void AtLeast(long length, long needed, string name, string what)
    {
        if (length < needed)
            throw new ArgumentException($"{name} has {length} elements; it needs at least {what} = {needed}.", name);
    }

    private static void Optional(long length, int rows, string name)
    {
        if (length != 0 && length < rows)
            throw new ArgumentException($"{name} has {length} elements; it needs at least rows = {rows}, or none (empty).", name);
    }
}
