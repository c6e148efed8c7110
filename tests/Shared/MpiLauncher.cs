using System.Diagnostics;
using System.Text;

namespace Raft.Tests.Shared;

/// <summary>
/// Where mpirun is, whether its absence is a skip or (RAFT_REQUIRE_MPI=1, set on CI) a failure, and how a test runs an
/// MPI host program under it. Compiled into each test project that launches ranks (linked source, one copy).
/// </summary>
internal static class MpiLauncher
{
    public const string RequireVariable = "RAFT_REQUIRE_MPI";

    public static bool Required => Environment.GetEnvironmentVariable(RequireVariable) == "1";

    public static string? MpiRun { get; } = FindOnPath("mpirun");

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>The dotnet executable running these tests (DOTNET_HOST_PATH under dotnet test), else dotnet on PATH.</summary>
    private static string Dotnet =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    /// <summary>
    /// Runs <c>mpirun -np <paramref name="ranks"/> dotnet <paramref name="hostDll"/> <paramref name="arguments"/></c>,
    /// killing the whole process tree and failing after <paramref name="timeoutSeconds"/> (a test never hangs).
    /// </summary>
    public static (int ExitCode, string Output) Run(string hostDll, int ranks, IEnumerable<string> arguments, int timeoutSeconds,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        Assert.True(File.Exists(hostDll), $"The MPI test host was not built next to the tests: {hostDll}");
        return RunCommand(ranks, [Dotnet, hostDll, .. arguments], timeoutSeconds, environment);
    }

    /// <summary>The dotnet executable (for a test that wraps the host in its own command line).</summary>
    public static string DotnetExecutable => Dotnet;

    /// <summary>
    /// Runs <c>mpirun -np <paramref name="ranks"/> <paramref name="command"/></c> (a program and its arguments, started
    /// once per rank) with <paramref name="environment"/> added to every rank's environment; kills the whole process
    /// tree and fails after <paramref name="timeoutSeconds"/>.
    /// </summary>
    public static (int ExitCode, string Output) RunCommand(int ranks, IEnumerable<string> command, int timeoutSeconds,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var mpirun = MpiRun ?? throw new InvalidOperationException(
            $"mpirun is not on PATH but {RequireVariable}=1: install Open MPI (apt-get install -y openmpi-bin libopenmpi-dev).");
        var args = command.ToArray();
        var start = new ProcessStartInfo(mpirun) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            start.ArgumentList.Add(a);
        start.Environment["TERM"] = "dumb";
        start.Environment.Remove("RAFT_COLLECTIVE_TIMEOUT"); // CollectiveOptions.TimeoutVariable: the scenarios set their own
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
            start.ArgumentList.Add("-x"); // exported to every rank explicitly (mpirun forwards only some variables to remote nodes)
            start.ArgumentList.Add(name);
        }
        foreach (var a in args) start.ArgumentList.Add(a);

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.WaitForExit(TimeSpan.FromSeconds(10));
            string partial;
            lock (output) partial = output.ToString();
            Assert.Fail($"mpirun {string.Join(' ', args)} did not finish within {timeoutSeconds} s (killed). Output so far:\n{partial}");
        }
        process.WaitForExit(); // drains the redirected streams
        lock (output) return (process.ExitCode, output.ToString());
    }
}

/// <summary>
/// A fact that needs mpirun (Open MPI): skipped with the reason when mpirun is absent, unless RAFT_REQUIRE_MPI=1,
/// when it runs and fails on the missing launcher.
/// </summary>
public sealed class MpiFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when mpirun is absent and not required.</summary>
    public MpiFactAttribute()
    {
        if (MpiLauncher.MpiRun is null && !MpiLauncher.Required)
            Skip = "mpirun (Open MPI) is not on PATH: apt-get install -y openmpi-bin libopenmpi-dev; set RAFT_REQUIRE_MPI=1 to fail instead of skipping.";
    }
}
