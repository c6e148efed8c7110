namespace Raft.Distributed.Tests;

/// <summary>Runs Raft.Distributed.MpiHost under mpirun (the launcher rules are in tests/Shared/MpiLauncher.cs).</summary>
internal static class MpiEnvironment
{
    public static string HostDll => Path.Combine(AppContext.BaseDirectory, "mpihost", "Raft.Distributed.MpiHost.dll");

    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/> dotnet Raft.Distributed.MpiHost.dll <paramref name="arguments"/></c> (space-separated).</summary>
    public static (int ExitCode, string Output) Run(int ranks, string arguments, int timeoutSeconds = 60) =>
        MpiLauncher.Run(HostDll, ranks, arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries), timeoutSeconds);
}

/// <summary>A fact that needs libnccl.so.2 and a GPU; skipped with the reason otherwise.</summary>
public sealed class NcclFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when NCCL cannot run here.</summary>
    public NcclFactAttribute()
    {
        if (!NcclCollective.IsAvailable) Skip = "NCCL cannot run here: " + NcclCollective.UnavailableReason;
    }
}

/// <summary>A fact that runs only where NCCL is absent (it checks the error that absence gives).</summary>
public sealed class NoNcclFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when NCCL is present.</summary>
    public NoNcclFactAttribute()
    {
        if (NcclCollective.IsAvailable) Skip = "NCCL and a GPU are present here; the absence error cannot be observed (NcclTests cover the real backend).";
    }
}
