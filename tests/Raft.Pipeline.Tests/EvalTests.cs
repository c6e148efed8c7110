using System.Text.Json;
using Raft.Pipeline.Data;
using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Tests;

public sealed class EvalTests
{
    private const string SetText =
        "{\"prompt\": \"2+2?\", \"answer\": \"The answer is 4.\", \"extractor\": \"last_number\"}\n" +
        "{\"prompt\": \"Capital of France?\", \"answer\": \"Paris\"}\n" +
        "\n" +
        "{\"id\": \"fmt\", \"prompt\": \"Say hi\", \"instructions\": [{\"kind\": \"capitals\"}, {\"kind\": \"max_words\", \"value\": 3}]}\n" +
        "{\"prompt\": \"3*3?\", \"answer\": \"9\", \"extractor\": \"last_number\", \"instructions\": [{\"kind\": \"brackets\"}]}\n";

    [Fact]
    public void Loads_and_scores_a_set()
    {
        using var dir = new TempDir();
        var set = EvalSet.Load(dir.Write("mini.jsonl", SetText));
        Assert.Equal("mini", set.Name);
        Assert.Equal(4, set.Items.Count);
        Assert.Equal("mini.jsonl:2", set.Items[1].Id);
        Assert.Equal("exact", set.Items[1].Extractor.Name);
        Assert.Null(set.Items[2].Answer);
        Assert.Equal(5, set.Items[3].Line);
        Assert.Contains("square brackets", set.Items[3].FullPrompt);

        var r = EvalScorer.Score(set, ["it is 4.0", " Paris ", "HELLO THERE", "[9]"]);
        Assert.Equal((4, 3, 3, 2, 2), (r.N, r.AnswerItems, r.Correct, r.InstructionItems, r.Compliant));
        Assert.Equal(1.0, r.Accuracy);
        Assert.Equal(1.0, r.FormatCompliance);

        r = EvalScorer.Score(set, ["it is 5", "paris", "Hello there you all", "9"]);
        Assert.Equal(1, r.Correct); // only "9"
        Assert.Equal(1.0 / 3, r.Accuracy!.Value, 12);
        Assert.Equal(0.0, r.FormatCompliance);
        Assert.Equal(["capitals", "max_words"], r.Items[2].FailedInstructions);
        Assert.Equal(("5", "4"), (r.Items[0].ExtractedResponse, r.Items[0].ExtractedReference));
        Assert.Null(r.Items[2].Correct);
        Assert.True(r.Items[3].Correct);
        Assert.False(r.Items[3].FormatOk);

        var e = Assert.Throws<ArgumentException>(() => EvalScorer.Score(set, ["only one"]));
        Assert.Contains("1 responses for 4 items", e.Message);
    }

    [Fact]
    public void Accuracy_over_random_sets_matches_a_direct_count()
    {
        var rng = new Random();
        int n = rng.Next(20, 60);
        var lines = new List<string>();
        var responses = new List<string>();
        int answerItems = 0, correct = 0;
        for (int i = 0; i < n; i++)
        {
            if (rng.Next(4) == 0) { lines.Add($"{{\"prompt\": \"q{i}\", \"instructions\": [{{\"kind\": \"no_commas\"}}]}}"); responses.Add("a, b"); continue; }
            int truth = rng.Next(-1000, 1000), guess = rng.Next(3) == 0 ? truth : rng.Next(-1000, 1000);
            lines.Add($"{{\"prompt\": \"q{i}\", \"answer\": \"so {truth}\", \"extractor\": \"last_number\"}}");
            responses.Add(rng.Next(5) == 0 ? "no number" : $"I think {guess}.");
            answerItems++;
            if (responses[^1] != "no number" && guess == truth) correct++;
        }
        using var dir = new TempDir();
        var set = EvalSet.Load(dir.Write("r.jsonl", string.Join("\n", lines)));
        var r = EvalScorer.Score(set, responses);
        Assert.Equal((answerItems, correct), (r.AnswerItems, r.Correct));
        Assert.Equal(n - answerItems == 0 ? null : 0.0, r.FormatCompliance);
    }

