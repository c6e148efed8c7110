using ILGPU.Runtime;

namespace Raft.Cuda;

/// <summary>
/// A CUDA event (CUevent) of a device's context, for timing device work: <see cref="Record(IntPtr)"/> it on a stream
/// before and after the work, then <see cref="ElapsedMilliseconds"/> gives the device time between the two
/// (cuEventElapsedTime, resolution about 0.5 µs). Created with default flags (timing enabled, spin wait).
/// <see cref="Dispose"/> destroys it.
/// </summary>
public sealed unsafe class CudaEvent : IDisposable
{
    private readonly CudaDevice _device;
    private IntPtr _handle;

    /// <summary>Creates an event in <paramref name="device"/>'s context (cuEventCreate).</summary>
    /// <exception cref="CudaException">The driver call failed.</exception>
    public CudaEvent(CudaDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        device.MakeCurrent();
        IntPtr handle;
        device.Api.Check(device.Api.cuEventCreate(&handle, 0u), "cuEventCreate");
        _handle = handle;
    }

    /// <summary>The CUevent handle (zero once disposed).</summary>
    public IntPtr Handle => _handle;

    /// <summary>Queues the event on <paramref name="stream"/> (zero: the default stream) with cuEventRecord.</summary>
    /// <exception cref="CudaException">The driver call failed.</exception>
    public void Record(IntPtr stream = default)
    {
        ThrowIfDisposed();
        _device.MakeCurrent();
        _device.Api.Check(_device.Api.cuEventRecord(_handle, stream), "cuEventRecord");
    }

    /// <summary>
    /// Queues the event on an ILGPU stream (null: the accelerator's default stream) of the accelerator whose context
    /// the event's device wraps (<see cref="CudaDevice.FromIlgpu"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The event's device is not an ILGPU accelerator's.</exception>
    /// <exception cref="ArgumentException">The stream belongs to another accelerator.</exception>
    public void Record(AcceleratorStream? stream)
    {
        ThrowIfDisposed();
        var accelerator = _device.IlgpuAccelerator ?? throw new InvalidOperationException(
            $"an ILGPU stream needs an event created on CudaDevice.FromIlgpu(accelerator); this one's device is {_device}.");
        Record(IlgpuInterop.StreamOf(accelerator, stream));
    }

    /// <summary>Waits until the work queued before the event's last <see cref="Record(IntPtr)"/> has completed (cuEventSynchronize).</summary>
    /// <exception cref="CudaException">The driver call failed, or earlier queued work failed.</exception>
    public void Synchronize()
    {
        ThrowIfDisposed();
        _device.MakeCurrent();
        _device.Api.Check(_device.Api.cuEventSynchronize(_handle), "cuEventSynchronize");
    }

    /// <summary>
    /// The device time in milliseconds from <paramref name="start"/> to <paramref name="end"/>, both recorded
    /// and completed (call <see cref="Synchronize"/> on <paramref name="end"/> first).
    /// </summary>
    /// <exception cref="CudaException">An event has not completed (CUDA_ERROR_NOT_READY) or was never recorded.</exception>
    public static float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        start.ThrowIfDisposed();
        end.ThrowIfDisposed();
        var device = start._device;
        device.MakeCurrent();
        float ms;
        device.Api.Check(device.Api.cuEventElapsedTime(&ms, start._handle, end._handle), "cuEventElapsedTime");
        return ms;
    }

    /// <summary>Destroys the event (idempotent; nothing to destroy once the device released its context).</summary>
    public void Dispose()
    {
        if (_handle == IntPtr.Zero) return;
        var handle = _handle;
        _handle = IntPtr.Zero;
        if (_device.IsDisposed) return;
        if (_device.Api.cuCtxSetCurrent(_device.Context) == 0)
            _device.Api.cuEventDestroy(handle); // nothing useful to do if destroying fails
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_handle == IntPtr.Zero, this);
}
