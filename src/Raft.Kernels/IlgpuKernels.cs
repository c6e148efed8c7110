namespace Raft.Kernels;

/// <summary>PLACEHOLDER being written (issue #2): the ILGPU implementation.</summary>
public sealed class IlgpuKernels
{
    /// <summary>Placeholder.</summary>
    public static void EmaBalancerStep() => throw new NotImplementedException();
}
