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
    /// With <paramref name="rows"/>, only the records (non-blank lines) it selects are parsed: the others are neither
    /// parsed nor validated (those before the selection's end must still be UTF-8 text; after it, a slice that needs no
    /// count — no percentage, no negative end — reads nothing more, one that does reads the whole file once to count).
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist (the message names the path).</exception>
    public static (List<T> Records, int SkippedLines) Read<T>(string path, Func<JsonlLine, T> parse, bool skipBadLines = false, Action<string>? log = null,
        RowSlice? rows = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(parse);
        if (!File.Exists(path))
            throw new FileNotFoundException($"JSONL file not found: {Path.GetFullPath(path)}", path);
        var records = new List<T>();
        int skipped = 0;
        IEnumerable<(int LineNo, string Text)> selected = Records(path);
        if (rows is not null)
        {
            // streamed, never held whole: a slice that depends on the count (a percentage, a negative end) counts the lines first
            int count = rows.NeedsCount ? Records(path).Count() : int.MaxValue;
            var (start, end) = rows.Resolve(count);
            selected = Records(path).Skip(start).Take(end - start);
        }
        foreach (var (lineNo, text) in selected)
        {
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

    /// <summary>The non-blank lines of <paramref name="path"/> with their 1-based line numbers, read lazily.</summary>
    private static IEnumerable<(int LineNo, string Text)> Records(string path)
    {
        int lineNo = 0;
        using var stream = new BufferedStream(File.OpenRead(path), 1 << 16);
        string? text;
        while ((text = ReadUtf8Line(stream, path, lineNo + 1)) != null)
        {
            lineNo++;
            if (!string.IsNullOrWhiteSpace(text)) yield return (lineNo, text);
        }
    }

    /// <summary>
    /// Reads the records of a data file, JSONL or Parquet by its extension (<see cref="ParquetRecords.IsParquet"/>):
    /// <see cref="Read{T}"/> for JSONL, <see cref="ParquetRecords.Read{T}"/> with <paramref name="layout"/> for Parquet.
    /// </summary>
    public static (List<T> Records, int SkippedLines) ReadDataFile<T>(string path, ParquetLayout layout, Func<JsonlLine, T> parse,
        bool skipBadLines = false, Action<string>? log = null, RowSlice? rows = null) =>
        ParquetRecords.IsParquet(path)
            ? ParquetRecords.Read(path, layout, parse, skipBadLines, log, rows)
            : Read(path, parse, skipBadLines, log, rows);

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The next line of <paramref name="stream"/> (split at \n, a trailing \r dropped, a UTF-8 byte order mark at the start
    /// skipped), decoded as strict UTF-8, or null at the end. Invalid bytes are a <see cref="DataFormatException"/> naming
    /// the file and the line (never replaced silently), even with skipBadLines: the file is not text as the reader expects.
    /// </summary>
    private static string? ReadUtf8Line(Stream stream, string path, int lineNo)
    {
        var bytes = new List<byte>();
        int b;
        while ((b = stream.ReadByte()) >= 0 && b != '\n') bytes.Add((byte)b);
        if (b < 0 && bytes.Count == 0) return null;
        int start = lineNo == 1 && bytes.Count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
        int end = bytes.Count > start && bytes[^1] == '\r' ? bytes.Count - 1 : bytes.Count;
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes)[start..end];
        try { return StrictUtf8.GetString(span); }
        catch (DecoderFallbackException e)
        {
            string where = e.Index >= 0 ? $" at byte {e.Index + 1} of the line" : "";
            throw new DataFormatException(path, lineNo, $"not valid UTF-8{where} (bytes {Convert.ToHexString(e.BytesUnknown ?? [])}); JSONL files must be UTF-8 text");
        }
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
            try
            {
                return parse(new JsonlLine(path, lineNo, doc.RootElement));
            }
            // a string with a lone surrogate escape (\uDDDD) parses, then fails when it is read
            catch (InvalidOperationException e) when (Raft.Model.JsonStringErrors.IsFromJson(e))
            {
                throw new DataFormatException(path, lineNo, $"invalid JSON string: {e.Message}", e);
            }
        }
    }
}
