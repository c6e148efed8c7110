using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Perfolizer.Horology;

namespace Raft.Benchmarks.Training;

/// <summary>
/// Job of <see cref="TrainingCpuBenchmarks"/>: in-process (see <see cref="BenchJobs"/>), one invocation per
/// iteration (a step lasts 0.1–10 s), 1 warm-up + 5 measured steps; tokens/s, the speed ratio against
/// TorchSharp and the fresh-process peak RSS delta as extra columns; managed allocations by MemoryDiagnoser.
/// </summary>
public sealed class TrainingBenchConfig : ManualConfig
{
    /// <summary>Warm-up and measured iterations per case.</summary>
    public const int WarmupCount = 1, IterationCount = 5;

    /// <summary>Creates the config.</summary>
    public TrainingBenchConfig()
    {
        AddJob(BenchJobs.OneCallPerIteration("Training", WarmupCount, IterationCount));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(new TrainingColumn("Training.TokensPerSecond", "tokens/s", "batch·seq / mean step time",
                (s, c) => TrainingMetrics.TokensPerSecond(s, c), "N0"),
            new TrainingColumn("Training.SpeedVsTorch", "speed vs torch", "tokens/s relative to TorchSharp's on the same model (above 1 is faster)",
                (s, c) => TrainingMetrics.SpeedVsTorch(s, c), "0.00"),
            new TrainingColumn("Training.PeakRss", "peak RSS Δ (MiB)", "VmHWM − VmRSS around building the trainer and 3 steps, fresh process (training mode only)",
                (s, c) => TrainingMetrics.PeakRssMiB(c), "0"));
        AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByParams);
        SummaryStyle = SummaryStyle.Default.WithTimeUnit(TimeUnit.Millisecond);
    }
}

/// <summary>
/// Job of <see cref="MatmulBenchmarks"/>: in-process, BenchmarkDotNet's pilot picks the invocations per
/// iteration (250 ms iterations), 2 warm-ups + 10 measured iterations; GFLOP/s and % of the machine's
/// theoretical FMA peak for the thread count as extra columns.
/// </summary>
public sealed class MatmulBenchConfig : ManualConfig
{
    /// <summary>Warm-up and measured iterations per case.</summary>
    public const int WarmupCount = 2, IterationCount = 10;

    /// <summary>Creates the config.</summary>
    public MatmulBenchConfig()
    {
        AddJob(BenchJobs.InProcess("Matmul")
            .WithWarmupCount(WarmupCount)
            .WithIterationCount(IterationCount)
            .WithIterationTime(TimeInterval.FromMilliseconds(250)));
        AddColumn(new TrainingColumn("Matmul.Gflops", "GFLOP/s", "2·n·k·m / mean time",
                (s, c) => TrainingMetrics.Gflops(s, c), "0.0"),
            new TrainingColumn("Matmul.PercentOfPeak", "% of peak", "GFLOP/s / (threads × per-core FMA peak, see CpuPeak)",
                (s, c) => TrainingMetrics.PercentOfPeak(s, c), "0.0"));
        AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByParams);
        SummaryStyle = SummaryStyle.Default.WithTimeUnit(TimeUnit.Millisecond);
    }
}

/// <summary>Numbers derived from the summaries, shared by the columns and the report.</summary>
public static class TrainingMetrics
{
    /// <summary>Mean time of a case in nanoseconds, or null when it has no result.</summary>
    public static double? MeanNs(Summary s, BenchmarkCase c) => s[c]?.ResultStatistics?.Mean;

    /// <summary>The method name of a case.</summary>
    public static string Method(BenchmarkCase c) => c.Descriptor.WorkloadMethod.Name;

    /// <summary>The case of <paramref name="method"/> with the same parameters, or null.</summary>
    public static BenchmarkCase? Sibling(Summary s, BenchmarkCase c, string method) =>
        s.BenchmarksCases.FirstOrDefault(o => Method(o) == method && o.Parameters.FolderInfo == c.Parameters.FolderInfo);

    /// <summary>Training: B·T / mean step time.</summary>
    public static double? TokensPerSecond(Summary s, BenchmarkCase c) =>
        c.Parameters["Model"] is string m && MeanNs(s, c) is double ns ? TrainingShapes.Get(m).Tokens / (ns * 1e-9) : null;

    /// <summary>Training: tokens/s over TorchSharp's tokens/s on the same model.</summary>
    public static double? SpeedVsTorch(Summary s, BenchmarkCase c) =>
        Sibling(s, c, nameof(TrainingCpuBenchmarks.TorchSharp)) is { } t && MeanNs(s, t) is double tn && MeanNs(s, c) is double cn ? tn / cn : null;

    /// <summary>Training: the fresh-process peak RSS delta in MiB, when measured.</summary>
    public static double? PeakRssMiB(BenchmarkCase c) =>
        c.Parameters["Model"] is string m && TrainingMemory.Results.TryGetValue((Method(c), m), out var r) ? r.DeltaBytes / 1048576.0 : null;

    /// <summary>Matmul: 2·n³ / mean time in GFLOP/s.</summary>
    public static double? Gflops(Summary s, BenchmarkCase c) =>
        c.Parameters["Size"] is int n && MeanNs(s, c) is double ns ? 2.0 * n * n * n / ns : null;

    /// <summary>Matmul: GFLOP/s as a percentage of threads × the per-core peak.</summary>
    public static double? PercentOfPeak(Summary s, BenchmarkCase c) =>
        Gflops(s, c) is double g && c.Parameters["Threads"] is int t && CpuPeak.PerCoreGflops is double peak ? 100 * g / (t * peak) : null;
}

/// <summary>A numeric custom column computed by a function of the summary and the case.</summary>
public sealed class TrainingColumn(string id, string name, string legend, Func<Summary, BenchmarkCase, double?> value, string format) : IColumn
{
    /// <inheritdoc />
    public string Id => id;
    /// <inheritdoc />
    public string ColumnName => name;
    /// <inheritdoc />
    public string Legend => legend;
    /// <inheritdoc />
    public bool AlwaysShow => true;
    /// <inheritdoc />
    public ColumnCategory Category => ColumnCategory.Custom;
    /// <inheritdoc />
    public int PriorityInCategory => 0;
    /// <inheritdoc />
    public bool IsNumeric => true;
    /// <inheritdoc />
    public UnitType UnitType => UnitType.Dimensionless;
    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        value(summary, benchmarkCase) is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "NA";
    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
    /// <inheritdoc />
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    /// <inheritdoc />
    public bool IsAvailable(Summary summary) => true;
}
