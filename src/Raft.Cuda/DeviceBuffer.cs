namespace Raft.Cuda;

/// <summary>
/// Device memory holding <see cref="Length"/> elements of <typeparamref name="T"/> (cuMemAlloc_v2), freed by
/// <see cref="Dispose"/>. Copies are synchronous (cuMemcpy*_v2). A zero-length buffer holds no allocation.
/// </summary>
public sealed unsafe class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly CudaDevice _device;
    private bool _disposed;

    internal DeviceBuffer(CudaDevice device, long length)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _device = device;
        Length = length;
        if (length == 0) return;
        device.MakeCurrent();
        ulong address;
        device.Api.Check(device.Api.cuMemAlloc(&address, checked((nuint)SizeInBytes)), "cuMemAlloc_v2");
        Pointer = new DevicePointer(address);
    }

    /// <summary>The device the memory lives on.</summary>
    public CudaDevice Device => _device;

    /// <summary>The number of elements.</summary>
    public long Length { get; }

    /// <summary>The size in bytes.</summary>
    public long SizeInBytes => checked(Length * sizeof(T));

    /// <summary>The device address of element 0 (null for an empty buffer).</summary>
    public DevicePointer Pointer { get; }

    /// <summary>The device address of element <paramref name="index"/> (0..Length).</summary>
    public DevicePointer ElementPointer(long index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, Length);
        return Pointer.Add<T>(index);
    }

    /// <summary>Copies host data into the buffer starting at element <paramref name="offset"/>.</summary>
    public void CopyFrom(ReadOnlySpan<T> source, long offset = 0)
    {
        CheckRange(offset, source.Length, nameof(source));
        if (source.IsEmpty) return;
        _device.MakeCurrent();
        fixed (T* p = source)
            _device.Api.Check(_device.Api.cuMemcpyHtoD(Pointer.Add<T>(offset).Address, p, (nuint)((long)source.Length * sizeof(T))), "cuMemcpyHtoD_v2");
    }

    /// <summary>Copies buffer elements starting at <paramref name="offset"/> into host memory.</summary>
    public void CopyTo(Span<T> destination, long offset = 0)
    {
        CheckRange(offset, destination.Length, nameof(destination));
        if (destination.IsEmpty) return;
        _device.MakeCurrent();
        fixed (T* p = destination)
            _device.Api.Check(_device.Api.cuMemcpyDtoH(p, Pointer.Add<T>(offset).Address, (nuint)((long)destination.Length * sizeof(T))), "cuMemcpyDtoH_v2");
    }

    /// <summary>Copies the whole buffer of another buffer of the same length, device to device.</summary>
    public void CopyFrom(DeviceBuffer<T> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Length != Length)
            throw new ArgumentException($"source has {source.Length} elements, this buffer {Length}.", nameof(source));
        ObjectDisposedException.ThrowIf(_disposed, this);
        ObjectDisposedException.ThrowIf(source._disposed, source);
        if (Length == 0) return;
        _device.MakeCurrent();
        _device.Api.Check(_device.Api.cuMemcpyDtoD(Pointer.Address, source.Pointer.Address, (nuint)SizeInBytes), "cuMemcpyDtoD_v2");
    }

    /// <summary>Sets every byte to zero (cuMemsetD8_v2).</summary>
    public void Clear()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Length == 0) return;
        _device.MakeCurrent();
        _device.Api.Check(_device.Api.cuMemsetD8(Pointer.Address, 0, (nuint)SizeInBytes), "cuMemsetD8_v2");
    }

    /// <summary>A host copy of the whole buffer.</summary>
    public T[] ToArray()
    {
        var result = new T[Length];
        CopyTo(result);
        return result;
    }

    /// <summary>Frees the memory (idempotent; nothing to free once the device released its context).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (Pointer.IsNull || _device.IsDisposed) return;
        if (_device.Api.cuCtxSetCurrent(_device.Context) == 0)
            _device.Api.cuMemFree(Pointer.Address);
    }

    private void CheckRange(long offset, int count, string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (offset < 0 || offset + count > Length)
            throw new ArgumentOutOfRangeException(name, $"{count} elements at offset {offset} do not fit a buffer of {Length}.");
    }
}
