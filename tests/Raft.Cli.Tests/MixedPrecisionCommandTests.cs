using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary><c>--precision</c> through the real binary: bf16 runs sft and train, a bad value and a changed one on resume are named.</summary>
public class MixedPrecisionCommandTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "2", "--batch-size", "2", "--warmup-steps", "1"];

    [Fact]
    public void Bf16_runs_sft_and_train_and_a_bad_or_changed_precision_is_named()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        var sft = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("sft"), "--precision", "bf16", "--checkpoint-every", "1", .. Tiny]);
        Assert.True(sft.Code == 0, sft.ToString());
        Assert.Contains("bf16 mixed precision (fp32 masters)", sft.Stderr);
        Assert.Contains("\"precision\": \"bf16\"", File.ReadAllText(Path.Combine(PathOf("sft"), Trainer.ConfigFile)));

        var train = Raft(["train", "--model", ckpt, "--data", data, "--out", PathOf("raft"), "--precision", "bf16", .. Tiny,
            "--top-k", "4", "--rollout-max-tokens", "4", "--teacher-provider", "cpu"]);
        Assert.True(train.Code == 0, train.ToString());
        Assert.Contains("bf16 mixed precision", train.Stderr);

        var bad = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("bad"), "--precision", "int8", .. Tiny]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("precision", bad.Stderr);
        Assert.Contains("int8", bad.Stderr);
        Assert.False(Directory.Exists(PathOf("bad")));

        var changed = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("sft"), "--precision", "fp32", "--resume", "--checkpoint-every", "1", .. Tiny]);
        Assert.Equal(2, changed.Code);
        Assert.Contains("precision: checkpoint \"bf16\", now \"fp32\"", changed.Stderr);
    }
}
