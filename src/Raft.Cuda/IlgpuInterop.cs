using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Raft.Cuda;

/// <summary>
/// Raw CUDA handles of ILGPU objects, for launching the CUDA C kernels in ILGPU's context: the device address of an
/// <see cref="ArrayView{T}"/> on a CUDA accelerator (ILGPU's <c>LoadEffectiveAddressAsPtr</c>: the buffer's
/// CUdeviceptr plus the view's offset) and the CUstream of an <see cref="AcceleratorStream"/> (zero for an
/// accelerator's default stream, the legacy NULL stream of ILGPU's context).
/// </summary>
public static class IlgpuInterop
{
    /// <summary>
    /// The device address of <paramref name="view"/>'s first element; <see cref="DevicePointer.Null"/> for an empty
    /// or invalid view. With <paramref name="accelerator"/>, the view must belong to it.
    /// </summary>
    /// <exception cref="ArgumentException">The view lives on another accelerator, or not on a CUDA accelerator.</exception>
    public static DevicePointer PointerOf<T>(ArrayView<T> view, CudaAccelerator? accelerator = null, string name = "view") where T : unmanaged
    {
        if (!view.IsValid || view.Length == 0) return DevicePointer.Null;
        var owner = view.GetAccelerator();
        if (owner is not CudaAccelerator)
            throw new ArgumentException($"{name} lives on ILGPU's {owner.AcceleratorType} accelerator, not on a CUDA accelerator.", name);
        if (accelerator is not null && !ReferenceEquals(owner, accelerator))
            throw new ArgumentException($"{name} lives on another ILGPU accelerator ({owner}) than the kernels' ({accelerator}).", name);
        return new DevicePointer((ulong)view.LoadEffectiveAddressAsPtr());
    }

    /// <summary>The device address of a dense one-dimensional view (a buffer's <c>View</c>); see <see cref="PointerOf{T}(ArrayView{T}, CudaAccelerator?, string)"/>.</summary>
    public static DevicePointer PointerOf<T>(ArrayView1D<T, Stride1D.Dense> view, CudaAccelerator? accelerator = null, string name = "view") where T : unmanaged =>
        PointerOf((ArrayView<T>)view, accelerator, name);

    /// <summary>
    /// The CUstream of <paramref name="stream"/> (null: <paramref name="accelerator"/>'s default stream), which must be
    /// a stream of <paramref name="accelerator"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The stream belongs to another accelerator.</exception>
    public static IntPtr StreamOf(CudaAccelerator accelerator, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        stream ??= accelerator.DefaultStream;
        if (!ReferenceEquals(stream.Accelerator, accelerator) || stream is not CudaStream cuda)
            throw new ArgumentException($"the stream belongs to another accelerator ({stream.Accelerator}) than the kernels' ({accelerator}).", nameof(stream));
        ObjectDisposedException.ThrowIf(cuda.IsDisposed, cuda);
        return cuda.StreamPtr;
    }
}
