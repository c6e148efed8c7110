using System.Text;

namespace Raft.Cuda;

/// <summary>A loaded module (CUmodule) of a device; <see cref="Dispose"/> unloads it (the device also unloads it on its own disposal).</summary>
public sealed unsafe class CudaModule : IDisposable
{
    private readonly Dictionary<string, CudaFunction> _functions = new(StringComparer.Ordinal);
    private bool _unloaded;

    internal CudaModule(CudaDevice device, IntPtr handle)
    {
        Device = device;
        Handle = handle;
    }

    /// <summary>The device whose context holds the module.</summary>
    public CudaDevice Device { get; }

    /// <summary>The CUmodule handle.</summary>
    public IntPtr Handle { get; }

    /// <summary>A kernel of the module by its (extern "C") name.</summary>
    /// <exception cref="CudaException">No such kernel: CUDA_ERROR_NOT_FOUND from cuModuleGetFunction.</exception>
    public CudaFunction GetFunction(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        lock (_functions)
        {
            ObjectDisposedException.ThrowIf(_unloaded, this);
            if (_functions.TryGetValue(name, out var cached)) return cached;
            Device.MakeCurrent();
            var bytes = new byte[Encoding.UTF8.GetByteCount(name) + 1];
            Encoding.UTF8.GetBytes(name, bytes);
            IntPtr function;
            fixed (byte* p = bytes)
                Device.Api.Check(Device.Api.cuModuleGetFunction(&function, Handle, p), "cuModuleGetFunction");
            var created = new CudaFunction(this, name, function);
            _functions.Add(name, created);
            return created;
        }
    }

    /// <summary>Unloads the module (idempotent).</summary>
    public void Dispose()
    {
        if (Device.IsDisposed) return;
        Device.Forget(this);
        if (Device.Api.cuCtxSetCurrent(Device.Context) == 0) Unload();
    }

    internal void Unload()
    {
        lock (_functions)
        {
            if (_unloaded) return;
            _unloaded = true;
            _functions.Clear();
            Device.Api.cuModuleUnload(Handle); // the context is current (callers ensure it)
        }
    }

    internal bool IsUnloaded => _unloaded;
}

/// <summary>A kernel (CUfunction) of a loaded module.</summary>
public sealed unsafe class CudaFunction
{
    internal CudaFunction(CudaModule module, string name, IntPtr handle)
    {
        Module = module;
        Name = name;
        Handle = handle;
    }

    /// <summary>The module the kernel belongs to.</summary>
    public CudaModule Module { get; }

    /// <summary>The kernel's name.</summary>
    public string Name { get; }

    /// <summary>The CUfunction handle.</summary>
    public IntPtr Handle { get; }

    /// <summary>
    /// Queues the kernel on <paramref name="stream"/> (zero: the default stream) with cuLaunchKernel. The launch is
    /// asynchronous: a fault inside the kernel is reported by a later synchronizing call.
    /// </summary>
    /// <param name="grid">Blocks per grid.</param>
    /// <param name="block">Threads per block.</param>
    /// <param name="sharedMemoryBytes">Dynamic shared memory per block, in bytes.</param>
    /// <param name="arguments">The kernel's arguments, in order.</param>
    /// <param name="stream">A CUstream, or zero.</param>
    /// <exception cref="CudaException">The launch was rejected.</exception>
    public void Launch(Dim3 grid, Dim3 block, uint sharedMemoryBytes, KernelArguments arguments, IntPtr stream = default)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        ObjectDisposedException.ThrowIf(Module.IsUnloaded, Module);
        var device = Module.Device;
        device.MakeCurrent();
        int n = arguments.Count;
        Span<ulong> slots = stackalloc ulong[Math.Max(n, 1)];
        arguments.CopyTo(slots);
        fixed (ulong* s = slots)
        {
            void** pointers = stackalloc void*[Math.Max(n, 1)];
            for (int i = 0; i < n; i++) pointers[i] = s + i;
            device.Api.Check(device.Api.cuLaunchKernel(Handle, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z,
                sharedMemoryBytes, stream, pointers, null), "cuLaunchKernel");
        }
    }

    /// <summary>Registers per thread of the compiled kernel (cuFuncGetAttribute).</summary>
    public int Registers => GetAttribute(CudaDriverApi.FunctionAttributeNumRegisters, "cuFuncGetAttribute(NUM_REGS)");

    /// <summary>
    /// Lets launches of this kernel use up to <paramref name="bytes"/> of dynamic shared memory (needed above 48 KB;
    /// at most <see cref="CudaDevice.MaxSharedMemoryPerBlockOptIn"/> less the kernel's static shared memory).
    /// </summary>
    /// <exception cref="CudaException">The driver refused the size.</exception>
    public void SetMaxDynamicSharedMemory(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        ObjectDisposedException.ThrowIf(Module.IsUnloaded, Module);
        var device = Module.Device;
        device.MakeCurrent();
        device.Api.Check(device.Api.cuFuncSetAttribute(Handle, CudaDriverApi.FunctionAttributeMaxDynamicSharedSizeBytes, bytes),
            $"cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES = {bytes}) on {Name}");
    }

    /// <summary>How many blocks of <paramref name="blockSize"/> threads and <paramref name="dynamicSharedBytes"/> fit on one multiprocessor at once.</summary>
    public int MaxActiveBlocksPerMultiprocessor(int blockSize, int dynamicSharedBytes)
    {
        ObjectDisposedException.ThrowIf(Module.IsUnloaded, Module);
        var device = Module.Device;
        device.MakeCurrent();
        int n;
        device.Api.Check(device.Api.cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, Handle, blockSize, (nuint)dynamicSharedBytes),
            $"cuOccupancyMaxActiveBlocksPerMultiprocessor on {Name}");
        return n;
    }

    /// <summary>
    /// How many clusters of this kernel (compile-time cluster size <paramref name="clusterSize"/>) fit on the device
    /// at once; without the driver's query (before CUDA 12), an estimate from the per-multiprocessor occupancy.
    /// </summary>
    public int MaxActiveClusters(int clusterSize, int blockSize, int dynamicSharedBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(clusterSize, 1);
        var device = Module.Device;
        if (clusterSize == 1 || device.Api.cuOccupancyMaxActiveClusters == null)
            return Math.Max(1, MaxActiveBlocksPerMultiprocessor(blockSize, dynamicSharedBytes) * device.MultiprocessorCount / clusterSize);
        ObjectDisposedException.ThrowIf(Module.IsUnloaded, Module);
        device.MakeCurrent();
        var config = new CudaDriverApi.LaunchConfig
        {
            GridDimX = (uint)(clusterSize * device.MultiprocessorCount), GridDimY = 1, GridDimZ = 1,
            BlockDimX = (uint)blockSize, BlockDimY = 1, BlockDimZ = 1,
            SharedMemBytes = (uint)dynamicSharedBytes,
        };
        int n;
        device.Api.Check(device.Api.cuOccupancyMaxActiveClusters(&n, Handle, &config), $"cuOccupancyMaxActiveClusters on {Name}");
        return Math.Max(1, n);
    }

    private int GetAttribute(int attribute, string call)
    {
        ObjectDisposedException.ThrowIf(Module.IsUnloaded, Module);
        var device = Module.Device;
        device.MakeCurrent();
        int value;
        device.Api.Check(device.Api.cuFuncGetAttribute(&value, attribute, Handle), call);
        return value;
    }

    /// <inheritdoc />
    public override string ToString() => Name;
}
