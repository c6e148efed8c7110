using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Text;
using ILGPU.Runtime.Cuda;

namespace Raft.Cuda;

/// <summary>
/// One CUDA device and the context the kernels run in: the device's primary context (retained on open, released
/// on <see cref="Dispose"/>), ILGPU's context of a CUDA accelerator (<see cref="FromIlgpu"/>: the accelerator owns
/// it, and the kernels launch on its streams and buffers), or a context that another library made current
/// (<see cref="FromCurrentContext"/>); a borrowed context is never released or destroyed here. Every operation makes
/// the context current on the calling thread first (for ILGPU's, through the accelerator's own binding, so that
/// ILGPU's idea of the current context stays true), so a device may be used from any thread. Disposal is deterministic: it unloads the modules
/// loaded through this object and releases the primary context (a <see cref="SafeHandle"/> releases it if the
/// object is never disposed). Buffers and modules must not be used after their device is disposed.
/// </summary>
public sealed unsafe class CudaDevice : IDisposable
{
    private static readonly Lazy<(bool Ok, string Reason, int Count)> s_probe = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly CudaDriverApi _api;
    private readonly PrimaryContextHandle? _primary;
    private readonly CudaAccelerator? _ilgpu;
    private readonly List<CudaModule> _modules = [];
    private readonly object _sync = new();
    private bool _disposed;

