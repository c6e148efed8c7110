using Raft.Cuda;

namespace Raft.Tests.Shared;

/// <summary>
/// A fact that needs a CUDA device and NVRTC (to build the CUDA C kernels). Skipped, with the reason, where either is
/// missing; it never passes vacuously. raft-gpubench's <c>--gpu-tests</c> (GpuTestRunner) runs the methods marked with
/// it by this type's name. Linked source, one copy.
/// </summary>
public sealed class GpuFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no device or no NVRTC is present.</summary>
    public GpuFactAttribute() => Skip = GpuRequirement.Missing();
}

/// <summary>A theory that needs a CUDA device and NVRTC; skipped with the reason otherwise (see <see cref="GpuFactAttribute"/>).</summary>
public sealed class GpuTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no device or no NVRTC is present.</summary>
    public GpuTheoryAttribute() => Skip = GpuRequirement.Missing();
}

internal static class GpuRequirement
{
    /// <summary>Why a GPU test cannot run here, or null when a CUDA device and NVRTC are both present.</summary>
    public static string? Missing() =>
        !CudaDevice.IsAvailable ? "No CUDA device: " + CudaDevice.UnavailableReason
        : !NvrtcCompiler.IsAvailable ? "A CUDA device is present but NVRTC is not: " + NvrtcCompiler.UnavailableReason
        : null;
}