    public static TheoryData<string, string> BadLines => new()
    {
        { "{\"answer\": \"4\"}", "field \"prompt\" is missing" },
        { "{\"prompt\": \"p\", \"extractor\": \"lastnumber\"}", "field \"extractor\": unknown extractor spec \"lastnumber\"" },
        { "{\"prompt\": \"p\", \"answer\": 4}", "field \"answer\" must be a string, got number 4" },
        { "{\"prompt\": \"p\", \"instructions\": {\"kind\": \"capitals\"}}", "field \"instructions\" must be an array" },
        { "{\"prompt\": \"p\", \"instructions\": [{\"kind\": \"capitals\"}, {\"kind\": \"max_words\", \"value\": \"lots\"}]}", "field \"instructions[1]\": format instruction kind \"max_words\" needs a positive integer value, got value \"lots\"" },
        { "{\"prompt\": \"p\", \"instructions\": [{\"kind\": \"yell\"}]}", "unknown format instruction kind \"yell\"" },
        { "not json", "invalid JSON" },
    };

    [Theory]
    [MemberData(nameof(BadLines))]
    public void Bad_eval_lines_name_file_line_and_problem(string bad, string expected)
    {
        using var dir = new TempDir();
        string path = dir.Write("e.jsonl", "{\"prompt\": \"ok\"}\n\n" + bad + "\n");
        var e = Assert.Throws<DataFormatException>(() => EvalSet.Load(path));
        Assert.Equal(3, e.Line);
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
        var skipped = EvalSet.Load(path, skipBadLines: true);
        Assert.Equal(1, skipped.SkippedLines);
        Assert.Single(skipped.Items);
    }

