using System.Text;
using System.Text.Json;

namespace Raft.Pipeline.Data;

/// <summary>
/// Reads a JSONL file record by record: blank lines are ignored, every other line must be one JSON object, which
/// <c>parse</c> turns into a record. Errors name the file and the 1-based line.
/// </summary>
public static class JsonlReader
{
    /// <summary>
    /// Parses every non-blank line of <paramref name="path"/> with <paramref name="parse"/>. A line that is not a
    /// JSON object, or for which <paramref name="parse"/> throws a <see cref="DataFormatException"/>, stops the read
    /// with that exception, or, with <paramref name="skipBadLines"/>, is reported to <paramref name="log"/> and counted.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist (the message names the path).</exception>
    public static (List<T> Records, int SkippedLines) Read<T>(string path, Func<JsonlLine, T> parse, bool skipBadLines = false, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(parse);
        if (!File.Exists(path))
            throw new FileNotFoundException($"JSONL file not found: {Path.GetFullPath(path)}", path);
        var records = new List<T>();
        int skipped = 0, lineNo = 0;
        using var reader = new StreamReader(path, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: true);
        string? text;
        while ((text = reader.ReadLine()) != null)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            try
            {
                records.Add(ParseLine(path, lineNo, text, parse));
            }
            catch (DataFormatException e) when (skipBadLines)
            {
                skipped++;
                log?.Invoke($"skipped: {e.Message}");
            }
        }
        return (records, skipped);
    }

    private static T ParseLine<T>(string path, int lineNo, string text, Func<JsonlLine, T> parse)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw new DataFormatException(path, lineNo, $"invalid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new DataFormatException(path, lineNo, $"expected a JSON object, got {JsonlLine.Describe(doc.RootElement)}");
            return parse(new JsonlLine(path, lineNo, doc.RootElement));
        }
    }
}
