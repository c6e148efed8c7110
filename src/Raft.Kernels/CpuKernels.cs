namespace Raft.Kernels;

/// <summary>PLACEHOLDER being written (issue #2).</summary>
public sealed class CpuKernels
{
}
