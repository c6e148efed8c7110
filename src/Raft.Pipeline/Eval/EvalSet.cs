using System.Text.Json;
using Raft.Pipeline.Data;
using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Eval;

/// <summary>
/// A named evaluation set read from JSONL. Each non-blank line:
/// <c>{"prompt": "...", "answer": "..." (optional), "extractor": "last_number" (optional spec, default <c>exact</c>:
/// the trimmed text), "instructions": [{"kind": ..., "value": ...}] (optional), "id": "..." (optional)}</c>.
/// Malformed lines throw a <see cref="DataFormatException"/> naming file, line and problem (or are skipped and
/// counted with skipBadLines).
/// </summary>
/// <param name="Name">The set's name (by default the file name without extension).</param>
/// <param name="Items">The items, in file order.</param>
/// <param name="SkippedLines">Malformed lines skipped while reading.</param>
public sealed record EvalSet(string Name, IReadOnlyList<EvalItem> Items, int SkippedLines = 0)
{
    /// <summary>Reads the set at <paramref name="path"/>, named <paramref name="name"/> or after the file.</summary>
    /// <remarks>
    /// A <c>.parquet</c> file is read with the same fields as columns (<see cref="Layout"/>); <paramref name="rows"/> selects
    /// rows (Hugging Face's slice syntax).</remarks>
    public static EvalSet Load(string path, string? name = null, bool skipBadLines = false, Action<string>? log = null, RowSlice? rows = null)
    {
        var (items, skipped) = JsonlReader.ReadDataFile(path, Layout, Parse, skipBadLines, log, rows);
        return new EvalSet(name ?? Path.GetFileNameWithoutExtension(path), items, skipped);
    }

    /// <summary>
    /// The columns of a Parquet evaluation set: <c>prompt</c> (string, required), <c>answer</c> and <c>extractor</c>
    /// (strings), <c>instructions</c> (a list of structs {kind: string, value: string or number}), <c>id</c> (string or integer).
    /// </summary>
    public static ParquetLayout Layout { get; } = new(
        [
            new("prompt", ParquetColumnKind.Text), new("answer", ParquetColumnKind.Text), new("extractor", ParquetColumnKind.Text),
            new("id", ParquetColumnKind.TextOrInteger),
            new("instructions", ParquetColumnKind.StructList, Fields: [new("kind", ParquetColumnKind.Text, Required: true), new("value", ParquetColumnKind.TextOrNumber)]),
        ],
        [["prompt"]]);

    /// <summary>Parses one eval record.</summary>
    public static EvalItem Parse(JsonlLine line)
    {
        string id = line.Id();
        string prompt = line.RequiredString("prompt");
        string? answer = line.OptionalString("answer");
        string? spec = line.OptionalString("extractor");
        IAnswerExtractor extractor;
        try
        {
            extractor = spec == null ? new ExactExtractor() : AnswerExtractors.Parse(spec);
        }
        catch (ArgumentException e)
        {
            throw line.Error($"field \"extractor\": {e.Message}", e);
        }
        var instructions = new List<FormatInstruction>();
        if (line.Root.TryGetProperty("instructions", out var list) && list.ValueKind != JsonValueKind.Null)
        {
            if (list.ValueKind != JsonValueKind.Array)
                throw line.Error($"field \"instructions\" must be an array, got {JsonlLine.Describe(list)}");
            int i = 0;
            foreach (var e in list.EnumerateArray())
            {
                try
                {
                    instructions.Add(FormatInstruction.FromJson(e));
                }
                catch (ArgumentException ex)
                {
                    throw line.Error($"field \"instructions[{i}]\": {ex.Message}", ex);
                }
                i++;
            }
        }
        return new EvalItem(id, prompt, answer, extractor, instructions, line.Path, line.Line);
    }
}
