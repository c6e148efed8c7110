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
}
