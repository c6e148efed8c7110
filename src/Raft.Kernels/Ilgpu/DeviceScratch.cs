using ILGPU;
using ILGPU.Runtime;

namespace Raft.Kernels.Ilgpu;

/// <summary>A device buffer that is reused across calls and grows (never shrinks) to the largest size asked for.</summary>
internal sealed class DeviceScratch<T> : IDisposable where T : unmanaged
{
    private readonly Accelerator _accelerator;
    private MemoryBuffer1D<T, Stride1D.Dense>? _buffer;

    public DeviceScratch(Accelerator accelerator) => _accelerator = accelerator;

    /// <summary>A view of exactly <paramref name="length"/> elements (contents undefined); length 0 gives an empty view.</summary>
    public ArrayView<T> Get(long length)
    {
        if (_buffer is null || _buffer.Length < Math.Max(length, 1))
        {
            _buffer?.Dispose();
            _buffer = null;
            _buffer = _accelerator.Allocate1D<T>(Math.Max(length, 1));
        }
        return _buffer.View.BaseView.SubView(0, length);
    }

    /// <summary>Uploads <paramref name="source"/> and returns the view holding it.</summary>
    public ArrayView<T> Upload(ReadOnlySpan<T> source)
    {
        var view = Get(source.Length);
        if (source.Length > 0) view.CopyFromCPU(source);
        return view;
    }

    public void Dispose()
    {
        _buffer?.Dispose();
        _buffer = null;
    }
}
