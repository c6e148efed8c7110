using System.Text.Json.Nodes;
using Raft.Pipeline.Data;

namespace Raft.Pipeline.Tests;

public sealed class JsonlDatasetTests
{
    [Fact]
    public void Reads_both_formats_skips_blank_lines_and_defaults_ids()
    {
        using var dir = new TempDir();
        string path = dir.Write("data.jsonl",
            "{\"prompt\": \"What is 2+2?\", \"answer\": \"4\"}\n" +
            "\n" +
            "   \n" +
            "{\"id\": \"chat-1\", \"messages\": [{\"role\": \"system\", \"content\": \"Be terse.\"}, {\"role\": \"user\", \"content\": \"first\"}, {\"role\": \"assistant\", \"content\": \"a1\"}, {\"role\": \"user\", \"content\": \"second\"}, {\"role\": \"assistant\", \"content\": \"a2\"}]}\r\n" +
            "{\"id\": 17, \"prompt\": \"p\", \"answer\": \"ä ünïcode\"}\n");
        var xs = JsonlDataset.Load(path);
        Assert.Equal(3, xs.Count);
        Assert.Equal(new DomainExample("data.jsonl:1", "What is 2+2?", "4", path, 1), xs[0]);
        Assert.Equal(new DomainExample("chat-1", "second", "a2", path, 4), xs[1]);
        Assert.Equal(new DomainExample("17", "p", "ä ünïcode", path, 5), xs[2]);
    }

    [Fact]
    public void Chat_prompt_is_the_last_user_turn_before_the_last_assistant_turn()
    {
        using var dir = new TempDir();
        string path = dir.Write("c.jsonl",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"q1\"}, {\"role\": \"assistant\", \"content\": \"ans\"}, {\"role\": \"user\", \"content\": \"trailing user turn\"}]}\n");
        var x = Assert.Single(JsonlDataset.Load(path));
        Assert.Equal("q1", x.Prompt);
        Assert.Equal("ans", x.Answer);
    }

    public static TheoryData<string, string> BadLines => new()
    {
        { "{\"prompt\": \"p\"", "invalid JSON" },
        { "[1, 2]", "expected a JSON object, got array" },
        { "{\"prompt\": \"p\"}", "field \"answer\" is missing" },
        { "{\"answer\": \"a\"}", "field \"prompt\" is missing" },
        { "{\"prompt\": \"\", \"answer\": \"a\"}", "field \"prompt\" is empty" },
        { "{\"prompt\": \"p\", \"answer\": 42}", "field \"answer\" must be a string, got number 42" },
        { "{\"id\": true, \"prompt\": \"p\", \"answer\": \"a\"}", "field \"id\" must be a string or an integer, got boolean true" },
        { "{\"other\": 1}", "expected fields \"prompt\" and \"answer\", or \"messages\"" },
        { "{\"messages\": \"hi\"}", "field \"messages\" must be an array" },
        { "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}", "no assistant turn" },
        { "{\"messages\": [{\"role\": \"assistant\", \"content\": \"a\"}]}", "no user turn before the last assistant turn" },
        { "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"bot\", \"content\": \"a\"}]}", "field \"messages[1].role\" has value \"bot\"" },
        { "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": 3}]}", "field \"messages[1].content\" must be a string, got number 3" },
        { "{\"messages\": [{\"role\": \"user\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}", "field \"messages[0].content\" is missing" },
    };

    [Theory]
    [MemberData(nameof(BadLines))]
    public void Malformed_line_names_file_line_and_problem(string bad, string expected)
    {
        using var dir = new TempDir();
        int badLine = Random.Shared.Next(2, 6);
        var lines = new List<string>();
        for (int i = 1; i < badLine; i++) lines.Add($"{{\"prompt\": \"p{i}\", \"answer\": \"a{i}\"}}");
        lines.Add(bad);
        lines.Add("{\"prompt\": \"after\", \"answer\": \"x\"}");
        string path = dir.Write("bad.jsonl", string.Join("\n", lines) + "\n");

        var e = Assert.Throws<DataFormatException>(() => JsonlDataset.Load(path));
        Assert.Equal(path, e.Path);
        Assert.Equal(badLine, e.Line);
        Assert.Contains(expected, e.Message);
        Assert.StartsWith($"{path} line {badLine}: ", e.Message);

        var logged = new List<string>();
        var r = JsonlDataset.Read(path, skipBadLines: true, log: logged.Add);
        Assert.Equal(1, r.SkippedLines);
        Assert.Equal(badLine, r.Examples.Count);
        Assert.Equal("after", r.Examples[^1].Prompt);
        Assert.Contains(expected, Assert.Single(logged));
    }

    [Fact]
    public void Missing_file_names_the_path()
    {
        string path = Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid().ToString("N"), "x.jsonl");
        var e = Assert.Throws<FileNotFoundException>(() => JsonlDataset.Load(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Writer_round_trips_random_examples_and_objects()
    {
        using var dir = new TempDir();
        var rng = new Random();
        string[] pieces = ["a", "b", " ", "\"", "\\", "\n", "\t", "é", "漢", "😀", "{", "}", "\u0001"];
        string Rand() => string.Concat(Enumerable.Range(0, rng.Next(1, 30)).Select(_ => pieces[rng.Next(pieces.Length)]));
        var xs = Enumerable.Range(0, 50).Select(i => new DomainExample($"id{i}", "p" + Rand(), "a" + Rand())).ToList();
        string path = dir.File("out.jsonl");
        JsonlWriter.WriteExamples(path, xs);
        var back = JsonlDataset.Load(path);
        Assert.Equal(xs.Select(x => (x.Id, x.Prompt, x.Answer)), back.Select(x => (x.Id, x.Prompt, x.Answer)));
        Assert.Equal(Enumerable.Range(1, 50), back.Select(x => x.Line));

        string generic = dir.File("g.jsonl");
        JsonlWriter.Write(generic, xs.Select(x => new { x.Prompt, x.Answer, ReferenceId = x.Id }));
        var first = JsonNode.Parse(File.ReadLines(generic).First())!.AsObject();
        Assert.Equal(xs[0].Id, (string?)first["reference_id"]);
        Assert.Equal(50, JsonlDataset.Load(generic).Count);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }
}
