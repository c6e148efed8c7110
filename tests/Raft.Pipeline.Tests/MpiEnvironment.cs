namespace Raft.Pipeline.Tests;

/// <summary>Runs Raft.Pipeline.MpiHost under mpirun (the launcher rules are in tests/Shared/MpiLauncher.cs).</summary>
internal static class MpiEnvironment
{
    public static string HostDll => Path.Combine(AppContext.BaseDirectory, "pipeline-mpihost", "Raft.Pipeline.MpiHost.dll");

    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/> dotnet Raft.Pipeline.MpiHost.dll <paramref name="arguments"/></c>.</summary>
    public static (int ExitCode, string Output) Run(int ranks, IEnumerable<string> arguments, int timeoutSeconds = 120) =>
        MpiLauncher.Run(HostDll, ranks, arguments, timeoutSeconds);
}
