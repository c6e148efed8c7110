using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using BenchmarkDotNet.Reports;
using Raft.Benchmarks.Distill;
using Raft.Benchmarks.Training;

namespace Raft.Benchmarks.RealShape;

/// <summary>
/// <c>benchmarks/results/sft-real-shape-cpu.md</c>: the machine, the command, the load average before and after, the
/// BenchmarkDotNet step times, tokens/s and the ratios against libtorch, the fresh-process peak RSS and its ratio, the
/// pre-registered targets (issue #16: tokens/s ≥ 1.5× libtorch's, peak RSS ≤ 0.6× libtorch's) met or missed, and the
/// validation (first-step losses). <c>--small</c> runs are written beside BenchmarkDotNet's reports instead.
/// </summary>
public static class RealShapeReport
{
    /// <summary>The report's file name (full size).</summary>
    public const string FileName = "sft-real-shape-cpu.md";

    /// <summary>Writes the report; returns its path.</summary>
    public static string Write(Summary summary, IReadOnlyList<RealShapeRun> runs, string loadBefore, IReadOnlyList<string> validation)
    {
        string dir = Environment.GetEnvironmentVariable("RAFT_BENCH_RESULTS_DIR") is { Length: > 0 } env ? env : summary.ResultsDirectoryPath;
        if (!DistillShapes.Small && Environment.GetEnvironmentVariable("RAFT_BENCH_RESULTS_DIR") is not { Length: > 0 })
            for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Raft.Engine.sln"))) { dir = Path.Combine(d.FullName, "benchmarks", "results"); break; }
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, DistillShapes.Small ? "sft-real-shape-cpu.small.md" : FileName);
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, Render(summary, runs, loadBefore, validation));
        File.Move(tmp, path, overwrite: true);
        return path;
    }

    /// <summary>/proc/loadavg's first three fields.</summary>
    public static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
    }

    private static double? MeanS(Summary s, string method) =>
        s.Reports.FirstOrDefault(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method)?.ResultStatistics is { } st ? st.Mean * 1e-9 : null;

    private static double? SdS(Summary s, string method) =>
        s.Reports.FirstOrDefault(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method)?.ResultStatistics is { } st ? st.StandardDeviation * 1e-9 : null;

    /// <summary>The markdown text.</summary>
    public static string Render(Summary summary, IReadOnlyList<RealShapeRun> runs, string loadBefore, IReadOnlyList<string> validation)
    {
        var inv = CultureInfo.InvariantCulture;
        string F(double? v, string fmt) => v is double d ? d.ToString(fmt, inv) : "NA";
        var c = RealShapeCase.Case;
        var sb = new StringBuilder();
        sb.AppendLine("# An SFT step at Qwen2.5-0.5B's shape on the CPU: engine (fp32, bf16, checkpointing) vs TorchSharp (libtorch)");
        sb.AppendLine();
        sb.AppendLine($"- Machine: {MachineInfo.Describe()}; load average before {loadBefore}, after {LoadAverage()}");
        sb.AppendLine($"- Runtime: {RuntimeInformation.FrameworkDescription}; libtorch {TorchLlama.Version} (TorchSharp-cpu), torch threads = {Environment.ProcessorCount}; BenchmarkDotNet {typeof(Summary).Assembly.GetName().Version}");
        sb.AppendLine($"- Command: `{TrainingReport.CommandLine()}`");
        sb.AppendLine($"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine($"- Model `{c.Name}`: {c.Describe()}; Llama form (no q/k/v bias), RoPE θ 1e6, random normal(0, 0.02) weights and random tokens made by the benchmark (seeded, the same for every method).");
        sb.AppendLine("- Step: forward + mean cross-entropy over B·T positions + backward + AdamW (lr 1e-4 constant, β (0.9, 0.95), weight decay 0.1 on matrices), no clipping. " +
            "Engine = raft sft's CPU student path (ForwardHidden, lm_head fused with the loss 110 rows at a time, BackwardFromHidden, AdamW on fp32 masters; bf16: 16-bit compute copies re-rounded after each update; checkpointing: layer inputs kept, layers recomputed). " +
            "TorchSharp = the same decoder in libtorch eager ops (full [B·T, V] logits, F.cross_entropy, loss.backward(), torch.optim.AdamW).");
        sb.AppendLine($"- Time: BenchmarkDotNet in-process, {RealShapeBenchConfig.WarmupCount} warm-up + {RealShapeBenchConfig.IterationCount} measured steps per method; tokens/s = B·T / mean. " +
            $"Peak RSS: a fresh process per method (`sft-real-memory`), VmHWM after building the trainer and {RealShapeMemory.Steps} steps — the whole process, including the benchmark's own fp32 source copy of the weights (the same in every method) and the runtime; Δ = VmHWM − VmRSS before the trainer was built.");
        sb.AppendLine();
        double? torchS = MeanS(summary, "TorchSharp");
        var torchRun = runs.FirstOrDefault(r => r.Method == "TorchSharp");
        sb.AppendLine("| method | s/step | ± s | tokens/s | speed vs torch | peak RSS (GiB) | RSS vs torch | Δ RSS (GiB) | first loss |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (string m in RealShapeCase.Methods)
        {
            double? s = MeanS(summary, m);
            var r = runs.FirstOrDefault(x => x.Method == m);
            double? speed = s is double a && torchS is double b ? b / a : null;
            double? rss = r is not null && torchRun is not null ? (double)r.PeakBytes / torchRun.PeakBytes : null;
            sb.AppendLine($"| {m} | {F(s, "0.00")} | {F(SdS(summary, m), "0.00")} | {F(s is double t ? c.Tokens / t : null, "0.0")} | {F(speed, "0.00")} | {F(r?.PeakBytes / 1073741824.0, "0.00")} | {F(rss, "0.00")} | {F(r?.DeltaBytes / 1073741824.0, "0.00")} | {F(r?.Losses[0], "0.000000")} |");
        }
        sb.AppendLine();
        sb.AppendLine("## Targets (issue #16, written before this run)");
        sb.AppendLine();
        sb.AppendLine("| method | tokens/s ≥ 1.5× libtorch | peak RSS ≤ 0.6× libtorch |");
        sb.AppendLine("|---|---|---|");
        foreach (string m in RealShapeCase.Methods.Where(m => m != "TorchSharp"))
        {
            double? s = MeanS(summary, m);
            var r = runs.FirstOrDefault(x => x.Method == m);
            double? speed = s is double a && torchS is double b ? b / a : null;
            double? rss = r is not null && torchRun is not null ? (double)r.PeakBytes / torchRun.PeakBytes : null;
            string Verdict(double? v, Func<double, bool> ok, string fmt) => v is double d ? $"{(ok(d) ? "met" : "MISSED")} ({d.ToString(fmt, inv)}×)" : "not measured";
            sb.AppendLine($"| {m} | {Verdict(speed, d => d >= 1.5, "0.00")} | {Verdict(rss, d => d <= 0.6, "0.00")} |");
        }
        sb.AppendLine();
        sb.AppendLine("## Validation");
        sb.AppendLine();
        sb.AppendLine(validation.Count == 0
            ? "Every method's first-step loss agrees with libtorch's (fp32 engine methods to 1e-4 relative, bf16 to 1e-2) and every loss is finite."
            : "FAILED: " + string.Join("; ", validation));
        sb.AppendLine();
        sb.AppendLine("Fresh-process step times (s), for reference (the first step includes first-touch allocation):");
        sb.AppendLine();
        foreach (var r in runs)
            sb.AppendLine($"- {r.Method}: {string.Join(", ", r.Seconds.Select(x => x.ToString("0.00", inv)))}; losses {string.Join(", ", r.Losses.Select(x => x.ToString("0.000000", inv)))}");
        return sb.ToString();
    }
}
