using System.Diagnostics;
using System.Globalization;
using Raft.Benchmarks.Distill;
using Raft.Benchmarks.Training;
using TorchSharp;

namespace Raft.Benchmarks.RealShape;

/// <summary>One fresh-process measurement: RSS before the trainer, whole-process peak RSS after the steps, the step losses and times.</summary>
public sealed record RealShapeRun(string Method, long BaselineBytes, long PeakBytes, bool HwmReset, double[] Losses, double[] Seconds)
{
    /// <summary>Peak RSS growth over the baseline (the trainer's working set).</summary>
    public long DeltaBytes => PeakBytes - BaselineBytes;
}

/// <summary>
/// Whole-process peak RSS per method, each in a fresh process (<c>Raft.Benchmarks.dll sft-real-memory METHOD</c>): the
/// child makes the random weights and tokens (<see cref="TrainingProblem"/>, the same in every method), loads libtorch for
/// TorchSharp, runs a full GC, resets VmHWM, reads VmRSS (the baseline: the source weights and the runtime), builds the
/// trainer and runs <see cref="Steps"/> steps, then reads VmHWM (the whole process's peak, source weights included in
/// every method alike). The step losses double as the validation: the first step's loss is a function of the shared
/// initial weights and tokens only, so the engine's and libtorch's must agree.
/// </summary>
public static class RealShapeMemory
{
    /// <summary>Steps per measurement.</summary>
    public const int Steps = 2;

    private const string Marker = "RAFT_SFT_REAL";

    /// <summary>Child entry: one method; prints one marker line.</summary>
    public static int Child(string method)
    {
        if (!RealShapeCase.Methods.Contains(method)) { Console.Error.WriteLine($"unknown method '{method}' ({string.Join(", ", RealShapeCase.Methods)})."); return 2; }
        var p = new TrainingProblem(RealShapeCase.Case);
        if (method == "TorchSharp")
        {
            TorchNativeFix.Apply();
            torch.set_num_threads(Environment.ProcessorCount);
            using var warm = torch.ones(4) * 2; // libtorch loaded before the baseline
        }
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
        bool reset = TrainingMemory.ResetHwm();
        long baseline = TrainingMemory.ReadStatus("VmRSS");
        var losses = new double[Steps];
        var seconds = new double[Steps];
        using (var t = RealShapeCase.Create(method, p))
            for (int i = 0; i < Steps; i++)
            {
                var sw = Stopwatch.StartNew();
                losses[i] = t.Step();
                seconds[i] = sw.Elapsed.TotalSeconds;
            }
        long peak = TrainingMemory.ReadStatus("VmHWM");
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"{Marker} {method} {baseline} {peak} {(reset ? 1 : 0)} {string.Join(',', losses.Select(l => l.ToString("R", inv)))} {string.Join(',', seconds.Select(s => s.ToString("R", inv)))}");
        return 0;
    }

    /// <summary>Runs every method in a fresh process; null entries failed (the log says why).</summary>
    public static List<RealShapeRun> RunAll(TextWriter log, IEnumerable<string> extraArgs)
    {
        var runs = new List<RealShapeRun>();
        string host = Environment.ProcessPath ?? "dotnet";
        string dll = typeof(RealShapeMemory).Assembly.Location;
        var inv = CultureInfo.InvariantCulture;
        foreach (string m in RealShapeCase.Methods)
        {
            var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            if (!Path.GetFileNameWithoutExtension(host).Equals("Raft.Benchmarks", StringComparison.Ordinal)) psi.ArgumentList.Add(dll);
            foreach (var a in new[] { "sft-real-memory", m }.Concat(extraArgs)) psi.ArgumentList.Add(a);
            var sw = Stopwatch.StartNew();
            using var proc = Process.Start(psi)!;
            var errTask = proc.StandardError.ReadToEndAsync();
            string output = proc.StandardOutput.ReadToEnd();
            proc.WaitForExit();
            var line = output.Split('\n').FirstOrDefault(l => l.StartsWith(Marker, StringComparison.Ordinal));
            if (proc.ExitCode != 0 || line is null)
            {
                log.WriteLine($"// {m}: FAILED (exit {proc.ExitCode}): {errTask.Result.Trim()} {output.Trim()}");
                continue;
            }
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var r = new RealShapeRun(m, long.Parse(f[2], inv), long.Parse(f[3], inv), f[4] == "1",
                f[5].Split(',').Select(s => double.Parse(s, inv)).ToArray(), f[6].Split(',').Select(s => double.Parse(s, inv)).ToArray());
            runs.Add(r);
            log.WriteLine(string.Create(inv,
                $"// {m}: baseline RSS {r.BaselineBytes / 1048576.0:0} MiB, peak RSS {r.PeakBytes / 1048576.0:0} MiB (Δ {r.DeltaBytes / 1048576.0:0} MiB){(r.HwmReset ? "" : " (VmHWM not reset)")}; losses {string.Join(", ", r.Losses.Select(l => l.ToString("0.000000", inv)))}; step s {string.Join(", ", r.Seconds.Select(s => s.ToString("0.00", inv)))}; {sw.Elapsed.TotalSeconds:0} s"));
        }
        return runs;
    }

    /// <summary>
    /// The validation: every method's first loss against TorchSharp's (fp32 engine methods to 1e-4 relative, bf16 compute
    /// to 1e-2), and the second losses finite. Returns the failures (empty: passed).
    /// </summary>
    public static List<string> Validate(IReadOnlyList<RealShapeRun> runs)
    {
        var bad = new List<string>();
        var torchRun = runs.FirstOrDefault(r => r.Method == "TorchSharp");
        if (torchRun is null) { bad.Add("no TorchSharp measurement to validate against"); return bad; }
        foreach (var r in runs)
        {
            double tol = r.Method == "EngineBf16" ? 1e-2 : 1e-4;
            double rel = Math.Abs(r.Losses[0] - torchRun.Losses[0]) / Math.Abs(torchRun.Losses[0]);
            if (!(rel <= tol)) bad.Add($"{r.Method}: first loss {r.Losses[0]:R} vs TorchSharp's {torchRun.Losses[0]:R} (relative {rel:E2} > {tol:E0})");
            if (!r.Losses.All(double.IsFinite)) bad.Add($"{r.Method}: a non-finite loss");
        }
        return bad;
    }
}
