using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Raft.Kernels;

/// <summary>ILGPU's CUDA accelerator, opened in one place for the loss kernels (Raft.Kernels.Cuda) and Raft.Gpu's model.</summary>
public static class KernelBackends
{
    /// <summary>
    /// The one place that opens ILGPU's CUDA accelerator on the first CUDA device (used by the loss kernels of
    /// Raft.Kernels.Cuda's KernelBackendFactory and by Raft.Gpu's model): first a driver-only probe (is there a device at all?), then a context with the CUDA toolkit's
    /// libdevice, which ILGPU's PTX backend takes exp and log from. On failure the reason says which step failed;
    /// the caller owns (and disposes) the context and accelerator it gets.
    /// </summary>
    public static bool TryCreateCudaAccelerator(OptimizationLevel optimization, out Context? context, out Accelerator? accelerator,
        out string deviceName, out string reason)
    {
        context = null;
        accelerator = null;
        deviceName = "";
        try
        {
            using var probe = Context.Create(builder => builder.Cuda());
            var devices = probe.GetCudaDevices();
            if (devices.Count == 0)
            {
                reason = "no CUDA device";
                return false;
            }
            deviceName = devices[0].Name;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            reason = $"no CUDA device ({e.GetType().Name}: {e.Message})";
            return false;
        }
        try
        {
            context = Context.Create(builder => builder.Cuda().LibDevice().Optimize(optimization));
            accelerator = context.GetCudaDevices()[0].CreateAccelerator(context);
            reason = "";
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            context?.Dispose();
            context = null;
            reason = $"CUDA device {deviceName} found, but ILGPU cannot use it ({e.GetType().Name}: {e.Message}; " +
                     "ILGPU needs the CUDA toolkit's libdevice, found through CUDA_HOME)";
            return false;
        }
    }
}
