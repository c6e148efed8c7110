using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Raft.Benchmarks.Distill;

namespace Raft.Benchmarks.Training;

/// <summary>
/// Writes <c>benchmarks/results/training-cpu.md</c> from the training and Matmul summaries: the machine, the
/// exact command, the training table (ms/step, tokens/s, speed vs TorchSharp, managed allocations, fresh-process
/// peak RSS delta), the Matmul table (GFLOP/s, ratio vs torch.matmul, % of the theoretical peak) and the
/// validation table. The repository is found by walking up from the working directory to <c>Raft.Engine.sln</c>;
/// <c>RAFT_BENCH_RESULTS_DIR</c> overrides the folder. Scaled-down runs (<c>--small</c>, <c>--larger-batch</c>)
/// are written next to BenchmarkDotNet's own reports instead, under another name.
/// </summary>
public static class TrainingReport
{
    /// <summary>The report's file name.</summary>
    public const string FileName = "training-cpu.md";

    /// <summary>Writes the report; returns its path.</summary>
    public static string Write(Summary? training, Summary? matmul)
    {
        string dir = ResultsDirectory(training ?? matmul);
        Directory.CreateDirectory(dir);
        string name = TrainingShapes.IsFullSize ? FileName
            : $"training-cpu{(TrainingShapes.Small ? ".small" : "")}{(TrainingShapes.LargerBatchOverride > 0 ? $".larger-batch{TrainingShapes.LargerBatchOverride}" : "")}.md";
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, Render(training, matmul));
        return path;
    }

    private static string ResultsDirectory(Summary? summary)
    {
        if (Environment.GetEnvironmentVariable("RAFT_BENCH_RESULTS_DIR") is { Length: > 0 } env) return env;
        string fallback = summary?.ResultsDirectoryPath ?? Path.Combine(Directory.GetCurrentDirectory(), "BenchmarkDotNet.Artifacts", "results");
        if (!TrainingShapes.IsFullSize) return fallback;
        for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Raft.Engine.sln")))
                return Path.Combine(d.FullName, "benchmarks", "results");
        return fallback;
    }

    /// <summary>The markdown text.</summary>
    public static string Render(Summary? training, Summary? matmul)
    {
        var inv = CultureInfo.InvariantCulture;
        string F(double? v, string fmt) => v is double d ? d.ToString(fmt, inv) : "NA";
        var sb = new StringBuilder();
        sb.AppendLine("# Training step and Matmul on the CPU: engine vs TorchSharp (libtorch)");
        sb.AppendLine();
        sb.AppendLine($"- Machine: {MachineInfo.Describe()}");
        sb.AppendLine($"- Runtime: {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription}; libtorch {TorchLlama.Version} (TorchSharp-cpu), torch threads = {Environment.ProcessorCount}; BenchmarkDotNet {typeof(Summary).Assembly.GetName().Version}");
        sb.AppendLine($"- Command: `{CommandLine()}`");
        sb.AppendLine($"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine();
        if (training is not null)
        {
            sb.AppendLine("## Training step (forward + cross-entropy + backward + AdamW)");
            sb.AppendLine();
            foreach (string c in TrainingShapes.CaseNames)
                sb.AppendLine($"- `{c}`: {TrainingShapes.Get(c).Describe()}.");
            sb.AppendLine($"- Both implementations start from the same seeded weights (normal(0, 0.02) matrices, unit norms) and train on the same seeded random tokens (inputs = tokens [0, T), targets = tokens [1, T]); fp32; RMSNorm ε = 1e-5, RoPE θ = 10,000 (rotate_half), causal GQA, SwiGLU. Loss: mean cross-entropy over B·T positions. AdamW: lr {TrainingShapes.LearningRate} (constant), β = ({TrainingShapes.Beta1}, {TrainingShapes.Beta2}), ε = {TrainingShapes.Epsilon.ToString("0e0", inv)}, weight decay {TrainingShapes.WeightDecay} on the 2-D tensors only (none on the norm weights).");
            sb.AppendLine($"- Engine = `LlamaModel.Forward` (recording activations) → `CpuKernels.CrossEntropy` (dL/dlogits written over the logits) → `LlamaModel.Backward` → `AdamW.Update`, {Environment.ProcessorCount} threads. TorchSharp = the same model written with libtorch eager ops (`F.linear`, `F.scaled_dot_product_attention(is_causal)`, `repeat_interleave` for GQA, `F.silu`, `F.cross_entropy`), `loss.backward()`, `torch.optim.AdamW` (two parameter groups), `zero_grad()` each step.");
            sb.AppendLine($"- Job: in-process, {TrainingBenchConfig.WarmupCount} warm-up + {TrainingBenchConfig.IterationCount} measured steps of 1 call each; ms/step is the mean (± standard deviation). tokens/s = B·T / mean step time. Speed vs torch = TorchSharp's time / this method's time (above 1: faster than libtorch).");
            sb.AppendLine($"- Managed alloc/step: BenchmarkDotNet's MemoryDiagnoser (managed heap only: libtorch's native tensors are invisible to it). Peak RSS Δ: measured separately, in a fresh process per (method, model): after the problem is built (and libtorch loaded, for TorchSharp) a full GC, VmHWM reset (`echo 5 > /proc/self/clear_refs`) and VmRSS read; then the trainer is built (weight copy, gradients, AdamW moments) and {TrainingMemory.Steps} steps run; Δ = VmHWM − that VmRSS, i.e. the whole training working set including allocator caches (and for libtorch the code pages first touched by the steps).");
            sb.AppendLine();
            sb.AppendLine("| model | method | ms/step | ± ms | tokens/s | speed vs torch | managed alloc/step | peak RSS Δ (MiB) |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|");
            foreach (var c in training.BenchmarksCases
                .OrderBy(c => Array.IndexOf(TrainingShapes.CaseNames, (string)c.Parameters["Model"]))
                .ThenBy(c => TrainingMetrics.Method(c) == nameof(TrainingCpuBenchmarks.Engine) ? 0 : 1))
            {
                var r = training[c];
                var st = r?.ResultStatistics;
                long? alloc = r?.GcStats.GetBytesAllocatedPerOperation(c);
                sb.AppendLine($"| {c.Parameters["Model"]} | {TrainingMetrics.Method(c)} | {F(st?.Mean / 1e6, "0.0")} | {F(st?.StandardDeviation / 1e6, "0.0")} | " +
                    $"{F(TrainingMetrics.TokensPerSecond(training, c), "N0")} | {F(TrainingMetrics.SpeedVsTorch(training, c), "0.00")} | " +
                    $"{(alloc is long a ? Bytes(a) : "NA")} | {F(TrainingMetrics.PeakRssMiB(c), "0")} |");
            }
            sb.AppendLine();
            foreach (var ((m, c), r) in TrainingMemory.Results.OrderBy(x => x.Key.Case).ThenBy(x => x.Key.Method))
                sb.AppendLine(string.Create(inv, $"- RSS {m} / {c}: baseline {r.BaselineBytes / 1048576.0:0.0} MiB, peak {r.PeakBytes / 1048576.0:0.0} MiB{(r.HwmReset ? "" : " (VmHWM reset failed: the peak may include setup)")}."));
            if (TrainingMemory.Results.Count == 0) sb.AppendLine("- Peak RSS was not measured in this process (run mode `training` to include it).");
            sb.AppendLine();
        }
        if (matmul is not null)
        {
            sb.AppendLine("## Matmul: y = x · Wᵀ (nn.Linear layout), n = k = m");
            sb.AppendLine();
            sb.AppendLine($"- Engine = `Raft.Model.Ops.Matmul.Forward` (threads as shown); TorchSharp = `torch.matmul(x, W.t())` with `torch.set_num_threads(threads)`, output allocated per call. GFLOP/s = 2·n³ / mean time; ratio = time / TorchSharp's time on the same (size, threads) (below 1 is faster).");
            sb.AppendLine($"- {CpuPeak.Describe()}. % of peak = GFLOP/s / (threads × per-core peak).");
            sb.AppendLine($"- Job: in-process, pilot-chosen invocations per 250 ms iteration, {MatmulBenchConfig.WarmupCount} warm-up + {MatmulBenchConfig.IterationCount} measured iterations.");
            sb.AppendLine();
            sb.AppendLine("| size | threads | method | ms/call | ± ms | GFLOP/s | ratio vs torch | % of peak |");
            sb.AppendLine("|---:|---:|---|---:|---:|---:|---:|---:|");
            foreach (var c in matmul.BenchmarksCases
                .OrderBy(c => (int)c.Parameters["Size"]).ThenBy(c => (int)c.Parameters["Threads"])
                .ThenBy(c => TrainingMetrics.Method(c) == nameof(MatmulBenchmarks.Engine) ? 0 : 1))
            {
                var st = matmul[c]?.ResultStatistics;
                double? ratio = TrainingMetrics.Sibling(matmul, c, nameof(MatmulBenchmarks.TorchSharp)) is { } t
                    && TrainingMetrics.MeanNs(matmul, t) is double tn && st is not null ? st.Mean / tn : null;
                sb.AppendLine($"| {c.Parameters["Size"]} | {c.Parameters["Threads"]} | {TrainingMetrics.Method(c)} | {F(st?.Mean / 1e6, "0.000")} | {F(st?.StandardDeviation / 1e6, "0.000")} | " +
                    $"{F(TrainingMetrics.Gflops(matmul, c), "0.0")} | {F(ratio, "0.00")} | {F(TrainingMetrics.PercentOfPeak(matmul, c), "0.0")} |");
            }
            sb.AppendLine();
        }
        if (TrainingValidation.LastReport is { } v)
        {
            sb.AppendLine("## Validation");
            sb.AppendLine();
            sb.Append(v);
        }
        else
        {
            sb.AppendLine("Validation was not run in this process (run mode `training`, or `--validate-training`, to include it).");
        }
        return sb.ToString();
    }

    private static string Bytes(long b) => b >= 1 << 20 ? $"{b / 1048576.0:0.0} MiB" : b >= 1 << 10 ? $"{b / 1024.0:0.0} KiB" : $"{b} B";

    internal static string CommandLine()
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