    private CudaDevice(CudaDriverApi api, int ordinal, int device, IntPtr context, PrimaryContextHandle? primary, CudaAccelerator? ilgpu = null)
    {
        _api = api;
        _primary = primary;
        _ilgpu = ilgpu;
        Ordinal = ordinal;
        Handle = device;
        Context = context;
        byte* name = stackalloc byte[256];
        api.Check(api.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        Name = Marshal.PtrToStringUTF8((IntPtr)name) ?? "";
        ComputeCapabilityMajor = Attribute(CudaDriverApi.AttributeComputeCapabilityMajor);
        ComputeCapabilityMinor = Attribute(CudaDriverApi.AttributeComputeCapabilityMinor);
        MultiprocessorCount = Attribute(CudaDriverApi.AttributeMultiprocessorCount);
        MaxSharedMemoryPerBlock = Attribute(CudaDriverApi.AttributeMaxSharedMemoryPerBlock);
        MaxSharedMemoryPerBlockOptIn = Math.Max(MaxSharedMemoryPerBlock, Attribute(CudaDriverApi.AttributeMaxSharedMemoryPerBlockOptin));
        MaxThreadsPerBlock = Attribute(CudaDriverApi.AttributeMaxThreadsPerBlock);
        nuint bytes;
        api.Check(api.cuDeviceTotalMem(&bytes, device), "cuDeviceTotalMem_v2");
        TotalMemoryBytes = (long)bytes;
    }

    /// <summary>Whether a CUDA device can be opened here: libcuda loads, cuInit succeeds and at least one device exists.</summary>
    public static bool IsAvailable => s_probe.Value.Ok;

    /// <summary>Why no CUDA device can be opened (no libcuda, cuInit failed, zero devices), or null when one can.</summary>
    public static string? UnavailableReason => s_probe.Value.Ok ? null : s_probe.Value.Reason;

    /// <summary>
    /// <see cref="UnavailableReason"/> in a few words, for a line that only says where work runs: "no CUDA driver" when
    /// libcuda cannot be loaded at all (the usual CPU-only machine; the full reason, with the library names tried and the
    /// variable that names another path, is for an explicit request of CUDA), else "no CUDA device: " and the full reason
    /// (a driver is there, so its failure is worth reading); null when available.
    /// </summary>
    public static string? BriefUnavailableReason =>
        s_probe.Value.Ok ? null : CudaDriverApi.TryGet(out _) is null ? "no CUDA driver" : "no CUDA device: " + s_probe.Value.Reason;

    /// <summary>The number of CUDA devices (0 when CUDA is unavailable).</summary>
    public static int DeviceCount => s_probe.Value.Count;

    /// <summary>The CUDA driver's version as an integer (1000·major + 10·minor, e.g. 13000), or 0 when unavailable.</summary>
    public static int DriverVersion => CudaDriverApi.TryGet(out _)?.DriverVersion ?? 0;

    /// <summary>The device ordinal (0-based).</summary>
    public int Ordinal { get; }

    /// <summary>The CUdevice handle.</summary>
    public int Handle { get; }

    /// <summary>The CUcontext the kernels run in.</summary>
    public IntPtr Context { get; }

    /// <summary>The device's name, for example "NVIDIA H100 80GB HBM3".</summary>
    public string Name { get; }

    /// <summary>Compute capability, major part (9 for an H100).</summary>
    public int ComputeCapabilityMajor { get; }

    /// <summary>Compute capability, minor part.</summary>
    public int ComputeCapabilityMinor { get; }

    /// <summary>The number of streaming multiprocessors.</summary>
    public int MultiprocessorCount { get; }

    /// <summary>Shared memory a block may use without opting in, in bytes (48 KiB on current devices).</summary>
    public int MaxSharedMemoryPerBlock { get; }

    /// <summary>The most shared memory a block may have once its kernel opts in (<see cref="CudaFunction.SetMaxDynamicSharedMemory"/>), in bytes.</summary>
    public int MaxSharedMemoryPerBlockOptIn { get; }

    /// <summary>The largest block size.</summary>
    public int MaxThreadsPerBlock { get; }

    /// <summary>The device's memory in bytes.</summary>
    public long TotalMemoryBytes { get; }

    /// <summary>
    /// The ILGPU accelerator whose context this device runs in (<see cref="FromIlgpu"/>), or null. Its
    /// <c>ArrayView</c> buffers and <c>AcceleratorStream</c>s can be passed to <see cref="CudaLossKernels"/>.
    /// </summary>
    public CudaAccelerator? IlgpuAccelerator => _ilgpu;

    /// <summary>Whether this device's context is the one current on the calling thread (cuCtxGetCurrent).</summary>
    public bool IsCurrent
    {
        get
        {
            IntPtr current;
            _api.Check(_api.cuCtxGetCurrent(&current), "cuCtxGetCurrent");
            return current == Context;
        }
    }

    /// <summary>Whether this object released its context.</summary>
    public bool IsDisposed => _disposed;

    internal CudaDriverApi Api => _api;

    /// <summary>Opens device <paramref name="ordinal"/> without throwing.</summary>
    /// <returns>True with the device, or false with <paramref name="reason"/> saying why not.</returns>
    public static bool TryOpen(int ordinal, [NotNullWhen(true)] out CudaDevice? device, out string reason)
    {
        device = null;
        var (ok, why, count) = s_probe.Value;
        if (!ok)
        {
            reason = why;
            return false;
        }
        if (ordinal < 0 || ordinal >= count)
        {
            reason = $"device ordinal {ordinal} is out of range: {count} CUDA device(s) present";
            return false;
        }
        try
        {
            device = Open(ordinal);
            reason = "";
            return true;
        }
        catch (CudaException e)
        {
            reason = e.Message;
            return false;
        }
    }

    /// <summary>Opens device 0 without throwing.</summary>
    public static bool TryOpen([NotNullWhen(true)] out CudaDevice? device, out string reason) => TryOpen(0, out device, out reason);

    /// <summary>Opens device <paramref name="ordinal"/>: retains its primary context and makes it current.</summary>
    /// <exception cref="InvalidOperationException">CUDA is unavailable (the message says why).</exception>
    /// <exception cref="ArgumentOutOfRangeException">No device has that ordinal.</exception>
    /// <exception cref="CudaException">A driver call failed.</exception>
    public static CudaDevice Open(int ordinal = 0)
    {
        var (ok, why, count) = s_probe.Value;
        if (!ok) throw new InvalidOperationException("CUDA is unavailable: " + why);
        if (ordinal < 0 || ordinal >= count)
            throw new ArgumentOutOfRangeException(nameof(ordinal), ordinal, $"{count} CUDA device(s) present.");
        var api = CudaDriverApi.TryGet(out _)!;
        int device;
        api.Check(api.cuDeviceGet(&device, ordinal), "cuDeviceGet");
        IntPtr context;
        api.Check(api.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        var primary = new PrimaryContextHandle(api, device, context);
        try
        {
            api.Check(api.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            return new CudaDevice(api, ordinal, device, context, primary);
        }
        catch
        {
            primary.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Wraps the context current on the calling thread (for example ILGPU's after it bound its accelerator), so
    /// that kernels launch on that context and can read its buffers. The context is not released on dispose.
    /// </summary>
    /// <exception cref="InvalidOperationException">CUDA is unavailable, or no context is current on this thread.</exception>
    public static CudaDevice FromCurrentContext()
    {
        var (ok, why, _) = s_probe.Value;
        if (!ok) throw new InvalidOperationException("CUDA is unavailable: " + why);
        var api = CudaDriverApi.TryGet(out _)!;
        IntPtr context;
        api.Check(api.cuCtxGetCurrent(&context), "cuCtxGetCurrent");
        if (context == IntPtr.Zero) throw new InvalidOperationException("No CUDA context is current on this thread.");
        int device;
        api.Check(api.cuCtxGetDevice(&device), "cuCtxGetDevice");
        int count = s_probe.Value.Count, ordinal = -1;
        for (int i = 0; i < count && ordinal < 0; i++)
        {
            int d;
            api.Check(api.cuDeviceGet(&d, i), "cuDeviceGet");
            if (d == device) ordinal = i;
        }
        return new CudaDevice(api, ordinal, device, context, null);
    }

    /// <summary>
    /// Wraps the context of an ILGPU CUDA accelerator (its <c>NativePtr</c>, created by ILGPU with cuCtxCreate), so
    /// that the CUDA C kernels launch in the context that owns the accelerator's buffers and streams. ILGPU keeps
    /// ownership: disposing this object unloads only the modules loaded through it, and disposing the accelerator
    /// first also unloads them (its Disposed event fires while the context still exists) and marks this device
    /// disposed.
    /// </summary>
    /// <exception cref="InvalidOperationException">CUDA is unavailable here (the message says why).</exception>
    /// <exception cref="ObjectDisposedException">The accelerator is disposed.</exception>
    /// <exception cref="CudaException">A driver call failed.</exception>
    public static CudaDevice FromIlgpu(CudaAccelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ObjectDisposedException.ThrowIf(accelerator.IsDisposed || accelerator.NativePtr == IntPtr.Zero, accelerator);
        var (ok, why, count) = s_probe.Value;
        if (!ok) throw new InvalidOperationException("CUDA is unavailable: " + why);
        var api = CudaDriverApi.TryGet(out _)!;
        IntPtr context = accelerator.NativePtr;
        BindIlgpu(api, accelerator, context);
        int device;
        api.Check(api.cuCtxGetDevice(&device), "cuCtxGetDevice");
        int ordinal = -1;
        for (int i = 0; i < count && ordinal < 0; i++)
        {
            int d;
            api.Check(api.cuDeviceGet(&d, i), "cuDeviceGet");
            if (d == device) ordinal = i;
        }
        var wrapped = new CudaDevice(api, ordinal, device, context, null, accelerator);
        accelerator.Disposed += wrapped.OnIlgpuDisposed;
        return wrapped;
    }

    /// <summary>Makes this device's context current on the calling thread (for ILGPU's, binds the accelerator too).</summary>
    /// <exception cref="ObjectDisposedException">The device (or its ILGPU accelerator) was disposed.</exception>
    public void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_ilgpu is not null) BindIlgpu(_api, _ilgpu, Context);
        else _api.Check(_api.cuCtxSetCurrent(Context), "cuCtxSetCurrent");
    }

    /// <summary>
    /// Makes the context current and checks that the driver agrees (cuCtxGetCurrent), for launches on buffers of a
    /// borrowed context: a mismatch would make the driver read another context's handles.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another context is current after binding.</exception>
    internal void EnsureCurrent(string operation)
    {
        MakeCurrent();
        IntPtr current;
        _api.Check(_api.cuCtxGetCurrent(&current), "cuCtxGetCurrent");
        if (current != Context)
            throw new InvalidOperationException(
                $"{operation}: the current CUDA context is 0x{current:x}, not this device's 0x{Context:x}" +
                (_ilgpu is null ? "." : " (the ILGPU accelerator's)."));
    }

    /// <summary>
    /// Binds ILGPU's accelerator (ILGPU skips its cuCtxSetCurrent when it believes the accelerator is already bound on
    /// this thread, which is wrong after another library changed the context), then sets the context if needed.
    /// </summary>
    private static void BindIlgpu(CudaDriverApi api, CudaAccelerator accelerator, IntPtr context)
    {
        ObjectDisposedException.ThrowIf(accelerator.IsDisposed, accelerator);
        accelerator.Bind();
        IntPtr current;
        api.Check(api.cuCtxGetCurrent(&current), "cuCtxGetCurrent");
        if (current != context) api.Check(api.cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    private void OnIlgpuDisposed(object? sender, EventArgs e) => Dispose();

    /// <summary>The NVRTC architecture for this device with the loaded NVRTC (see <see cref="NvrtcCompiler.ChooseArchitecture(int, int)"/>).</summary>
    public string ChooseArchitecture() => NvrtcCompiler.ChooseArchitecture(ComputeCapabilityMajor, ComputeCapabilityMinor);

    /// <summary>Loads PTX into this device's context (cuModuleLoadDataEx; a JIT failure's log is in the exception).</summary>
    /// <exception cref="CudaException">The driver rejected the PTX.</exception>
    public CudaModule LoadModule(string ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        MakeCurrent();
        var image = new byte[Encoding.UTF8.GetByteCount(ptx) + 1];
        Encoding.UTF8.GetBytes(ptx, image);
        var log = new byte[16384];
        IntPtr module;
        int result;
        fixed (byte* img = image)
        fixed (byte* logBuffer = log)
        {
            int* options = stackalloc int[2] { CudaDriverApi.JitErrorLogBuffer, CudaDriverApi.JitErrorLogBufferSizeBytes };
            void** values = stackalloc void*[2];
            values[0] = logBuffer;
            values[1] = (void*)(nuint)log.Length;
            result = _api.cuModuleLoadDataEx(&module, img, 2, options, values);
        }
        if (result != 0)
        {
            int end = Array.IndexOf(log, (byte)0);
            _api.Check(result, "cuModuleLoadDataEx", Encoding.UTF8.GetString(log, 0, end < 0 ? log.Length : end));
        }
        var loaded = new CudaModule(this, module);
        lock (_sync) _modules.Add(loaded);
        return loaded;
    }

    /// <summary>Allocates an uninitialized buffer of <paramref name="length"/> elements (cuMemAlloc_v2).</summary>
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged => new(this, length);

    /// <summary>Allocates a buffer holding a copy of <paramref name="data"/>.</summary>
    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        var buffer = new DeviceBuffer<T>(this, data.Length);
        try
        {
            buffer.CopyFrom(data);
            return buffer;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>Waits for all work in this context (cuCtxSynchronize); a failed kernel reports here.</summary>
    public void Synchronize()
    {
        MakeCurrent();
        _api.Check(_api.cuCtxSynchronize(), "cuCtxSynchronize");
    }

    /// <summary>Waits for the work queued on <paramref name="stream"/> (cuStreamSynchronize; zero is the default stream).</summary>
    public void Synchronize(IntPtr stream)
    {
        MakeCurrent();
        _api.Check(_api.cuStreamSynchronize(stream), "cuStreamSynchronize");
    }

    internal void Forget(CudaModule module)
    {
        lock (_sync) _modules.Remove(module);
    }

    /// <summary>Unloads the modules loaded through this object and releases the primary context, if it is one (idempotent).</summary>
    public void Dispose()
    {
        CudaModule[] modules;
        lock (_sync)
        {
            if (_disposed) return;
            modules = [.. _modules];
            _modules.Clear();
        }
        if (_ilgpu is not null) _ilgpu.Disposed -= OnIlgpuDisposed;
        if (_api.cuCtxSetCurrent(Context) == 0)
            foreach (var m in modules) m.Unload();
        lock (_sync) _disposed = true;
        _primary?.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{Name} (device {Ordinal}, compute capability {ComputeCapabilityMajor}.{ComputeCapabilityMinor}, {MultiprocessorCount} SMs)";

    private int Attribute(int attribute)
    {
        int value;
        _api.Check(_api.cuDeviceGetAttribute(&value, attribute, Handle), "cuDeviceGetAttribute");
        return value;
    }

    private static (bool, string, int) Probe()
    {
        var api = CudaDriverApi.TryGet(out var reason);
        if (api is null) return (false, reason, 0);
        int result = api.cuInit(0);
        if (result != 0) return (false, api.CreateException(result, "cuInit").Message, 0);
        int count;
        result = api.cuDeviceGetCount(&count);
        if (result != 0) return (false, api.CreateException(result, "cuDeviceGetCount").Message, 0);
        if (count == 0) return (false, "the CUDA driver reports zero devices", 0);
        return (true, "", count);
    }

    /// <summary>A retained primary context; releasing the handle releases the retain.</summary>
    private sealed class PrimaryContextHandle : SafeHandle
    {
        private readonly CudaDriverApi _api;
        private readonly int _device;

        public PrimaryContextHandle(CudaDriverApi api, int device, IntPtr context) : base(IntPtr.Zero, ownsHandle: true)
        {
            _api = api;
            _device = device;
            SetHandle(context);
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle() => _api.cuDevicePrimaryCtxRelease(_device) == 0;
    }
}
