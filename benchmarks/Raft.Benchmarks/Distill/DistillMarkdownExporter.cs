using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;

namespace Raft.Benchmarks.Distill;

/// <summary>
/// Writes the suite's results as <c>benchmarks/results/distill-cpu.md</c>: the machine, the exact command,
/// one row per (method, V, K) with ms/call, GB/s, the ratio against TorchSharp and the percentage of the
/// Copy bandwidth, and the validation table when <c>distill</c> mode ran it. The repository is found by
/// walking up from the working directory to <c>Raft.Engine.sln</c>; <c>RAFT_BENCH_RESULTS_DIR</c>
/// overrides the folder. Scaled-down runs (<c>--small</c>, <c>--rows</c>) write to BenchmarkDotNet's results folder only.
/// </summary>
public sealed class DistillMarkdownExporter : IExporter
{
    /// <summary>The report's file name.</summary>
    public const string FileName = "distill-cpu.md";

    /// <inheritdoc />
    public string Name => "distill-cpu-markdown";

    /// <inheritdoc />
    public void ExportToLog(Summary summary, ILogger logger) => logger.WriteLine(Render(summary));

    /// <inheritdoc />
    public IEnumerable<string> ExportToFiles(Summary summary, ILogger consoleLogger)
    {
        string dir = ResultsDirectory(summary);
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, DistillShapes.IsFullSize ? FileName : $"distill-cpu.rows{DistillShapes.Rows}{(DistillShapes.Small ? ".small" : "")}.md");
        File.WriteAllText(path, Render(summary));
        consoleLogger.WriteLine($"// Distill report: {path}");
        return [path];
    }

    private static string ResultsDirectory(Summary summary)
    {
        if (Environment.GetEnvironmentVariable("RAFT_BENCH_RESULTS_DIR") is { Length: > 0 } env) return env;
        if (!DistillShapes.IsFullSize) return summary.ResultsDirectoryPath;
        for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Raft.Engine.sln")))
                return Path.Combine(d.FullName, "benchmarks", "results");
        return summary.ResultsDirectoryPath;
    }

    /// <summary>The markdown text.</summary>
    public static string Render(Summary summary)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        int rows = DistillShapes.Rows;
        sb.AppendLine("# Fused distillation loss (forward KL with gradient) on the CPU");
        sb.AppendLine();
        sb.AppendLine($"- Machine: {MachineInfo.Describe()}");
        sb.AppendLine($"- Runtime: {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription}; ONNX Runtime {OnnxVersion()}, libtorch {TorchDistill.Version} (TorchSharp-cpu), BenchmarkDotNet {typeof(Summary).Assembly.GetName().Version}");
        sb.AppendLine($"- Command: `{CommandLine()}`");
        sb.AppendLine($"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine($"- Shapes: rows = {rows}, τ = {DistillShapes.Temperature}, fp32; teacher top-K indices and probabilities precomputed (synthetic, same for every method). Fused = `{FusedKernel.Create().GetType().Name}` ({FusedKernel.Create().Name}).");
        sb.AppendLine($"- Job: in-process, {DistillBenchConfig.WarmupCount} warm-up + {DistillBenchConfig.IterationCount} measured iterations of 1 call each; ms/call is the mean (± standard deviation).");
        sb.AppendLine("- GB/s = (rows·V·4 bytes read + rows·V·4 bytes written) / time, 1 GB = 10⁹ bytes. Ratio = time / TorchSharp's time on the same (V, K) (below 1 is faster). % of Copy = GB/s / Copy's GB/s on the same (V, K).");
        sb.AppendLine($"- Methods: Fused = engine kernel, gradient in place; Scalar = plain single-threaded float loops, in place; OnnxRuntime = ONNX graph (Div, LogSoftmax, GatherElements, Log, Sub, Mul, ReduceSum, Exp, Neg, ScatterElements add) on the CPU provider, {Environment.ProcessorCount} intra-op threads, I/O bound to preallocated buffers; TorchSharp = libtorch eager log_softmax + gather + backward, {Environment.ProcessorCount} threads; Copy = Span.CopyTo of the student into another buffer over {Environment.ProcessorCount} parallel chunks.");
        sb.AppendLine();
        sb.AppendLine("| method | V | K | ms/call | ± ms | GB/s | ratio vs TorchSharp | % of Copy bandwidth |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        var cases = summary.BenchmarksCases
            .OrderBy(DistillMetrics.Vocab).ThenBy(DistillMetrics.TopK)
            .ThenBy(c => Array.IndexOf(MethodOrder, c.Descriptor.WorkloadMethod.Name));
        foreach (var c in cases)
        {
            string method = c.Descriptor.WorkloadMethod.Name;
            var stats = summary[c]?.ResultStatistics;
            string F(double? v, string fmt) => v is double d ? d.ToString(fmt, inv) : "NA";
            double? ratio = DistillMetrics.Sibling(summary, c, nameof(DistillCpuBenchmarks.TorchSharp)) is { } t
                && DistillMetrics.MeanNs(summary, t) is double tn && stats is not null ? stats.Mean / tn : null;
            sb.AppendLine($"| {method} | {DistillMetrics.Vocab(c).ToString("N0", inv)} | {DistillMetrics.TopK(c)} | " +
                $"{F(stats?.Mean / 1e6, "0.00")} | {F(stats?.StandardDeviation / 1e6, "0.00")} | " +
                $"{F(DistillMetrics.GbPerSecond(summary, c), "0.00")} | {F(ratio, "0.00")} | {F(DistillMetrics.PercentOfCopy(summary, c), "0.0")} |");
        }
        sb.AppendLine();
        if (DistillValidation.LastReport is { } v)
        {
            sb.AppendLine("## Validation");
            sb.AppendLine();
            sb.Append(v);
        }
        else
        {
            sb.AppendLine("Validation was not run in this process (run mode `distill`, or `--validate`, to include it).");
        }
        return sb.ToString();
    }

    private static readonly string[] MethodOrder =
        [nameof(DistillCpuBenchmarks.Fused), nameof(DistillCpuBenchmarks.Scalar), nameof(DistillCpuBenchmarks.OnnxRuntime),
         nameof(DistillCpuBenchmarks.TorchSharp), nameof(DistillCpuBenchmarks.Copy)];

    private static string OnnxVersion()
    {
        try { return Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString(); }
        catch (Exception e) { return $"(unknown: {e.GetType().Name})"; }
    }

    private static string CommandLine()
    {
        var args = Environment.GetCommandLineArgs();
        string dll = args[0];
        string run = "dotnet " + string.Join(' ', args.Select(Quote));
        int bin = dll.IndexOf($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}Raft.Benchmarks{Path.DirectorySeparatorChar}", StringComparison.Ordinal);
        string build = bin > 0 ? $"dotnet build benchmarks/Raft.Benchmarks -c Release --artifacts-path {dll[..bin]} && " : "";
        return $"cd {Directory.GetCurrentDirectory()} && {build}{run}";
    }

    private static string Quote(string a) => a.Length > 0 && a.All(ch => char.IsLetterOrDigit(ch) || "-_./=:,".Contains(ch)) ? a : $"'{a}'";
}

/// <summary>The machine, from /proc on Linux.</summary>
public static class MachineInfo
{
    /// <summary>"CPU model, N logical cores (M physical), X GiB RAM".</summary>
    public static string Describe()
    {
        string cpu = "unknown CPU";
        int physical = 0;
        try
        {
            var lines = File.ReadAllLines("/proc/cpuinfo");
            cpu = lines.FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
            var cores = new HashSet<string>();
            string phys = "0";
            foreach (var l in lines)
            {
                if (l.StartsWith("physical id", StringComparison.Ordinal)) phys = l.Split(':', 2)[1].Trim();
                if (l.StartsWith("core id", StringComparison.Ordinal)) cores.Add(phys + "/" + l.Split(':', 2)[1].Trim());
            }
            physical = cores.Count;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        string ram = "unknown RAM";
        try
        {
            var mem = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            if (mem is not null && long.TryParse(mem.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], out long kb))
                ram = $"{kb / 1024.0 / 1024.0:0.0} GiB RAM";
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return $"{cpu}, {Environment.ProcessorCount} logical cores{(physical > 0 ? $" ({physical} physical)" : "")}, {ram}";
    }
}
