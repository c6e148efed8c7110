using System.Buffers.Binary;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary><c>--report-to tensorboard</c> on <c>raft sft</c> and <c>raft train</c> (#20.6) through the real command line.</summary>
public class TensorBoardCliTests : CliHarness
{
    /// <summary>The number of TFRecord frames in <paramref name="path"/> (lengths only: the contents are checked in Raft.Pipeline.Tests).</summary>
    private static int Records(string path)
    {
        var bytes = File.ReadAllBytes(path);
        int count = 0;
        for (long at = 0; at < bytes.Length; count++)
            at += 16 + (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan((int)at, 8));
        return count;
    }

    [Theory]
    [InlineData("sft")]
    [InlineData("train")]
    public void Report_to_tensorboard_writes_the_event_file_beside_metrics(string command)
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        string[] raft = command == "train" ? ["--top-k", "4", "--rollout-max-tokens", "4", "--teacher-provider", "cpu"] : [];
        var r = Raft([command, "--model", ckpt, "--data", data, "--out", run, "--threads", "1", "--steps", "3", "--batch-size", "2", "--report-to", "tensorboard", .. raft]);
        Assert.True(r.Code == 0, r.ToString());
        string events = Path.Combine(run, TensorBoardEvents.FileName);
        Assert.Equal(1 + 3, Records(events));   // file_version, then one event a step
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length);

        var none = Raft([command, "--model", ckpt, "--data", data, "--out", PathOf("plain"), "--threads", "1", "--steps", "1", "--batch-size", "2", .. raft]);
        Assert.True(none.Code == 0, none.ToString());
        Assert.False(File.Exists(Path.Combine(PathOf("plain"), TensorBoardEvents.FileName)));
    }

    [Fact]
    public void Other_report_to_values_are_refused_by_flag_and_value()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        var r = Raft("sft", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--report-to", "wandb");
        AssertUsageLastLine(r, "--report-to", "\"wandb\"", "tensorboard or none");
        Assert.False(Directory.Exists(PathOf("run")));
        Assert.Contains("--report-to", Raft("train", "--help").Stdout);
    }
}
