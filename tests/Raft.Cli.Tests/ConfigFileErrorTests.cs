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
}
