using System.Diagnostics;
using System.Globalization;
using Raft.Benchmarks.Training;
using Raft.Kernels;
using Raft.Teacher;

namespace Raft.Benchmarks.Teacher;

/// <summary>
/// Peak resident memory of one scoring call per method (<c>OnnxScorer</c>: one chunk; <c>OnnxScorerChunked</c>:
/// chunks of <see cref="TeacherShapes.ChunkPositions"/> positions; <c>Engine</c>: full logits), each in its own
/// fresh process (<c>Raft.Benchmarks.dll teacher-memory &lt;method&gt;</c>). The child builds the problem and the
/// scorer (session open, ONNX Runtime loaded) or the engine model, runs a full GC, resets the high-water mark
/// (<c>echo 5 &gt; /proc/self/clear_refs</c>), reads VmRSS (the baseline), runs one cold call and reads VmHWM: the
/// delta holds the call's logits (managed and native), ONNX Runtime's arena growth and intermediates, the KV cache.
/// </summary>
public static class TeacherMemory
{
    private const string Marker = "RAFT_TEACHER_MEMORY";

    /// <summary>The measured methods, as named in <see cref="TeacherCpuBenchmarks"/>.</summary>
    public static readonly string[] Methods = [nameof(TeacherCpuBenchmarks.OnnxScorer), nameof(TeacherCpuBenchmarks.OnnxScorerChunked), nameof(TeacherCpuBenchmarks.Engine)];

    /// <summary>Results of <see cref="RunAll"/>, by method.</summary>
    public static Dictionary<string, MemoryResult> Results { get; } = [];

    /// <summary>Child-process entry: one measurement, one marker line. Returns the exit code.</summary>
    public static int Child(string method)
    {
        if (!Methods.Contains(method)) { Console.Error.WriteLine($"unknown method '{method}' ({string.Join(", ", Methods)})."); return 2; }
        using var p = new TeacherProblem();
        using var session = method == "Engine" ? null : p.OpenCpu();
        var scorer = session is null ? null : new TeacherScorer(session, new CpuKernels(Environment.ProcessorCount));
        var engine = session is null ? new EngineTeacher(p) : null;
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
        bool reset = ResetHwm();
        long baseline = TrainingMemory.ReadStatus("VmRSS");
        long budget = method == nameof(TeacherCpuBenchmarks.OnnxScorerChunked) ? TeacherShapes.ChunkedBudgetBytes : TeacherShapes.UnchunkedBudgetBytes;
        float first = scorer is not null
            ? scorer.ScoreBatch(p.Contexts, p.Rollouts, new Raft.Kernels.DistillSettings(TeacherShapes.K, TeacherShapes.Temperature), budget)[0].Probs[0]
            : engine!.Score()[0].Probs[0];
        long peak = TrainingMemory.ReadStatus("VmHWM");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{Marker} {method} {baseline} {peak} {(reset ? 1 : 0)} {first:R}"));
        return 0;
    }

    /// <summary>Runs every method in a fresh process of this program; prints a line per measurement.</summary>
    public static void RunAll(TextWriter log, IEnumerable<string> extraArgs)
    {
        string host = Environment.ProcessPath ?? "dotnet";
        string dll = typeof(TeacherMemory).Assembly.Location;
        foreach (string m in Methods)
        {
            var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            if (!Path.GetFileNameWithoutExtension(host).Equals("Raft.Benchmarks", StringComparison.Ordinal)) psi.ArgumentList.Add(dll);
            foreach (var a in new[] { "teacher-memory", m }.Concat(extraArgs)) psi.ArgumentList.Add(a);
            var sw = Stopwatch.StartNew();
            using var proc = Process.Start(psi)!;
            var errTask = proc.StandardError.ReadToEndAsync();
            string output = proc.StandardOutput.ReadToEnd();
            proc.WaitForExit();
            string err = errTask.Result;
            var line = output.Split('\n').FirstOrDefault(l => l.StartsWith(Marker, StringComparison.Ordinal));
            if (proc.ExitCode != 0 || line is null)
            {
                log.WriteLine($"// Peak memory of {m}: FAILED (exit {proc.ExitCode}): {err.Trim()} {output.Trim()}");
                continue;
            }
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var r = new MemoryResult(long.Parse(f[2], CultureInfo.InvariantCulture), long.Parse(f[3], CultureInfo.InvariantCulture), f[4] == "1");
            Results[m] = r;
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"// Peak memory of {m}: baseline RSS {r.BaselineBytes / 1048576.0:0.0} MiB, peak RSS {r.PeakBytes / 1048576.0:0.0} MiB, delta {r.DeltaBytes / 1048576.0:0.0} MiB{(r.HwmReset ? "" : " (VmHWM could not be reset: the peak may include setup)")}; {sw.Elapsed.TotalSeconds:0.0} s"));
        }
    }

    private static bool ResetHwm()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }
}
