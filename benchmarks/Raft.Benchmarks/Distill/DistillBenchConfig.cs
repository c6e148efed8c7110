using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Perfolizer.Horology;

namespace Raft.Benchmarks.Distill;

/// <summary>
/// The suite's job and columns (in-process, see <see cref="BenchJobs"/>). Each call moves 2.5 GB at the largest
/// shape, so one invocation per iteration, one warm-up and five measured iterations are enough.
/// </summary>
public sealed class DistillBenchConfig : ManualConfig
{
    /// <summary>Warm-up and measured iterations per case.</summary>
    public const int WarmupCount = 1, IterationCount = 5;

    /// <summary>Creates the config.</summary>
    public DistillBenchConfig()
    {
        AddJob(BenchJobs.OneCallPerIteration("Distill", WarmupCount, IterationCount));
        AddColumn(new GbPerSecondColumn(), new PercentOfCopyColumn());
        AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByParams);
        AddExporter(new DistillMarkdownExporter());
        SummaryStyle = SummaryStyle.Default.WithTimeUnit(TimeUnit.Millisecond);
    }
}

/// <summary>Numbers derived from a summary, shared by the columns and the markdown exporter.</summary>
public static class DistillMetrics
{
    /// <summary>Mean time of a case in nanoseconds, or null when it has no result.</summary>
    public static double? MeanNs(Summary s, BenchmarkCase c) => s[c]?.ResultStatistics?.Mean;

    /// <summary>The case's V parameter.</summary>
    public static int Vocab(BenchmarkCase c) => (int)c.Parameters["V"];

    /// <summary>The case's K parameter.</summary>
    public static int TopK(BenchmarkCase c) => (int)c.Parameters["K"];

    /// <summary>Effective GB/s: (rows·V·4 read + rows·V·4 written) / mean time.</summary>
    public static double? GbPerSecond(Summary s, BenchmarkCase c) =>
        MeanNs(s, c) is double ns ? DistillShapes.BytesPerCall(DistillShapes.Rows, Vocab(c)) / ns : null;

    /// <summary>The case of method <paramref name="method"/> with the same V and K, or null.</summary>
    public static BenchmarkCase? Sibling(Summary s, BenchmarkCase c, string method) =>
        s.BenchmarksCases.FirstOrDefault(o => o.Descriptor.WorkloadMethod.Name == method
            && Vocab(o) == Vocab(c) && TopK(o) == TopK(c));

    /// <summary>This case's GB/s as a percentage of the Copy case's with the same shape.</summary>
    public static double? PercentOfCopy(Summary s, BenchmarkCase c) =>
        Sibling(s, c, nameof(DistillCpuBenchmarks.Copy)) is { } copy && GbPerSecond(s, copy) is double cg
            && GbPerSecond(s, c) is double g ? 100 * g / cg : null;
}

/// <summary>A numeric custom column of the suite.</summary>
public abstract class DistillColumn : IColumn
{
    /// <inheritdoc />
    public abstract string Id { get; }
    /// <inheritdoc />
    public abstract string ColumnName { get; }
    /// <inheritdoc />
    public abstract string Legend { get; }
    /// <summary>The value, or null when unknown.</summary>
    protected abstract double? Value(Summary s, BenchmarkCase c);
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
        Value(summary, benchmarkCase) is double v ? v.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) : "NA";
    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
    /// <inheritdoc />
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    /// <inheritdoc />
    public bool IsAvailable(Summary summary) => true;
}

/// <summary>Effective bandwidth in GB/s (10⁹ bytes per second).</summary>
public sealed class GbPerSecondColumn : DistillColumn
{
    /// <inheritdoc />
    public override string Id => "Distill.GBps";
    /// <inheritdoc />
    public override string ColumnName => "GB/s";
    /// <inheritdoc />
    public override string Legend => "Effective bandwidth: (rows·V·4 bytes read + rows·V·4 bytes written) / mean time, 1 GB = 10^9 bytes";
    /// <inheritdoc />
    protected override double? Value(Summary s, BenchmarkCase c) => DistillMetrics.GbPerSecond(s, c);
}

/// <summary>GB/s as a percentage of the Copy method's on the same shape.</summary>
public sealed class PercentOfCopyColumn : DistillColumn
{
    /// <inheritdoc />
    public override string Id => "Distill.PercentOfCopy";
    /// <inheritdoc />
    public override string ColumnName => "% of Copy";
    /// <inheritdoc />
    public override string Legend => "Effective bandwidth as a percentage of the Copy method's on the same (V, K)";
    /// <inheritdoc />
    protected override double? Value(Summary s, BenchmarkCase c) => DistillMetrics.PercentOfCopy(s, c);
}
