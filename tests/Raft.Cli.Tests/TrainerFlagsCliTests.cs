using System.Text.Json;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// What a Hugging Face Trainer user expects of <c>raft sft</c> / <c>raft train</c> (issue #16 part 5, #19's <c>--steps 1</c>),
/// through the real command line.
/// </summary>
public class TrainerFlagsCliTests : CliHarness
{
    private static void AssertOk(CliResult r) => Assert.True(r.Code == 0, r.ToString());

    [Theory]
    [InlineData("sft")]
    [InlineData("train")]
    public void Steps_1_moves_the_weights_with_the_default_warmup(string command)
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        string[] raft = command == "train" ? ["--top-k", "4", "--rollout-max-tokens", "4", "--teacher-provider", "cpu"] : [];
        // the default warm-up (10 steps) is cut to the run's one step: its one update is at the peak learning rate
        AssertOk(Raft([command, "--model", ckpt, "--data", data, "--out", run, "--threads", "1", "--steps", "1", "--batch-size", "2", .. raft]));
        var before = PipelineFixtures.Weights(ckpt);
        var after = PipelineFixtures.Weights(Path.Combine(run, Trainer.FinalDir));
        Assert.Equal(before.Length, after.Length);
        Assert.True(before.Zip(after).Count(p => p.First != p.Second) > before.Length / 2, "one step left most weights unchanged");
        var line = JsonDocument.Parse(File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Single()).RootElement;
        Assert.Equal(1e-3, line.GetProperty("lr").GetDouble(), 12);
    }
}