    [Fact]
    public void Report_writes_json_and_markdown()
    {
        using var dir = new TempDir();
        var set = EvalSet.Load(dir.Write("mini.jsonl", SetText));
        var r = EvalScorer.Score(set, ["it is 4.0", "Rome", "HELLO THERE", "[9]"]);
        var onlyFormat = EvalScorer.Score("fmt|only", [set.Items[2]], ["hello"]);
        string ckpt = "/ckpt/" + Guid.NewGuid().ToString("N");
        var report = EvalReport.From([r, onlyFormat], new Dictionary<string, string> { ["checkpoint"] = ckpt });
        string outDir = Path.Combine(dir.Path, "report");
        report.Write(outDir);

        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "report.json")));
        var sets = doc.RootElement.GetProperty("sets");
        Assert.Equal(2, sets.GetArrayLength());
        Assert.Equal("mini", sets[0].GetProperty("name").GetString());
        Assert.Equal(4, sets[0].GetProperty("n").GetInt32());
        Assert.Equal(2.0 / 3, sets[0].GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(1.0, sets[0].GetProperty("format_compliance").GetDouble());
        Assert.Equal(JsonValueKind.Null, sets[1].GetProperty("accuracy").ValueKind);
        Assert.Equal(ckpt, doc.RootElement.GetProperty("metadata").GetProperty("checkpoint").GetString());

        string md = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains("| mini | 4 | 66.7% (2/3) | 100.0% (2/2) |", md);
        Assert.Contains("| fmt\\|only | 1 | — | 0.0% (0/1) |", md);
        Assert.Contains(ckpt, md);

        var back = EvalReport.Load(outDir);
        Assert.Equal(report.Sets, back.Sets);
        Assert.Equal(ckpt, back.Metadata["checkpoint"]);
    }

    [Fact]
    public void Answers_jsonl_holds_every_item_with_its_prompt_answer_extraction_and_each_instructions_verdicts()
    {
        using var dir = new TempDir();
        var set = EvalSet.Load(dir.Write("mini.jsonl", SetText));
        // Item 3: capitals strict fails (first line), loose passes (without the first line); max_words 3 fails both ways.
        string[] responses = ["it is 4.0", "Rome", "Sure:\nHI THERE YOU ALL\nYES", "Sure:\n[9]"];
        var r = EvalScorer.Score(set, responses);
        string outDir = Path.Combine(dir.Path, "out");
        EvalAnswers.Write(outDir, [r]);
        var lines = File.ReadAllLines(Path.Combine(outDir, EvalAnswers.FileName));
        Assert.Equal(set.Items.Count, lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            var o = JsonDocument.Parse(lines[i]).RootElement;
            var item = set.Items[i];
            Assert.Equal("mini", o.GetProperty("set").GetString());
            Assert.Equal(item.Id, o.GetProperty("id").GetString());
            Assert.Equal(item.FullPrompt, o.GetProperty("prompt").GetString());
            Assert.Equal(responses[i], o.GetProperty("answer").GetString());
            Assert.Equal(item.Answer, o.GetProperty("reference").GetString());
            var ins = o.GetProperty("instructions");
            Assert.Equal(item.Instructions.Count, ins.GetArrayLength());
            for (int k = 0; k < item.Instructions.Count; k++)
            {
                Assert.Equal(item.Instructions[k].Kind, ins[k].GetProperty("kind").GetString());
                Assert.Equal(item.Instructions[k].IsSatisfied(responses[i]), ins[k].GetProperty("strict").GetBoolean());
                Assert.Equal(item.Instructions[k].IsSatisfiedLoose(responses[i]), ins[k].GetProperty("loose").GetBoolean());
            }
        }
        var first = JsonDocument.Parse(lines[0]).RootElement;
        Assert.Equal("4", first.GetProperty("extracted").GetString());
        Assert.True(first.GetProperty("correct").GetBoolean());
        Assert.Equal(JsonValueKind.Null, first.GetProperty("format_strict").ValueKind);
        var second = JsonDocument.Parse(lines[1]).RootElement;
        Assert.False(second.GetProperty("correct").GetBoolean());
        var fmt = JsonDocument.Parse(lines[2]).RootElement;
        Assert.Equal(JsonValueKind.Null, fmt.GetProperty("correct").ValueKind);
        var verdicts = fmt.GetProperty("instructions").EnumerateArray().ToArray();
        Assert.Equal(("capitals", false, true), (verdicts[0].GetProperty("kind").GetString(), verdicts[0].GetProperty("strict").GetBoolean(), verdicts[0].GetProperty("loose").GetBoolean()));
        Assert.Equal(("max_words", "3", false, false), (verdicts[1].GetProperty("kind").GetString(), verdicts[1].GetProperty("value").GetString(), verdicts[1].GetProperty("strict").GetBoolean(), verdicts[1].GetProperty("loose").GetBoolean()));
        Assert.False(fmt.GetProperty("format_strict").GetBoolean());
        Assert.False(fmt.GetProperty("format_loose").GetBoolean()); // max_words fails loosely too
        var last = JsonDocument.Parse(lines[3]).RootElement;
        Assert.False(last.GetProperty("format_strict").GetBoolean());
        Assert.True(last.GetProperty("format_loose").GetBoolean()); // brackets, without the first line
        Assert.Equal(1, r.CompliantLoose);
        Assert.Equal(0.5, r.FormatComplianceLoose);
        Assert.Equal(0, r.Compliant);
    }

    [Fact]
    public void Loose_compliance_over_random_responses_matches_a_direct_count()
    {
        var rng = new Random();
        FormatInstruction[] pool = [new("capitals"), new("brackets"), new("no_commas"), new("max_words", "3"), new("ends_with", "done")];
        string[] parts = ["Sure:", "HI", "[4]", "a, b", "done", "x y z w", "*OK*"];
        int n = rng.Next(20, 50), loose = 0, strict = 0;
        var items = new List<EvalItem>();
        var responses = new List<string>();
        for (int i = 0; i < n; i++)
        {
            var ins = pool.OrderBy(_ => rng.Next()).Take(rng.Next(1, 3)).ToArray();
            string resp = string.Join("\n", Enumerable.Range(0, rng.Next(1, 4)).Select(_ => parts[rng.Next(parts.Length)]));
            items.Add(new EvalItem($"i{i}", "q", null, new Raft.Pipeline.Filtering.ExactExtractor(), ins));
            responses.Add(resp);
            if (ins.All(x => x.IsSatisfiedLoose(resp))) loose++;
            if (ins.All(x => x.IsSatisfied(resp))) strict++;
        }
        var r = EvalScorer.Score("rand", items, responses);
        Assert.Equal(loose, r.CompliantLoose);
        Assert.Equal(strict, r.Compliant);
        Assert.True(r.CompliantLoose >= r.Compliant);
    }
}
