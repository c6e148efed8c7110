using System.Globalization;
using System.Text;

namespace Raft.GpuBench;

/// <summary>One timed op of one implementation.</summary>
/// <param name="Op">The op ("fused KD fwd-KL in place", "top-K softmax", "copy").</param>
/// <param name="Implementation">Who ran it ("raft cuda-c", "raft ilgpu", "torch eager").</param>
/// <param name="MedianMs">Median time per call in milliseconds (NaN when it did not run).</param>
/// <param name="MinMs">Fastest call in milliseconds.</param>
/// <param name="Bytes">The bytes the op must move at least (reads plus writes).</param>
/// <param name="Note">A remark (how it was timed, why it did not run).</param>
internal sealed record TimedOp(string Op, string Implementation, double MedianMs, double MinMs, double Bytes, string Note = "")
{
    /// <summary>Effective bandwidth in GB/s (10⁹ B) from the median time.</summary>
    public double GigabytesPerSecond => Bytes / (MedianMs * 1e-3) / 1e9;
}

/// <summary>
/// Statistics and the markdown table the benchmark prints (same columns as benchmarks/gpu/torch_baseline.py). Linked
/// source under tests/Shared, compiled into benchmarks/Raft.GpuBench and tests/Raft.Cuda.Tests (see BenchOptions).
/// </summary>
internal static class ResultTable
{
    /// <summary>The header row and separator of the table.</summary>
    public const string Header = "| op | implementation | median ms | min ms | GB/s | % of copy | note |\n| --- | --- | ---: | ---: | ---: | ---: | --- |";

    /// <summary>The median of <paramref name="values"/> (mean of the middle two for an even count).</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException("No values.", nameof(values));
        var sorted = values.Order().ToArray();
        int m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    /// <summary>
    /// The markdown table; "% of copy" is each row's GB/s over that of the row whose op is
    /// <paramref name="copyOp"/> and implementation <paramref name="copyImplementation"/> (blank when absent).
    /// </summary>
    public static string Format(IEnumerable<TimedOp> rows, string copyOp = "copy", string copyImplementation = "raft cuda-c")
    {
        ArgumentNullException.ThrowIfNull(rows);
        var list = rows.ToList();
        var copy = list.FirstOrDefault(r => r.Op == copyOp && r.Implementation == copyImplementation && double.IsFinite(r.MedianMs));
        var sb = new StringBuilder(Header).Append('\n');
        foreach (var r in list)
        {
            bool ran = double.IsFinite(r.MedianMs) && r.MedianMs > 0;
            string F(double x, string format) => ran ? x.ToString(format, CultureInfo.InvariantCulture) : "—";
            string pct = ran && copy is not null ? (100 * r.GigabytesPerSecond / copy.GigabytesPerSecond).ToString("F1", CultureInfo.InvariantCulture) : "—";
            sb.Append("| ").Append(r.Op).Append(" | ").Append(r.Implementation).Append(" | ")
              .Append(F(r.MedianMs, "F3")).Append(" | ").Append(F(r.MinMs, "F3")).Append(" | ")
              .Append(F(r.GigabytesPerSecond, "F1")).Append(" | ").Append(pct).Append(" | ")
              .Append(r.Note.Replace("|", "/", StringComparison.Ordinal)).Append(" |\n");
        }
        return sb.ToString();
    }
}
