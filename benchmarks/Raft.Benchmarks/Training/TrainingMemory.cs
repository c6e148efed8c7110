using System.Diagnostics;
using System.Globalization;
using Raft.Benchmarks.Distill;
using TorchSharp;

namespace Raft.Benchmarks.Training;

/// <summary>Peak resident memory of one method on one case, measured in a fresh process.</summary>
/// <param name="BaselineBytes">VmRSS just before the trainer is built (after the problem exists and, for TorchSharp, libtorch is loaded).</param>
/// <param name="PeakBytes">VmHWM after <see cref="TrainingMemory.Steps"/> training steps.</param>
/// <param name="HwmReset">Whether VmHWM could be reset to the current RSS at the baseline (writing 5 to /proc/self/clear_refs).</param>
public sealed record MemoryResult(long BaselineBytes, long PeakBytes, bool HwmReset)
{
    /// <summary>Peak RSS growth over the baseline.</summary>
    public long DeltaBytes => PeakBytes - BaselineBytes;
}

/// <summary>
/// Peak RSS of a training step, per (method, case), each in its own fresh process
/// (<c>Raft.Benchmarks.dll training-memory &lt;Engine|TorchSharp&gt; &lt;case&gt;</c>). The child builds the problem
/// (initial weights in a managed <see cref="Raft.Model.TensorSet"/>, tokens: the same in both methods) and, for
/// TorchSharp, loads libtorch and sets its threads; then it runs a full GC, resets the high-water mark
/// (<c>echo 5 &gt; /proc/self/clear_refs</c>), reads VmRSS (the baseline), builds the trainer (its own weight copy,
/// gradients, optimizer moments) and runs <see cref="Steps"/> steps, and reads VmHWM. The delta therefore holds
/// the trainer's whole working set: weights copy + gradients + AdamW moments + activations + temporaries (and,
/// for libtorch, its allocator's cached blocks and any code pages first touched by the steps).
/// </summary>
public static class TrainingMemory
{
    /// <summary>Training steps run by each measurement.</summary>
    public const int Steps = 3;

    private const string Marker = "RAFT_TRAINING_MEMORY";

    /// <summary>Results of <see cref="RunAll"/>, by (method, case).</summary>
    public static Dictionary<(string Method, string Case), MemoryResult> Results { get; } = [];

    /// <summary>Child-process entry: measures one method on one case and prints one marker line. Returns the exit code.</summary>
    public static int Child(string method, string caseName)
    {
        var p = new TrainingProblem(TrainingShapes.Get(caseName));
        if (method == "TorchSharp")
        {
            TorchNativeFix.Apply();
            torch.set_num_threads(Environment.ProcessorCount);
            using var warm = torch.ones(4) * 2; // loads libtorch before the baseline
        }
        else if (method != "Engine") { Console.Error.WriteLine($"unknown method '{method}' (Engine or TorchSharp)."); return 2; }
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
        bool reset = ResetHwm();
        long baseline = ReadStatus("VmRSS");
        double loss = 0;
        if (method == "Engine")
        {
            var t = new EngineTrainer(p);
            for (int i = 0; i < Steps; i++) loss = t.Step();
        }
        else
        {
            using var t = new TorchLlama(p);
            for (int i = 0; i < Steps; i++) loss = t.Step();
        }
        long peak = ReadStatus("VmHWM");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{Marker} {method} {caseName} {baseline} {peak} {(reset ? 1 : 0)} {loss:R}"));
        return 0;
    }

    /// <summary>Runs every (method, case) in a fresh process of this program; prints a line per measurement.</summary>
    public static void RunAll(TextWriter log, IEnumerable<string> extraArgs)
    {
        string host = Environment.ProcessPath ?? "dotnet";
        string dll = typeof(TrainingMemory).Assembly.Location;
        foreach (string c in TrainingShapes.CaseNames)
            foreach (string m in new[] { "Engine", "TorchSharp" })
            {
                var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                if (!Path.GetFileNameWithoutExtension(host).Equals("Raft.Benchmarks", StringComparison.Ordinal)) psi.ArgumentList.Add(dll);
                foreach (var a in new[] { "training-memory", m, c }.Concat(extraArgs)) psi.ArgumentList.Add(a);
                var sw = Stopwatch.StartNew();
                using var proc = Process.Start(psi)!;
                var errTask = proc.StandardError.ReadToEndAsync();
                string output = proc.StandardOutput.ReadToEnd();
                proc.WaitForExit();
                string err = errTask.Result;
                var line = output.Split('\n').FirstOrDefault(l => l.StartsWith(Marker, StringComparison.Ordinal));
                if (proc.ExitCode != 0 || line is null)
                {
                    log.WriteLine($"// Peak memory of {m} on {c}: FAILED (exit {proc.ExitCode}): {err.Trim()} {output.Trim()}");
                    continue;
                }
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var r = new MemoryResult(long.Parse(f[3], CultureInfo.InvariantCulture), long.Parse(f[4], CultureInfo.InvariantCulture), f[5] == "1");
                Results[(m, c)] = r;
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"// Peak memory of {m} on {c}: baseline RSS {r.BaselineBytes / 1048576.0:0.0} MiB, peak RSS {r.PeakBytes / 1048576.0:0.0} MiB, delta {r.DeltaBytes / 1048576.0:0.0} MiB{(r.HwmReset ? "" : " (VmHWM could not be reset: the peak may include setup)")}; {sw.Elapsed.TotalSeconds:0.0} s"));
            }
    }

    internal static bool ResetHwm()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>A /proc/self/status field in bytes (its kB value × 1024).</summary>
    public static long ReadStatus(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024; // "VmHWM:\t12345678 kB": a tab, no space, before 8-digit values
    }
}
