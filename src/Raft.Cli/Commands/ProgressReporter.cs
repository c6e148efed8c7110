using System.Diagnostics;
using System.Globalization;
using Raft.Pipeline.Training;

namespace Raft.Cli.Commands;

/// <summary>
/// Training progress on stderr: a live bar with ETA when stderr is a terminal, plain log lines (about 20 per run) otherwise.
/// </summary>
internal sealed class ProgressReporter(TextWriter stderr, bool interactive)
{
    private readonly Stopwatch _sw = Stopwatch.StartNew();
    private int _first = -1, _last;

    /// <summary>Whether stderr is the process's real, non-redirected console.</summary>
    public static bool IsTerminal(TextWriter stderr) => ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;

    public void Report(int done, int total, StepMetrics m)
    {
        if (_first < 0 || done <= _last)
        {
            // a new run (e.g. the second phase of raft pretrain): restart the clock
            _first = done - 1;
            _sw.Restart();
        }
        _last = done;
        double elapsed = _sw.Elapsed.TotalSeconds;
        double perStep = elapsed / Math.Max(1, done - _first);
        double eta = perStep * (total - done);
        string kd = m.KdLoss is double k ? string.Create(CultureInfo.InvariantCulture, $" kd {k:F4} w {m.WeightKd:F2}/{m.WeightSft:F2}") : "";
        string stats = string.Create(CultureInfo.InvariantCulture,
            $"step {done}/{total} loss {m.Loss:F4} sft {m.SftLoss:F4}{kd} |g| {m.GradNorm:F2} lr {m.LearningRate:G3} {m.TokensPerSecond:F0} tok/s");
        if (interactive)
        {
            int width = 24, filled = (int)Math.Round(width * (double)done / total);
            stderr.Write(string.Create(CultureInfo.InvariantCulture,
                $"\r[{new string('#', filled)}{new string('.', width - filled)}] {stats} ETA {Eta(eta)}   "));
            if (done == total) stderr.WriteLine();
        }
        else if (done == total || done == _first + 1 || done % Math.Max(1, total / 20) == 0)
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{stats} elapsed {Eta(elapsed)} ETA {Eta(eta)}"));
    }

    private static string Eta(double seconds) =>
        seconds >= 3600 ? $"{(int)(seconds / 3600)}h{(int)(seconds % 3600 / 60):D2}m" : $"{(int)(seconds / 60)}m{(int)(seconds % 60):D2}s";
}
