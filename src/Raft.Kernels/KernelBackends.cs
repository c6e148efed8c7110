using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Raft.Kernels;

/// <summary>Where the loss kernels run.</summary>
public enum ComputeDevice
{
    /// <summary>CUDA when a device is present and usable, the CPU otherwise (the default).</summary>
    Auto = 0,
    /// <summary>The SIMD CPU kernels (<see cref="CpuKernels"/>).</summary>
    Cpu = 1,
    /// <summary>The ILGPU kernels on ILGPU's CUDA accelerator (<see cref="IlgpuKernels"/>); an error when no GPU is usable.</summary>
    Cuda = 2,
}

/// <summary>The chosen kernels and a one-line account of the choice (for the log).</summary>
/// <param name="Kernels">The kernels; dispose them when they are <see cref="IDisposable"/>.</param>
/// <param name="Description">E.g. "cuda: NVIDIA H100 (ilgpu-cuda)" or "cpu-vector512 (auto: no CUDA device: …)".</param>
public sealed record KernelBackend(ILossKernels Kernels, string Description) : IDisposable
{
    /// <inheritdoc />
    public void Dispose() => (Kernels as IDisposable)?.Dispose();
}

/// <summary>
/// One place that turns <c>--device cpu|cuda|auto</c> into kernels. CUDA goes through ILGPU's CUDA accelerator
/// with libdevice (ILGPU's PTX backend takes exp and log from it); every reason CUDA cannot be used — no driver,
/// no device, no libdevice — is caught and reported, and <see cref="ComputeDevice.Auto"/> then falls back to the CPU.
/// </summary>
public static class KernelBackends
{
    /// <summary>Creates the kernels for <paramref name="device"/>; CPU threads: 0 = all cores.</summary>
    /// <exception cref="InvalidOperationException"><see cref="ComputeDevice.Cuda"/> was asked for and no GPU is usable (the message says why).</exception>
    public static KernelBackend Create(ComputeDevice device, int cpuThreads = 0)
    {
        if (!Enum.IsDefined(device)) Guard.Throw($"device must be auto, cpu or cuda, got {(int)device}.", nameof(device));
        if (device == ComputeDevice.Cpu)
        {
            var cpu = new CpuKernels(cpuThreads);
            return new KernelBackend(cpu, cpu.Name);
        }
        if (TryCreateCuda(out var cuda, out string reason))
            return cuda!;
        if (device == ComputeDevice.Cuda)
            throw new InvalidOperationException($"--device cuda: no usable CUDA device ({reason}).");
        var fallback = new CpuKernels(cpuThreads);
        return new KernelBackend(fallback, $"{fallback.Name} (auto: {reason})");
    }

    /// <summary>Tries ILGPU's CUDA accelerator on the first CUDA device; on failure says why.</summary>
    public static bool TryCreateCuda(out KernelBackend? backend, out string reason)
    {
        backend = null;
        if (!TryCreateCudaAccelerator(OptimizationLevel.O1, out var context, out var accelerator, out string deviceName, out reason))
            return false;
        try
        {
            var kernels = IlgpuKernels.Own(accelerator!, context!);
            backend = new KernelBackend(kernels, $"cuda: {deviceName} ({kernels.Name})");
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            accelerator!.Dispose();
            context!.Dispose();
            reason = $"CUDA device {deviceName} found, but ILGPU cannot use it ({e.GetType().Name}: {e.Message})";
            return false;
        }
    }

    /// <summary>
    /// The one place that opens ILGPU's CUDA accelerator on the first CUDA device (used by the loss kernels here and by
    /// Raft.Gpu's model): first a driver-only probe (is there a device at all?), then a context with the CUDA toolkit's
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
