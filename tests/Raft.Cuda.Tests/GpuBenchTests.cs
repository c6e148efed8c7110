using Raft.GpuBench;

namespace Raft.Cuda.Tests;

/// <summary>raft-gpubench's argument parsing and markdown table (benchmarks/Raft.GpuBench), no GPU needed.</summary>
public class GpuBenchTests
{
    [Fact]
    public void DefaultsAreTheIssueShapes()
    {
        var o = BenchOptions.Parse([]);
        Assert.Equal((16_384, 151_936, 64, 64), (o.Rows, o.Vocab, o.TopK, o.CheckRows));
        Assert.Equal(1e-5, o.Tolerance);
        Assert.Null(o.OutputPath);
    }

    [Fact]
    public void SmallAppliesFirstAndLaterFlagsOverride()
    {
        var o = BenchOptions.Parse(["--rows", "77", "--small", "--k", "8", "--out", "r.md", "--no-ilgpu", "--tau", "1.5"]);
        Assert.Equal((77, 32_000, 8), (o.Rows, o.Vocab, o.TopK));
        Assert.Equal("r.md", o.OutputPath);
        Assert.True(o.SkipIlgpu);
        Assert.Equal(1.5f, o.Temperature);
        Assert.Equal(64, o.CheckRows);
    }

    [Fact]
    public void TrainStepFlags()
    {
        var o = BenchOptions.Parse(["--train-step", "--train-cpu-steps", "2", "--host-check"]);
        Assert.True(o.TrainStep);
        Assert.True(o.HostCheck);
        Assert.Equal(2, o.TrainCpuSteps);
        Assert.False(BenchOptions.Parse([]).TrainStep);
        Assert.Equal("--train-cpu-steps", Assert.Throws<ArgumentException>(() => BenchOptions.Parse(["--train-cpu-steps", "0"])).ParamName);
    }

    [Fact]
    public void CheckRowsAreCappedByRows()
    {
        Assert.Equal(10, BenchOptions.Parse(["--rows", "10"]).CheckRows);
    }

    [Theory]
    [InlineData("--rows", "0")]
    [InlineData("--rows", "x")]
    [InlineData("--tau", "-1")]
    [InlineData("--tol", "nan")]
    [InlineData("--bogus", null)]
    [InlineData("--out", null)]
    public void BadArgumentsNameTheFlag(string flag, string? value)
    {
        string[] args = value is null ? [flag] : [flag, value];
        var e = Assert.Throws<ArgumentException>(() => BenchOptions.Parse(args));
        Assert.Equal(flag, e.ParamName);
    }

    [Fact]
    public void KAboveVocabOrTheInPlaceLimitIsRejected()
    {
        Assert.Equal("--k", Assert.Throws<ArgumentException>(() => BenchOptions.Parse(["--vocab", "10", "--k", "11"])).ParamName);
        Assert.Equal("--k", Assert.Throws<ArgumentException>(() => BenchOptions.Parse(["--k", "9000"])).ParamName);
    }

    [Fact]
    public void BytesCountReadsAndWrites()
    {
        var o = BenchOptions.Parse(["--rows", "2", "--vocab", "100", "--k", "4"]);
        Assert.Equal(2 * 2 * 100 * 4.0, o.ReadWriteBytes);
        Assert.Equal(2 * 100 * 4.0 + 2 * 4 * 8.0, o.TopKBytes);
    }

    [Fact]
    public void MedianOfOddAndEvenCounts()
    {
        Assert.Equal(2.0, ResultTable.Median([3.0, 1.0, 2.0]));
        Assert.Equal(2.5, ResultTable.Median([4.0, 1.0, 2.0, 3.0]));
        Assert.Throws<ArgumentException>(() => ResultTable.Median([]));
    }

    [Fact]
    public void TableHasGigabytesPerSecondAndPercentOfCopy()
    {
        var rows = new[]
        {
            new TimedOp("copy", "raft cuda-c", 2.0, 1.9, 8e9, "ceiling"),
            new TimedOp("fused KD fwd-KL in place", "raft cuda-c", 4.0, 3.9, 8e9, "a|b"),
            new TimedOp("top-K softmax", "raft ilgpu", double.NaN, double.NaN, 4e9, "did not run"),
        };
        var lines = ResultTable.Format(rows).TrimEnd().Split('\n');
        Assert.Equal(5, lines.Length);
        Assert.Equal("| op | implementation | median ms | min ms | GB/s | % of copy | note |", lines[0]);
        Assert.Equal("| copy | raft cuda-c | 2.000 | 1.900 | 4000.0 | 100.0 | ceiling |", lines[2]);
        Assert.Equal("| fused KD fwd-KL in place | raft cuda-c | 4.000 | 3.900 | 2000.0 | 50.0 | a/b |", lines[3]);
        Assert.Equal("| top-K softmax | raft ilgpu | — | — | — | — | did not run |", lines[4]);
    }

    [Fact]
    public void WithoutACopyRowThePercentIsBlank()
    {
        var table = ResultTable.Format([new TimedOp("top-K softmax", "torch eager", 1.0, 1.0, 1e9)]);
        Assert.Contains("| 1000.0 | — |", table);
    }
}
