using System.Text.Json;
using System.Text.Json.Serialization;
using Parquet.Serialization;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// Parquet data (#20.4) and <c>--rows</c> through the real command line: <c>sft</c>, <c>train</c>, <c>refine</c> and
/// <c>eval</c> read a <c>.parquet</c> file with the columns of their JSONL form, <c>--rows</c> selects the same rows of
/// either format, and bad slices and bad Parquet files are refused naming the flag, the value, the file, the row and the column.
/// </summary>
public class ParquetCliTests : CliHarness
{
    private static void AssertOk(CliResult r) => Assert.True(r.Code == 0, r.ToString());

    public sealed class Row
    {
        [JsonPropertyName("prompt")] public string? Prompt { get; set; }
        [JsonPropertyName("answer")] public string? Answer { get; set; }
    }

    public sealed class Turn
    {
        [JsonPropertyName("role")] public string? Role { get; set; }
        [JsonPropertyName("content")] public string? Content { get; set; }
    }

    public sealed class Chat
    {
        [JsonPropertyName("messages")] public List<Turn>? Messages { get; set; }
    }

    public sealed class EvalRow
    {
        [JsonPropertyName("prompt")] public string? Prompt { get; set; }
        [JsonPropertyName("answer")] public string? Answer { get; set; }
        [JsonPropertyName("extractor")] public string? Extractor { get; set; }
    }

    public sealed class IntPrompt
    {
        [JsonPropertyName("prompt")] public int Prompt { get; set; }
        [JsonPropertyName("answer")] public string? Answer { get; set; }
    }

    private static string Parquet<T>(string path, IEnumerable<T> rows) where T : class, new()
    {
        using (var stream = File.Create(path)) ParquetSerializer.SerializeAsync(rows, stream).GetAwaiter().GetResult();
        return path;
    }

    /// <summary>The rows of <see cref="PipelineFixtures.Data"/>, as values.</summary>
    private static List<Row> Rows(int count) =>
        Enumerable.Range(0, count).Select(i => new Row { Prompt = $"Flip {i + 1}{i + 3}.", Answer = $"ok so ~~ {i + 3}{i + 1} ~~ that's it" }).ToList();

    private static List<Chat> Chats(int count) =>
        Rows(count).Select(r => new Chat { Messages = [new() { Role = "user", Content = r.Prompt }, new() { Role = "assistant", Content = r.Answer }] }).ToList();

    [Fact]
    public void Sft_on_parquet_rows_trains_as_on_the_same_jsonl_rows()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string jsonl = PipelineFixtures.Data(PathOf("data.jsonl"), count: 6);
        string pq = Parquet(PathOf("data.parquet"), Chats(6));   // the same examples, as messages (list of structs)
        string[] common = ["sft", "--model", ckpt, "--threads", "1", "--batch-size", "1", "--epochs", "1", "--warmup-steps", "0", "--checkpoint-every", "1", "--rows", "1:3"];
        var a = Raft([.. common, "--data", pq, "--out", PathOf("pq")]);
        AssertOk(a);
        var b = Raft([.. common, "--data", jsonl, "--out", PathOf("jl")]);
        AssertOk(b);
        // rows 1 and 2 of 6: one epoch in batches of 1 is 2 steps, and both runs end at the same weights
        Assert.Equal(2, a.Json.GetProperty("steps").GetInt32());
        Assert.Contains($"--rows 1:3: 2 row(s) of {pq}", a.Stderr);
        Assert.Contains($"--rows 1:3: 2 line(s) of {jsonl}", b.Stderr);
        Assert.Equal(PipelineFixtures.Weights(Path.Combine(PathOf("jl"), Trainer.FinalDir)), PipelineFixtures.Weights(Path.Combine(PathOf("pq"), Trainer.FinalDir)));
        Assert.NotEqual(PipelineFixtures.Weights(ckpt), PipelineFixtures.Weights(Path.Combine(PathOf("pq"), Trainer.FinalDir)));
        // the selection is recorded: in config.json and beside the data file's hash
        Assert.Equal("1:3", JsonDocument.Parse(File.ReadAllText(Path.Combine(PathOf("pq"), Trainer.ConfigFile))).RootElement.GetProperty("rows").GetString());
        var data = JsonDocument.Parse(File.ReadAllText(Path.Combine(PathOf("pq"), "inputs.json"))).RootElement.GetProperty("inputs").GetProperty("data");
        Assert.Equal("1:3", data.GetProperty("rows").GetString());

