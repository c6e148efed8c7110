namespace Raft.Cuda;

/// <summary>
/// A CUDA device address (CUdeviceptr). Buffers from other libraries (for example ILGPU's) can be passed to the
/// kernels by wrapping their raw address.
/// </summary>
/// <param name="Address">The device address; 0 is the null pointer.</param>
public readonly record struct DevicePointer(ulong Address)
{
    /// <summary>The null device pointer (kernels read it as "absent" where their contract allows).</summary>
    public static DevicePointer Null => default;

    /// <summary>Whether this is the null pointer.</summary>
    public bool IsNull => Address == 0;

    /// <summary>This address advanced by <paramref name="bytes"/> bytes.</summary>
    public DevicePointer AddBytes(long bytes) => new(unchecked(Address + (ulong)bytes));

    /// <summary>This address advanced by <paramref name="count"/> elements of <typeparamref name="T"/>.</summary>
    public unsafe DevicePointer Add<T>(long count) where T : unmanaged => AddBytes(count * sizeof(T));

    /// <inheritdoc />
    public override string ToString() => $"0x{Address:x}";
}

/// <summary>A CUDA launch dimension (dim3).</summary>
/// <param name="X">Extent in x (at least 1).</param>
/// <param name="Y">Extent in y (at least 1).</param>
/// <param name="Z">Extent in z (at least 1).</param>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    /// <summary>A one-dimensional extent.</summary>
    public static implicit operator Dim3(uint x) => new(x);

    /// <summary>A one-dimensional extent from an int (must be ≥ 1).</summary>
    public static implicit operator Dim3(int x) =>
        x >= 1 ? new((uint)x) : throw new ArgumentOutOfRangeException(nameof(x), x, "A launch dimension must be ≥ 1.");
}
