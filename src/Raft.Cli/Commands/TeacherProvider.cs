using Raft.Cuda;
using Raft.Kernels;

namespace Raft.Cli.Commands;

/// <summary>
/// The command line's side of <c>--teacher-provider auto|cpu|cuda</c>: the CUDA driver is probed before ONNX Runtime is
/// asked for its CUDA provider, so that a CPU-only machine neither prints ONNX Runtime's red "Failed to load library
/// libonnxruntime_providers_cuda.so" error (auto) nor runs silently on the CPU when CUDA was asked for (cuda: exit 2).
/// </summary>
internal static class TeacherProvider
{
    /// <summary>
    /// <paramref name="asked"/> as ONNX Runtime should get it: auto becomes cpu when no CUDA device can be opened here;
    /// cpu and cuda are kept (a cuda that cannot start is then an error, never a silent fallback).
    /// </summary>
    /// <exception cref="UsageException">cuda was asked for and no CUDA device can be opened: <c>--teacher-provider cuda: no usable CUDA device (…).</c></exception>
    public static ComputeDevice Resolve(ComputeDevice asked) => Resolve(asked, out _);

    /// <summary>As <see cref="Resolve(ComputeDevice)"/>; <paramref name="cpuReason"/> says why auto became cpu ("auto: no CUDA driver"), else null.</summary>
    public static ComputeDevice Resolve(ComputeDevice asked, out string? cpuReason)
    {
        cpuReason = asked == ComputeDevice.Auto && !CudaDevice.IsAvailable ? $"auto: {CudaDevice.BriefUnavailableReason}" : null;
        return Resolved(asked);
    }

    private static ComputeDevice Resolved(ComputeDevice asked) => asked switch
    {
        ComputeDevice.Auto => CudaDevice.IsAvailable ? ComputeDevice.Auto : ComputeDevice.Cpu,
        ComputeDevice.Cuda when !CudaDevice.IsAvailable =>
            throw new UsageException($"--teacher-provider cuda: no usable CUDA device ({CudaDevice.UnavailableReason}); use --teacher-provider cpu or auto."),
        _ => asked,
    };
}
