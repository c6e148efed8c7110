namespace Raft.Cli.Tests;

/// <summary>Errors of a <c>--config</c> file through the real binary (#19): named by key and file, with no misleading line number.</summary>
public class ConfigFileErrorTests : CliHarness
{
    private CliResult Sft(string config) =>
        Raft("sft", "--model", PipelineFixtures.Checkpoint(PathOf("base")), "--data", PipelineFixtures.Data(PathOf("data.jsonl")),
            "--out", PathOf("run"), "--threads", "1", "--config", config);

    [Fact]
    public void A_duplicate_key_names_the_key_and_the_file()
    {
        string config = PathOf("dup.json");
        File.WriteAllText(config, """{"steps": 2, "steps": 3}""");
        AssertUsageLastLine(Sft(config), "--config", config, "key \"steps\" is written twice");
        Assert.False(Directory.Exists(PathOf("run")));
    }

    [Fact]
    public void A_type_error_names_the_key_and_value_not_a_line_of_another_document()
    {
        string config = PathOf("type.json");
        File.WriteAllText(config, """{"steps": "x"}""");
        string last = AssertUsageLastLine(Sft(config), "--config", config, "key \"steps\"", "\"x\"");
        Assert.DoesNotContain("LineNumber", last);
        Assert.False(Directory.Exists(PathOf("run")));
    }

    [Fact]
    public void An_empty_trainable_means_the_same_as_a_flag_and_as_a_config_key()
    {
        string config = PathOf("trainable.json");
        File.WriteAllText(config, """{"trainable": ""}""");
        string fromFile = AssertUsageLastLine(Sft(config), "trainable", "must be a regular expression");
        File.WriteAllText(config, "{}");
        var r = Raft("sft", "--model", PathOf("base"), "--data", PathOf("data.jsonl"), "--out", PathOf("run"), "--threads", "1", "--config", config, "--trainable", "");
        string fromFlag = AssertUsageLastLine(r, "--trainable", "must be a regular expression");
        Assert.False(Directory.Exists(PathOf("run")));
        Assert.Equal(fromFile, fromFlag); // one rule, one message (was: the flag meant "train everything", the key was refused)
    }

    [Fact]
    public void Sft_refuses_a_raft_only_config_key_as_it_refuses_its_flag()
    {
        string config = PathOf("raft-only.json");
        File.WriteAllText(config, """{"steps": 1, "top_k": 4}""");
        AssertUsageLastLine(Sft(config), "--config", config, "key \"top_k\" = 4", "raft train only");
        Assert.False(Directory.Exists(PathOf("run")));
        // the flag is refused as well: one rule for both
        var flag = Raft("sft", "--model", PathOf("base"), "--data", PathOf("data.jsonl"), "--out", PathOf("run"), "--threads", "1", "--top-k", "4");
        Assert.Equal(2, flag.Code);
        Assert.Contains("--top-k", flag.Stderr);
    }

    [Fact]
    public void Sft_accepts_raft_only_keys_at_their_defaults_as_a_run_folders_config_json_holds_them()
    {
        string config = PathOf("defaults.json");
        // 1.0 and 1 are the same value; the run folder's own config.json writes every key
        File.WriteAllText(config, """{"steps": 1, "batch_size": 2, "top_k": 16, "temperature": 1.0, "target_ratio": [1, 1], "loss_kind": "ForwardKL", "fixed_weights": null}""");
        var r = Sft(config);
        Assert.True(r.Code == 0, r.ToString());
        // and an sft run's config.json is a valid --config of another sft run
        var again = Raft("sft", "--model", PathOf("base"), "--data", PathOf("data.jsonl"), "--out", PathOf("run2"), "--threads", "1",
            "--config", Path.Combine(PathOf("run"), "config.json"));
        Assert.True(again.Code == 0, again.ToString());
    }

    [Fact]
    public void Train_takes_the_raft_keys_from_a_config_file()
    {
        string config = PathOf("raft.json");
        File.WriteAllText(config, """{"steps": 1, "batch_size": 2, "top_k": 4, "rollout_max_tokens": 2}""");
        var r = Raft("train", "--model", PipelineFixtures.Checkpoint(PathOf("base")), "--data", PipelineFixtures.Data(PathOf("data.jsonl")),
            "--out", PathOf("run"), "--threads", "1", "--config", config, "--device", "cpu");
        Assert.True(r.Code == 0, r.ToString());
        using var saved = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(PathOf("run"), "config.json")));
        Assert.Equal(4, saved.RootElement.GetProperty("top_k").GetInt32());
    }
}
