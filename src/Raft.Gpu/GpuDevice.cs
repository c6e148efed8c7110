using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Raft.Gpu;

/// <summary>An ILGPU context and one accelerator on it, owned together (disposing this disposes both).</summary>
public sealed class GpuDevice : IDisposable
{
    private GpuDevice(Context context, Accelerator accelerator, string description)
    {
        Context = context;
        Accelerator = accelerator;
        Description = description;
    }

    /// <summary>The ILGPU context.</summary>
    public Context Context { get; }
    /// <summary>The accelerator (CUDA or ILGPU's CPU simulator).</summary>
    public Accelerator Accelerator { get; }
    /// <summary>One line for logs, e.g. "cuda: NVIDIA H100 80GB HBM3 (132 SMs)".</summary>
    public string Description { get; }

    /// <summary>
    /// ILGPU's CPU accelerator for tests on tiny shapes and host checks: OS threads simulate GPU threads (a group's
    /// barrier waits for all of them), so it is configured small: one multiprocessor, groups of up to 16 threads
    /// (4 warps of 4). The kernels adapt their group sizes (16×16 GEMM tiles instead of 64×64) and run the same code.
    /// </summary>
    public static GpuDevice CreateCpu()
    {
        var device = new CPUDevice(numThreadsPerWarp: 4, numWarpsPerMultiprocessor: 4, numMultiprocessors: 1);
        var context = Context.Create(builder => builder.CPU(device).Optimize(OptimizationLevel.O1));
        try
        {
            return new GpuDevice(context, context.CreateCPUAccelerator(0), "ilgpu-cpu (simulated, 16 threads per group)");
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>
    /// ILGPU's CUDA accelerator on the first CUDA device, with libdevice (ILGPU's PTX backend takes exp, log and sqrt
    /// from it; found through CUDA_HOME). False, with the reason, when there is no driver, no device or no libdevice.
    /// </summary>
    public static bool TryCreateCuda(out GpuDevice? device, out string reason)
    {
        device = null;
        if (!Raft.Kernels.KernelBackends.TryCreateCudaAccelerator(OptimizationLevel.O1, out var context, out var accelerator, out string name, out reason))
            return false;
        device = new GpuDevice(context!, accelerator!, $"cuda: {name} ({accelerator!.NumMultiprocessors} SMs)");
        return true;
    }

    /// <summary>Waits for everything enqueued on the accelerator's default stream.</summary>
    public void Synchronize() => Accelerator.Synchronize();

    /// <inheritdoc />
    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }
}
