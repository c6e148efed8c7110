using System.Diagnostics;
using System.Globalization;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Cli.Commands;

/// <summary>
/// Test-only fault injection for the distributed tests, off unless <see cref="Variable"/> is set:
/// <c>kill:RANK:STEP</c> makes rank RANK kill itself with SIGKILL right after training step STEP (a crashed or
/// OOM-killed process: no exception, no MPI_Abort, no MPI_Finalize); <c>hang:RANK:STEP</c> makes it stop there
/// without exiting (a stuck process, which only the collective timeout ends); <c>sleep:RANK:MS</c> makes it sleep MS
/// milliseconds after every step (a slow run, for the tests that signal or race a run in progress; refine and eval sleep so where they check for a signal, see <see cref="Pause"/>). The other ranks run normally.
/// </summary>
internal static class FaultInjection
{
    /// <summary>The environment variable that turns it on.</summary>
    public const string Variable = "RAFT_TEST_FAULT";

    /// <summary>The <c>sleep:0:MS</c> fault where a command without steps (refine, eval) checks for a signal: sleeps MS milliseconds.</summary>
    public static void Pause()
    {
        string? text = Environment.GetEnvironmentVariable(Variable);
        const string prefix = "sleep:0:";
        if (text is not null && text.StartsWith(prefix, StringComparison.Ordinal)
            && int.TryParse(text.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int ms))
            Thread.Sleep(ms);
    }

    /// <summary>The <see cref="Trainer.AfterStep"/> hook for this rank, or null when no fault is asked for here.</summary>
    /// <exception cref="UsageException">The variable is set but not kill|hang:RANK:STEP.</exception>
    public static Action<StepMetrics, LlamaModel>? AfterStep(int rank, TextWriter stderr)
    {
        string? text = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrWhiteSpace(text)) return null;
        var parts = text.Split(':');
        if (parts.Length != 3 || parts[0] is not ("kill" or "hang" or "sleep")
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int faultRank)
            || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out int step) || step < 1)
            throw new UsageException($"{Variable}={text}: expected kill:RANK:STEP, hang:RANK:STEP or sleep:RANK:MS with RANK ≥ 0 and STEP, MS ≥ 1 (test-only fault injection).");
        if (faultRank != rank) return null;
        if (parts[0] == "sleep") return (_, _) => Thread.Sleep(step);
        bool kill = parts[0] == "kill";
        return (metrics, _) =>
        {
            if (metrics.Step != step) return;
            stderr.WriteLine($"{Variable}: rank {rank} {(kill ? "kills itself (SIGKILL)" : "hangs")} after step {step}");
            stderr.Flush();
            if (kill) Process.GetCurrentProcess().Kill();
            Thread.Sleep(Timeout.Infinite);
        };
    }
}
