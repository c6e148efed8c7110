namespace Raft.Cli.Tests;

/// <summary>
/// Bad input to <c>raft eval</c> through the real binary (#19): an empty set, a set given twice, a negative thread count and an
/// over-long prompt are each exit 2 naming the option, the value and the file (and line), before any output folder exists.
/// </summary>
public class EvalInputTests : CliHarness
{
    private CliResult Run(string ckpt, string outDir, params string[] sets) =>
        Raft(["eval", "--model", ckpt, .. sets.SelectMany(s => new[] { "--set", s }), "--out", outDir, "--threads", "1", "--max-new-tokens", "2"]);

    [Fact]
    public void An_empty_set_is_refused_by_name_and_leaves_no_out_folder()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string empty = PathOf("empty.jsonl");
        File.WriteAllText(empty, "");
        string outDir = PathOf("report");
        AssertUsageLastLine(Run(ckpt, outDir, empty), "--set", empty, "no items");
        Assert.False(Directory.Exists(outDir));

        // Every line malformed and skipped: also no items, and the message says why.
        string bad = PathOf("bad.jsonl");
        File.WriteAllText(bad, "not json\n{\"answer\": \"x\"}\n");
        var r = Raft("eval", "--model", ckpt, "--set", bad, "--out", outDir, "--threads", "1", "--skip-bad-lines");
        AssertUsageLastLine(r, "--set", bad, "no items", "all 2 lines were skipped");
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void The_same_set_twice_is_refused_by_path_and_by_name()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("set.jsonl"));
        string outDir = PathOf("report");
        AssertUsageLastLine(Run(ckpt, outDir, data, data), "--set", data, "given twice");
        string other = Path.Combine(Dir, ".", "set.jsonl");
        AssertUsageLastLine(Run(ckpt, outDir, data, other), "--set", other, "is the same file as --set", data);
        Directory.CreateDirectory(PathOf("b"));
        string sameName = PipelineFixtures.Data(Path.Combine(PathOf("b"), "set.jsonl"));
        AssertUsageLastLine(Run(ckpt, outDir, data, sameName), "--set", sameName, "set name \"set\"", data);
        Assert.False(Directory.Exists(outDir));
    }

    [Theory]
    [InlineData("eval")]
    [InlineData("pretrain")]
    public void A_negative_thread_count_is_refused(string command)
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("set.jsonl"));
        string outDir = PathOf("out");
        string[] args = command == "eval"
            ? ["eval", "--model", ckpt, "--set", data, "--out", outDir, "--threads", "-4"]
            : ["pretrain", "--out", outDir, "--threads", "-4"];
        AssertUsageLastLine(Raft(args), "--threads must be ≥ 0", "got -4");
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void An_over_long_prompt_is_reported_by_file_and_line_before_any_output()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string good = PipelineFixtures.Data(PathOf("good.jsonl"));
        string data = PathOf("long.jsonl");
        File.WriteAllLines(data, ["{\"prompt\": \"short\", \"answer\": \"a\"}", $"{{\"prompt\": \"{new string('x', 400)}\", \"answer\": \"a\"}}"]);
        string outDir = PathOf("report");
        AssertUsageLastLine(Run(ckpt, outDir, good, data), "--set", $"{data} line 2", "max_position_embeddings is 256");
        Assert.False(Directory.Exists(outDir));
    }
}
