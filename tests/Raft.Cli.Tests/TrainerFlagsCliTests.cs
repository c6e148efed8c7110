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

    [Fact]
    public void Epochs_replace_steps_and_both_are_refused_by_name()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));   // 4 examples
        string[] common = ["sft", "--model", ckpt, "--data", data, "--threads", "1", "--batch-size", "2"];
        var both = Raft([.. common, "--out", PathOf("both"), "--steps", "3", "--epochs", "2"]);
        Assert.Equal(2, both.Code);
        Assert.Contains("--steps", both.Stderr);
        Assert.Contains("--epochs", both.Stderr);
        Assert.False(Directory.Exists(PathOf("both")));
        string config = PathOf("config.json");
        File.WriteAllText(config, "{\"steps\": 3}");
        var mixed = Raft([.. common, "--out", PathOf("mixed"), "--config", config, "--epochs", "2"]);
        Assert.Equal(2, mixed.Code);
        Assert.Contains("--epochs", mixed.Stderr);

        string run = PathOf("run");
        var ok = Raft([.. common, "--out", run, "--epochs", "2"]);   // 2 × ⌈4/2⌉ = 4 steps
        AssertOk(ok);
        Assert.Equal(4, JsonDocument.Parse(ok.Stdout).RootElement.GetProperty("steps").GetInt32());
        Assert.Equal(4, File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length);
        var bad = Raft([.. common, "--out", PathOf("bad"), "--epochs", "0"]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--epochs", bad.Stderr);
    }

    [Fact]
    public void Save_total_limit_keeps_the_newest_checkpoints()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        AssertOk(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--threads", "1", "--batch-size", "2", "--steps", "4",
            "--checkpoint-every", "1", "--save-total-limit", "2"]));
        Assert.Equal(["step-0000002", "step-0000003"],
            Directory.GetDirectories(Path.Combine(run, Trainer.CheckpointsDir)).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var bad = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("bad"), "--save-total-limit", "0"]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--save-total-limit", bad.Stderr);
    }
}
