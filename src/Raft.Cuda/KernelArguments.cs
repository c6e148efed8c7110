namespace Raft.Cuda;

/// <summary>
/// The argument list of a kernel launch, in the order of the kernel's parameters. Each argument is a value of at
/// most 8 bytes (pointers, integers, floats), stored by value; cuLaunchKernel reads as many bytes of each as the
/// kernel's parameter type has, so the C# type must match the CUDA parameter's size (int ↔ int, long ↔ long long,
/// <see cref="DevicePointer"/> ↔ any pointer).
/// </summary>
public sealed class KernelArguments
{
    private readonly List<ulong> _slots = [];

    /// <summary>The number of arguments added.</summary>
    public int Count => _slots.Count;

    /// <summary>Adds a device pointer (a T* parameter).</summary>
    public KernelArguments Add(DevicePointer value) => AddValue(value.Address);

    /// <summary>Adds a buffer's device address (a T* parameter).</summary>
    public KernelArguments Add<T>(DeviceBuffer<T> buffer) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        return AddValue(buffer.Pointer.Address);
    }

    /// <summary>Adds an int parameter.</summary>
    public KernelArguments Add(int value) => AddValue(value);

    /// <summary>Adds an unsigned int parameter.</summary>
    public KernelArguments Add(uint value) => AddValue(value);

    /// <summary>Adds a long long parameter.</summary>
    public KernelArguments Add(long value) => AddValue(value);

    /// <summary>Adds an unsigned long long parameter.</summary>
    public KernelArguments Add(ulong value) => AddValue(value);

    /// <summary>Adds a float parameter.</summary>
    public KernelArguments Add(float value) => AddValue(value);

    /// <summary>Adds a double parameter.</summary>
    public KernelArguments Add(double value) => AddValue(value);

    /// <summary>Adds any unmanaged value of at most 8 bytes, bit for bit.</summary>
    public unsafe KernelArguments AddValue<T>(T value) where T : unmanaged
    {
        if (sizeof(T) > sizeof(ulong))
            throw new ArgumentException($"A kernel argument must be at most 8 bytes; {typeof(T).Name} has {sizeof(T)}.", nameof(value));
        ulong slot = 0;
        *(T*)&slot = value;
        _slots.Add(slot);
        return this;
    }

    /// <summary>Copies the slots into <paramref name="destination"/> (native launch glue).</summary>
    internal void CopyTo(Span<ulong> destination)
    {
        for (int i = 0; i < _slots.Count; i++) destination[i] = _slots[i];
    }
}
