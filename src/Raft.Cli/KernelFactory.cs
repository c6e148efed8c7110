using Raft.Kernels;

namespace Raft.Cli;

/// <summary>Chooses the loss kernels the commands run on.</summary>
internal static class KernelFactory
{
    /// <summary>The kernels for a run on <paramref name="device"/>; <paramref name="threads"/> is null for "all cores".</summary>
    public static KernelBackend Create(ComputeDevice device, int? threads) => KernelBackends.Create(device, threads ?? 0);
}
