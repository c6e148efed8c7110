using Raft.Kernels;

namespace Raft.Cli;

/// <summary>Chooses the loss kernels the commands run on.</summary>
internal static class KernelFactory
{
    /// <summary>The kernels for a run; <paramref name="threads"/> is null for "all cores".</summary>
    public static ILossKernels Create(int? threads)
    {
        return new CpuKernels(maxThreads: threads ?? 0); // ReferenceKernels.Instance: the double-precision spec
    }
}
