using System.Text.Json;

namespace Raft.Pipeline.Data;

/// <summary>The examples read from a JSONL file and the number of malformed lines skipped.</summary>
/// <param name="Examples">The examples, in file order.</param>
/// <param name="SkippedLines">The number of malformed lines skipped (0 unless skipping was asked for).</param>
public sealed record JsonlReadResult(IReadOnlyList<DomainExample> Examples, int SkippedLines);

/// <summary>
/// Loads domain examples from JSONL. Each non-blank line is one JSON object, either
/// <c>{"prompt": "...", "answer": "...", "id": "..."}</c> (<c>id</c> optional) or a chat
/// <c>{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...], "id": "..."}</c>. For a chat, the
/// last assistant turn is the reference answer and the prompt is the content of the last user turn before it;
/// earlier turns (and the system turn) are not kept. When a line has <c>messages</c>, <c>prompt</c>/<c>answer</c> are
/// ignored. The id defaults to <c>&lt;file name&gt;:&lt;line&gt;</c>.
/// </summary>
public static class JsonlDataset
{
    private static readonly string[] Roles = ["system", "user", "assistant"];

    /// <summary>
    /// Loads the examples of <paramref name="path"/>. A malformed line (invalid JSON, a missing, empty or non-string
    /// field, a chat without an assistant turn or without a user turn before it) throws a
    /// <see cref="DataFormatException"/> naming file, line and problem, or, with <paramref name="skipBadLines"/>, is
    /// reported to <paramref name="log"/> and skipped.
    /// </summary>
    public static IReadOnlyList<DomainExample> Load(string path, bool skipBadLines = false, Action<string>? log = null, RowSlice? rows = null) =>
        Read(path, skipBadLines, log, rows).Examples;

    /// <summary>
    /// As <see cref="Load"/>, also returning how many malformed lines were skipped. A <c>.parquet</c> file is read with the
    /// same fields as columns (<see cref="Layout"/>); <paramref name="rows"/> selects rows (Hugging Face's slice syntax).
    /// </summary>
    public static JsonlReadResult Read(string path, bool skipBadLines = false, Action<string>? log = null, RowSlice? rows = null)
    {
        var (records, skipped) = JsonlReader.ReadDataFile(path, Layout, Parse, skipBadLines, log, rows);
        return new JsonlReadResult(records, skipped);
    }

    /// <summary>
    /// The columns of a Parquet data file: string columns <c>prompt</c> and <c>answer</c>, or <c>messages</c> as a list of
    /// structs {role, content} (strings); an optional <c>id</c> (string or integer). Other columns are ignored.
    /// </summary>
    public static ParquetLayout Layout { get; } = new(
        [
            new("prompt", ParquetColumnKind.Text), new("answer", ParquetColumnKind.Text), new("id", ParquetColumnKind.TextOrInteger),
            new("messages", ParquetColumnKind.StructList, Fields: [new("role", ParquetColumnKind.Text, Required: true), new("content", ParquetColumnKind.Text, Required: true)]),
        ],
        [["prompt", "answer"], ["messages"]]);

    /// <summary>Parses one record (either format) into an example.</summary>
    public static DomainExample Parse(JsonlLine line)
    {
        string id = line.Id();
        if (line.Root.TryGetProperty("messages", out var messages) && messages.ValueKind != JsonValueKind.Null)
        {
            var (prompt, answer) = ParseMessages(line, messages);
            return new DomainExample(id, prompt, answer, line.Path, line.Line);
        }
        if (!line.Has("prompt") && !line.Has("answer"))
            throw line.Error("expected fields \"prompt\" and \"answer\", or \"messages\"");
        return new DomainExample(id, line.RequiredString("prompt"), line.RequiredString("answer"), line.Path, line.Line);
    }

    private static (string Prompt, string Answer) ParseMessages(JsonlLine line, JsonElement messages)
    {
        if (messages.ValueKind != JsonValueKind.Array)
            throw line.Error($"field \"messages\" must be an array, got {JsonlLine.Describe(messages)}");
        var turns = new List<(string Role, JsonElement Turn)>();
        int i = 0;
        foreach (var turn in messages.EnumerateArray())
        {
            string role = line.RequiredString(turn, "role", $"messages[{i}].role");
            if (!Roles.Contains(role))
                throw line.Error($"field \"messages[{i}].role\" has value \"{role}\"; expected system, user or assistant");
            turns.Add((role, turn));
            i++;
        }
        int a = turns.FindLastIndex(t => t.Role == "assistant");
        if (a < 0) throw line.Error($"field \"messages\" has no assistant turn ({turns.Count} turns)");
        int u = turns.FindLastIndex(a, t => t.Role == "user");
        if (u < 0) throw line.Error($"field \"messages\" has no user turn before the last assistant turn (messages[{a}])");
        string answer = line.RequiredString(turns[a].Turn, "content", $"messages[{a}].content");
        string prompt = line.RequiredString(turns[u].Turn, "content", $"messages[{u}].content");
        return (prompt, answer);
    }
}
