using ILGPU;
using ILGPU.Runtime.Cuda;
using Raft.Cuda;
using CudaDevice = Raft.Cuda.CudaDevice;

namespace Raft.GpuBench;

/// <summary>
/// One CUDA context for the whole run: ILGPU's CUDA accelerator owns it, the CUDA C kernels are loaded into it
/// (<see cref="CudaDevice.FromIlgpu"/>), and every CUDA event lives in it, so that no handle of one context is used
/// while another is current (the first GPU run failed with "invalid resource handle" when the CUDA C path ran in the
/// device's primary context and ILGPU in its own). ILGPU's context is created with libdevice for the ILGPU kernels;
/// without libdevice it is created without it (the ILGPU kernels are then skipped with the reason, the CUDA C path
/// still runs on ILGPU's context); only when ILGPU cannot open the device at all does the run fall back to the
/// primary context of <see cref="CudaDevice.Open"/> (said in <see cref="ContextNote"/>).
/// </summary>
internal sealed class GpuSession : IDisposable
{
    private readonly Context? _context;

    private GpuSession(Context? context, CudaAccelerator? accelerator, CudaDevice device, IlgpuBench? ilgpu, string ilgpuNote, string contextNote)
    {
        _context = context;
        Accelerator = accelerator;
        Device = device;
        Ilgpu = ilgpu;
        IlgpuNote = ilgpuNote;
        ContextNote = contextNote;
    }

    /// <summary>The device the CUDA C kernels run on (ILGPU's context when <see cref="Accelerator"/> is set).</summary>
    public CudaDevice Device { get; }

    /// <summary>ILGPU's CUDA accelerator that owns the context, or null on the fallback.</summary>
    public CudaAccelerator? Accelerator { get; }

    /// <summary>The ILGPU kernels' path, or null (skipped: <see cref="IlgpuNote"/> says why).</summary>
    public IlgpuBench? Ilgpu { get; }

    /// <summary>Why the ILGPU kernels are skipped, or empty.</summary>
    public string IlgpuNote { get; }

    /// <summary>Which context the run uses, for the report.</summary>
    public string ContextNote { get; }

    /// <summary>Opens device <paramref name="o"/>.Device as described above, or returns null with the reason (no CUDA device).</summary>
    public static GpuSession? TryOpen(BenchOptions o, out string reason)
    {
        if (!CudaDevice.IsAvailable)
        {
            reason = CudaDevice.UnavailableReason!;
            return null;
        }
        if (o.Device < 0 || o.Device >= CudaDevice.DeviceCount)
        {
            reason = $"device ordinal {o.Device} is out of range: {CudaDevice.DeviceCount} CUDA device(s) present";
            return null;
        }
        string ilgpuNote = "";
        Context? context = null;
        if (!o.SkipIlgpu)
        {
            try
            {
                context = Context.Create(b => b.Cuda().LibDevice().Optimize(OptimizationLevel.O2));
            }
            catch (Exception e)
            {
                ilgpuNote = "ILGPU could not set up libdevice (it needs the CUDA toolkit's nvvm/libdevice; set CUDA_PATH to the toolkit): "
                    + e.GetType().Name + ": " + e.Message;
            }
        }
        else ilgpuNote = "--no-ilgpu";
        bool ilgpuKernels = context is not null;
        CudaAccelerator? accelerator = null;
        try
        {
            context ??= Context.Create(b => b.Cuda());
            var devices = context.GetCudaDevices();
            if (devices.Count <= o.Device) throw new InvalidOperationException($"ILGPU sees {devices.Count} CUDA device(s)");
            accelerator = context.CreateCudaAccelerator(o.Device);
            var device = CudaDevice.FromIlgpu(accelerator);
            IlgpuBench? ilgpu = ilgpuKernels ? new IlgpuBench(accelerator, device) : null;
            reason = "";
            return new GpuSession(context, accelerator, device, ilgpu, ilgpuNote,
                $"one context: ILGPU's CUDA accelerator owns it (0x{accelerator.NativePtr:x}); the CUDA C kernels, their buffers and every CUDA event run in it");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            accelerator?.Dispose();
            context?.Dispose();
            if (!CudaDevice.TryOpen(o.Device, out var primary, out reason)) return null;
            string why = $"ILGPU cannot open CUDA device {o.Device} ({e.GetType().Name}: {e.Message})";
            return new GpuSession(null, null, primary, null, ilgpuNote.Length > 0 ? ilgpuNote : why,
                $"the device's primary context (fallback: {why}); no ILGPU path");
        }
    }

    /// <summary>Disposes the ILGPU kernels, the CUDA C device wrapper (its modules), the accelerator and ILGPU's context, in that order.</summary>
    public void Dispose()
    {
        try
        {
            Ilgpu?.Dispose();
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"ILGPU kernels dispose failed (ignored): {e.GetType().Name}: {e.Message}");
        }
        Device.Dispose();
        Accelerator?.Dispose();
        _context?.Dispose();
    }
}
