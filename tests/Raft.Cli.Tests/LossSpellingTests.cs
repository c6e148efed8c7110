using System.Text.Json;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// One spelling of the divergence and its β on every command (#19: kd said <c>--loss forward-kl --beta</c>, train
/// <c>--loss-kind ForwardKL --jsd-beta</c>): <c>--loss-kind forward-kl|reverse-kl|jsd</c> and <c>--jsd-beta</c>, the keys
/// <c>loss_kind</c> / <c>jsd_beta</c> of config.json and of kd's JSON line. kd's old <c>--loss</c> / <c>--beta</c> and
/// config files holding <c>"ForwardKL"</c> (run folders written before) are still read.
/// </summary>
public class LossSpellingTests : CliHarness
{
    private static readonly string[] Example = ["kd", "--example", "--rows", "4", "--vocab", "300", "--top-k", "8", "--threads", "1", "--device", "cpu"];
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "2", "--batch-size", "2", "--warmup-steps", "1", "--device", "cpu", "--rollout-max-tokens", "2"];

    [Fact]
    public void Kd_takes_loss_kind_and_jsd_beta_and_still_reads_its_old_spelling()
    {
        var now = Raft([.. Example, "--loss-kind", "jsd", "--jsd-beta", "0.3"]);
        Assert.True(now.Code == 0, now.ToString());
        Assert.Equal("jsd", now.Json.GetProperty("loss_kind").GetString());
        Assert.Equal(0.3, now.Json.GetProperty("jsd_beta").GetDouble(), 6);
        Assert.False(now.Json.TryGetProperty("beta", out _));
        var old = Raft([.. Example, "--loss", "jsd", "--beta", "0.3"]);
        Assert.True(old.Code == 0, old.ToString());
        Assert.Equal("", old.Stderr); // no warning
        Assert.Equal(now.Json.GetProperty("loss").GetDouble(), old.Json.GetProperty("loss").GetDouble());
        var both = Raft([.. Example, "--loss-kind", "jsd", "--loss", "jsd"]);
        Assert.Equal(2, both.Code);
        Assert.Contains("--loss-kind and --loss are one option", both.Stderr);
    }

    [Fact]
    public void Kd_and_train_help_show_one_spelling_with_the_same_values()
    {
        foreach (var command in new[] { "kd", "train" })
        {
            var entries = HelpTextTests.Entries(command);
            Assert.Equal("forward-kl|reverse-kl|jsd", Assert.Single(entries, e => e.Name == "--loss-kind").Placeholder);
            Assert.Single(entries, e => e.Name == "--jsd-beta");
            Assert.DoesNotContain(entries, e => e.Name is "--loss" or "--beta");
        }
    }

    [Fact]
    public void Train_writes_the_lower_case_spelling_and_reads_every_spelling_from_flags_and_config()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base")), data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        var r = Raft(["train", "--model", ckpt, "--data", data, "--out", run, "--loss-kind", "reverse-kl", .. Tiny]);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal("reverse-kl", JsonDocument.Parse(File.ReadAllText(Path.Combine(run, Trainer.ConfigFile))).RootElement.GetProperty("loss_kind").GetString());

        string config = PathOf("c.json");
        foreach (var (spelling, expected) in new[] { ("jsd", "jsd"), ("ForwardKL", "forward-kl"), ("Reverse-KL", "reverse-kl") })
        {
            File.WriteAllText(config, $$"""{"loss_kind": "{{spelling}}"}""");
            string out2 = PathOf("run-" + spelling);
            var c = Raft(["train", "--model", ckpt, "--data", data, "--out", out2, "--config", config, .. Tiny]);
            Assert.True(c.Code == 0, c.ToString());
            Assert.Equal(expected, JsonDocument.Parse(File.ReadAllText(Path.Combine(out2, Trainer.ConfigFile))).RootElement.GetProperty("loss_kind").GetString());
        }

        File.WriteAllText(config, """{"loss_kind": "kl"}""");
        var bad = Raft(["train", "--model", ckpt, "--data", data, "--out", PathOf("bad"), "--config", config, .. Tiny]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("loss_kind must be forward-kl, reverse-kl or jsd, got 'kl'", bad.Stderr);
        var badFlag = Raft(["train", "--model", ckpt, "--data", data, "--out", PathOf("bad"), "--loss-kind", "ForwardKLX", .. Tiny]);
        Assert.Equal(2, badFlag.Code);
        Assert.Contains("--loss-kind 'ForwardKLX': must be forward-kl, reverse-kl or jsd", badFlag.Stderr);
    }

    [Fact]
    public void A_run_saved_with_the_old_spelling_resumes()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base")), data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        var first = Raft(["train", "--model", ckpt, "--data", data, "--out", run, "--checkpoint-every", "1", .. Tiny]);
        Assert.True(first.Code == 0, first.ToString());
        // as a run written before "forward-kl": every saved config says "ForwardKL"
        int rewritten = 0;
        foreach (var file in Directory.EnumerateFiles(run, "*.json", SearchOption.AllDirectories))
        {
            string text = File.ReadAllText(file);
            if (!text.Contains("\"forward-kl\"")) continue;
            File.WriteAllText(file, text.Replace("\"forward-kl\"", "\"ForwardKL\""));
            rewritten++;
        }
        Assert.True(rewritten >= 2, $"{rewritten} files held loss_kind");
        var resumed = Raft(["train", "--model", ckpt, "--data", data, "--out", run, "--resume", "--checkpoint-every", "1", .. Tiny]);
        Assert.True(resumed.Code == 0, resumed.ToString());
        Assert.Contains("resumed from", resumed.Stderr);
    }
}