        // another selection is other data: a resume with it is refused by name
        var resume = Raft([.. common[..^1], "2:4", "--data", pq, "--out", PathOf("pq"), "--resume"]);
        Assert.Equal(2, resume.Code);
        Assert.Contains("rows: checkpoint \"1:3\", now \"2:4\"", resume.Stderr);
    }

    [Fact]
    public void Train_reads_prompt_answer_columns_and_rows()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string pq = Parquet(PathOf("refined.parquet"), Rows(5));
        string run = PathOf("run");
        var r = Raft("train", "--model", ckpt, "--data", pq, "--out", run, "--threads", "1", "--batch-size", "1", "--epochs", "1",
            "--top-k", "4", "--rollout-max-tokens", "4", "--teacher-provider", "cpu", "--rows", "[-3:]");
        AssertOk(r);
        Assert.Equal(3, r.Json.GetProperty("steps").GetInt32());   // the last 3 of 5 rows
        Assert.Contains($"--rows [-3:]: 3 row(s) of {pq}", r.Stderr);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length);
    }

    [Fact]
    public void Refine_reads_parquet_and_refines_only_the_selected_rows()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string pq = Parquet(PathOf("data.parquet"), Chats(4));
        string refined = PathOf("refined.jsonl");
        var r = Raft("refine", "--teacher", ckpt, "--data", pq, "--out", refined, "--candidates", "1", "--max-new-tokens", "4",
            "--threads", "1", "--teacher-provider", "cpu", "--rows", ":50%");
        AssertOk(r);
        Assert.Equal(2, r.Json.GetProperty("examples").GetInt32());
        var lines = File.ReadAllLines(refined).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(["Flip 13.", "Flip 24."], lines.Select(l => l.GetProperty("prompt").GetString()));
    }

    [Fact]
    public void Eval_reads_parquet_sets_and_rows_applies_to_each()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string pq = Parquet(PathOf("numbers.parquet"), Enumerable.Range(1, 5).Select(i => new EvalRow { Prompt = $"What is {i}+{i}?", Answer = $"{2 * i}", Extractor = "last_number" }));
        string jsonl = PathOf("words.jsonl");
        File.WriteAllLines(jsonl, Enumerable.Range(1, 3).Select(i => $"{{\"prompt\": \"Say word {i}.\", \"answer\": \"w{i}\", \"extractor\": \"exact\"}}"));
        string outDir = PathOf("report");
        var r = Raft("eval", "--model", ckpt, "--set", pq, "--set", jsonl, "--out", outDir, "--threads", "1", "--max-new-tokens", "2", "--rows", "1:");
        AssertOk(r);
        var sets = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "report.json"))).RootElement.GetProperty("sets").EnumerateArray().ToList();
        Assert.Equal([("numbers", 4), ("words", 2)], sets.Select(s => (s.GetProperty("name").GetString(), s.GetProperty("n").GetInt32())));
        var prompts = File.ReadAllLines(Path.Combine(outDir, "answers.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("prompt").GetString()).ToList();
        Assert.Contains("What is 2+2?", prompts);
        Assert.DoesNotContain("What is 1+1?", prompts);

        // a selection that leaves a set empty is said with the set
        var none = Raft("eval", "--model", ckpt, "--set", pq, "--out", PathOf("none"), "--threads", "1", "--rows", "9:");
        AssertUsageLastLine(none, "--set", pq, "--rows 9: selects none of its rows");
        Assert.False(Directory.Exists(PathOf("none")));
    }

    public static TheoryData<string> Commands => new() { "sft", "train", "refine", "eval" };

    private string[] Args(string command, string ckpt, string data, string outPath) => command switch
    {
        "eval" => ["eval", "--model", ckpt, "--set", data, "--out", outPath, "--threads", "1"],
        "refine" => ["refine", "--teacher", ckpt, "--data", data, "--out", outPath, "--candidates", "1", "--threads", "1", "--teacher-provider", "cpu"],
        "train" => ["train", "--model", ckpt, "--data", data, "--out", outPath, "--threads", "1", "--teacher-provider", "cpu", "--top-k", "4", "--rollout-max-tokens", "4"],
        _ => [command, "--model", ckpt, "--data", data, "--out", outPath, "--threads", "1"],
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void Bad_rows_values_are_refused_by_name_before_any_output(string command)
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = Parquet(PathOf("data.parquet"), Rows(4));
        string outPath = PathOf(command == "refine" ? "out.jsonl" : "out");
        foreach (string bad in new[] { "10", "[1:2", "1:2:3", "[:150%]", "[:5](pct1_dropremainder)" })
        {
            var r = Raft([.. Args(command, ckpt, data, outPath), "--rows", bad]);
            AssertUsageLastLine(r, "--rows", $"\"{bad}\"");
            Assert.False(Path.Exists(outPath));
        }
        // a slice that parses but cannot apply to this file (pct1_dropremainder needs 100 rows) names the flag and the file
        var few = Raft([.. Args(command, ckpt, data, outPath), "--rows", ":10%(pct1_dropremainder)"]);
        AssertUsageLastLine(few, "--rows", "at least 100 rows, the file has 4", data);
        Assert.False(Path.Exists(outPath));
        var help = Raft(command, "--help");
        Assert.Contains("--rows", help.Stdout);
        Assert.Contains("0:100", help.Stdout);
        Assert.Contains(".parquet", help.Stdout);
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void Parquet_errors_name_the_file_the_row_and_the_column(string command)
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string outPath = PathOf(command == "refine" ? "out.jsonl" : "out");
        // a column of the wrong type: the file and the column; --skip-bad-lines cannot help, so it is not offered
        string typed = Parquet(PathOf("typed.parquet"), [new IntPrompt { Prompt = 1, Answer = "a" }]);
        string last = AssertUsageLastLine(Raft(Args(command, ckpt, typed, outPath)), typed, "column \"prompt\" is an int32 column; expected a string column");
        Assert.DoesNotContain("--skip-bad-lines", last);
        // a bad value: the file, the 1-based row and the column (field)
        var rows = Rows(3);
        rows[1].Prompt = " ";
        string bad = Parquet(PathOf("bad.parquet"), rows);
        AssertUsageLastLine(Raft(Args(command, ckpt, bad, outPath)), $"{bad} row 2: field \"prompt\" is empty", "--skip-bad-lines");
        Assert.False(Path.Exists(outPath));
        // rows outside --rows are not parsed
        string[] quick = command is "sft" or "train" ? ["--steps", "1", "--batch-size", "1"] : ["--max-new-tokens", "2"];
        var ok = Raft([.. Args(command, ckpt, bad, outPath), "--rows", "2:", .. quick]);
        AssertOk(ok);
    }
}
