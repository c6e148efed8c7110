namespace Raft.Cli.Tests;

/// <summary>
/// Messages that reach the user carry no .NET leftovers (#19: they ended in <c>(Parameter 'steps')</c>): an
/// <see cref="ArgumentException"/>'s <c>(Parameter '…')</c> suffix and an <see cref="ArgumentOutOfRangeException"/>'s
/// <c>Actual value was …</c> line are dropped wherever the message was wrapped, and the message still names what was wrong.
/// </summary>
public class NoDotnetLeftoverTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "1", "--batch-size", "2", "--warmup-steps", "1", "--device", "cpu"];

    private static void AssertClean(CliResult r, params string[] mentions)
    {
        Assert.True(r.Code == 2, r.ToString());
        Assert.DoesNotContain("(Parameter '", r.Stderr);
        Assert.DoesNotContain("Actual value was", r.Stderr);
        Assert.DoesNotContain("System.", r.Stderr);
        Assert.DoesNotContain("..", r.Stderr.Replace("...", "")); // a stripped suffix leaves no doubled full stop
        string last = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        foreach (var m in mentions) Assert.Contains(m, last);
    }

    private (string Checkpoint, string Data) Inputs() =>
        (PipelineFixtures.Checkpoint(PathOf("base")), PipelineFixtures.Data(PathOf("data.jsonl")));

    [Fact]
    public void A_bad_lora_target_names_the_flag_and_the_module()
    {
        var (ckpt, data) = Inputs();
        AssertClean(Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--lora-rank", "2", "--lora-targets", "q_proj,qkv", .. Tiny]),
            "--lora-targets", "qkv");
        AssertClean(Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--lora-rank", "0", .. Tiny]), "--lora-rank", "0");
    }

    [Fact]
    public void A_bad_regex_names_the_flag_on_demo_and_sft()
    {
        var (ckpt, data) = Inputs();
        AssertClean(Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--trainable", "(mlp", .. Tiny]), "--trainable", "(mlp");
        AssertClean(Raft("demo", "--trainable", "(mlp", "--base", ckpt, "--out", PathOf("demo")), "--trainable", "(mlp");
    }

    [Fact]
    public void A_bad_extractor_names_the_spec_on_refine_and_in_an_eval_set()
    {
        var (ckpt, data) = Inputs();
        AssertClean(Raft("refine", "--teacher", ckpt, "--data", data, "--out", PathOf("r.jsonl"), "--candidates", "1", "--max-new-tokens", "2",
            "--threads", "1", "--teacher-provider", "cpu", "--extractor", "regex:("), "regex:(");
        string set = PathOf("set.jsonl");
        File.WriteAllText(set, "{\"prompt\": \"Flip 12.\", \"answer\": \"21\", \"extractor\": \"digits\"}\n");
        AssertClean(Raft("eval", "--model", ckpt, "--set", set, "--out", PathOf("eval"), "--threads", "1"), set, "digits");
    }

    [Fact]
    public void A_bad_collective_names_the_flag()
    {
        var (ckpt, data) = Inputs();
        AssertClean(Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--collective", "gloo", .. Tiny]), "--collective", "gloo");
    }
}
