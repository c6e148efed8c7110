using System.Diagnostics.CodeAnalysis;
using ILGPU;
using Raft.Cuda;

namespace Raft.Kernels.Cuda;

/// <summary>
/// The one place that turns a <see cref="ComputeDevice"/> and a CPU thread count into loss kernels
/// (<see cref="KernelBackend"/>):
/// <list type="bullet">
/// <item><see cref="ComputeDevice.Cpu"/>: the SIMD <see cref="CpuKernels"/>.</item>
/// <item><see cref="ComputeDevice.Cuda"/>: <see cref="IlgpuKernels"/> on ILGPU's CUDA accelerator with libdevice
/// (<see cref="KernelBackends.TryCreateCudaAccelerator"/>).</item>
/// <item><see cref="ComputeDevice.CudaC"/>: the hand-written CUDA C kernels (<see cref="CudaCKernels"/>) on ILGPU's
/// CUDA accelerator; they also need NVRTC.</item>
/// <item><see cref="ComputeDevice.Auto"/>: the CUDA driver's own probe first (cheaper and clearer than ILGPU's when
/// there is no GPU at all), then Cuda; the CPU, with the reason in the description, when either fails (briefly, "no CUDA
/// driver", on a machine without one: <see cref="CudaDevice.BriefUnavailableReason"/>).</item>
/// </list>
/// Every reason a GPU cannot be used — no driver, no device, no libdevice, no NVRTC — is caught and reported. On a
/// GPU the backend's <see cref="KernelBackend.Accelerator"/> is the accelerator the kernels run on, for others to
/// share (the GPU student).
/// </summary>
public static class KernelBackendFactory
{
    /// <summary>Creates the kernels for <paramref name="device"/>.</summary>
    /// <param name="device">Where to run.</param>
    /// <param name="cpuThreads">Threads of the CPU kernels (and of the CPU cross-entropy of cuda-c); 0 = all cores.</param>
    /// <exception cref="ArgumentException"><paramref name="device"/> is not defined, or <paramref name="cpuThreads"/> is negative.</exception>
    /// <exception cref="InvalidOperationException"><see cref="ComputeDevice.Cuda"/> or <see cref="ComputeDevice.CudaC"/> was
    /// asked for and cannot run here: "no usable CUDA device (the reason)."</exception>
    public static KernelBackend Create(ComputeDevice device, int cpuThreads = 0)
    {
        if (!Enum.IsDefined(device))
            throw new ArgumentException($"device = {(int)device}: must be {ComputeDevices.Choices}.", nameof(device));
        if (cpuThreads < 0)
            throw new ArgumentException($"cpuThreads must be ≥ 0 (0: all cores), got {cpuThreads}.", nameof(cpuThreads));
        switch (device)
        {
            case ComputeDevice.Cpu:
                return Cpu(cpuThreads, null);
            case ComputeDevice.CudaC:
                return TryCreateCudaC(cpuThreads, out var cudaC, out string whyNotC) ? cudaC : throw Unavailable(whyNotC);
            case ComputeDevice.Cuda:
                if (!CudaDevice.IsAvailable) throw Unavailable(NoDriverReason);
                return TryCreateCuda(out var cuda, out string whyNot) ? cuda : throw Unavailable(whyNot);
            default:
                // said briefly: every CPU-only run shows this line (an explicit cuda gets the full reason in its error)
                if (!CudaDevice.IsAvailable) return Cpu(cpuThreads, CudaDevice.BriefUnavailableReason);
                return TryCreateCuda(out var found, out string why) ? found : Cpu(cpuThreads, why);
        }
    }

    /// <summary>Tries <see cref="IlgpuKernels"/> on ILGPU's CUDA accelerator on the first CUDA device; on failure says why.</summary>
    /// <param name="backend">The backend (device <see cref="ComputeDevice.Cuda"/>), when true; it owns the accelerator and its context.</param>
    /// <param name="reason">Why not, when false.</param>
    public static bool TryCreateCuda([NotNullWhen(true)] out KernelBackend? backend, out string reason)
    {
        backend = null;
        if (!KernelBackends.TryCreateCudaAccelerator(OptimizationLevel.O1, out var context, out var accelerator, out string deviceName, out reason))
            return false;
        try
        {
            var kernels = IlgpuKernels.Own(accelerator!, context!);
            backend = new KernelBackend(kernels, ComputeDevice.Cuda, $"cuda: {deviceName} ({kernels.Name})");
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

    /// <summary>Tries the CUDA C kernels (<see cref="CudaCKernels.TryCreate"/>) on ILGPU's CUDA accelerator; on failure says why.</summary>
    /// <param name="cpuThreads">Threads of the CPU cross-entropy on host spans; 0 = all cores.</param>
    /// <param name="backend">The backend (device <see cref="ComputeDevice.CudaC"/>), when true; it owns the accelerator and its context.</param>
    /// <param name="reason">Why not, when false.</param>
    public static bool TryCreateCudaC(int cpuThreads, [NotNullWhen(true)] out KernelBackend? backend, out string reason)
    {
        backend = null;
        if (!CudaCKernels.TryCreate(cpuThreads, out var kernels, out reason)) return false;
        backend = new KernelBackend(kernels, ComputeDevice.CudaC, kernels.Description);
        return true;
    }

    private static string NoDriverReason => "no CUDA device: " + CudaDevice.UnavailableReason;

    private static KernelBackend Cpu(int cpuThreads, string? autoReason)
    {
        var cpu = new CpuKernels(cpuThreads);
        return new KernelBackend(cpu, ComputeDevice.Cpu, autoReason is null ? cpu.Name : $"{cpu.Name} (auto: {autoReason})");
    }

    private static InvalidOperationException Unavailable(string reason) => new($"no usable CUDA device ({reason}).");
}
