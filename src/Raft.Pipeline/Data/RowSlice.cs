using System.Globalization;
using System.Text.RegularExpressions;

namespace Raft.Pipeline.Data;

/// <summary>
/// A selection of a data file's rows in Hugging Face's split-slicing syntax (<c>load_dataset(..., split="train[:10%]")</c>
/// without the split name): <c>[FROM:TO]</c> (the brackets may be left out: <c>FROM:TO</c>, which a shell does not glob), either end optional, rows FROM (included) to TO (excluded), 0-based, a
/// negative end counting from the end; <c>[:N]</c>, <c>[N:]</c>; percentages of the row count, <c>[:10%]</c>,
/// <c>[25%:75%]</c>, <c>[-10%:]</c> (integers in [-100, 100], both ends in the same unit), rounded as Hugging Face rounds
/// them: to the nearest row, halves to even (Python's <c>round</c>), or with the suffix <c>(pct1_dropremainder)</c> as
/// multiples of 1 % of the rows (which needs at least 100 rows). Ends beyond the file are clamped, so a slice past the
/// end selects nothing. A row is a non-blank line of a JSONL file or a row of a Parquet file, counted before any row is
/// parsed (so <c>--skip-bad-lines</c> does not shift the selection).
/// </summary>
public sealed record RowSlice
{
    private static readonly Regex Syntax = new(
        @"^(?<open>\[)?(?:(?<from>-?\d+)(?<fromPct>%)?)?:(?:(?<to>-?\d+)(?<toPct>%)?)?(?(open)\])(?:\((?<rounding>[^)]*)\))?$",
        RegexOptions.CultureInvariant);

    /// <summary>The first end as written (a row index or a percentage), or null when open.</summary>
    public int? From { get; private init; }

    /// <summary>The second end as written, or null when open.</summary>
    public int? To { get; private init; }

    /// <summary>True when the ends are percentages of the row count.</summary>
    public bool Percent { get; private init; }

    /// <summary>True for <c>(pct1_dropremainder)</c>: percentages as multiples of 1 % of the rows (truncated), not rounded.</summary>
    public bool DropRemainder { get; private init; }

    /// <summary>The text it was parsed from, trimmed.</summary>
    public string Text { get; private init; } = "";

    /// <summary>Whether the selection depends on the row count (a percentage or a negative end): the file is counted first.</summary>
    public bool NeedsCount => Percent || From < 0 || To < 0;

    /// <summary>
    /// Parses <paramref name="text"/>; a bad slice is an <see cref="ArgumentException"/> that quotes it and says what is
    /// expected (callers name their option: <c>--rows</c>, key <c>rows</c>).
    /// </summary>
    public static RowSlice Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim();
        var m = Syntax.Match(t);
        if (!m.Success)
            throw new ArgumentException($"\"{text}\" is not a row slice; expected Hugging Face's split syntax: [FROM:TO], [:N], [N:], [:10%], [25%:75%], [-10:] " +
                                        "(brackets optional, either end optional, 0-based, TO excluded, percentages as integers)", nameof(text));
        bool fromPct = m.Groups["fromPct"].Success, toPct = m.Groups["toPct"].Success;
        int? from = m.Groups["from"].Success ? Int(text, m.Groups["from"].Value) : null;
        int? to = m.Groups["to"].Success ? Int(text, m.Groups["to"].Value) : null;
        if (from is not null && to is not null && fromPct != toPct)
            throw new ArgumentException($"\"{text}\": both ends must be in the same unit (rows or percentages), got {(fromPct ? "a percentage" : "a row")} and {(toPct ? "a percentage" : "a row")}", nameof(text));
        bool pct = fromPct || toPct;
        if (pct && (from is < -100 or > 100 || to is < -100 or > 100))
            throw new ArgumentException($"\"{text}\": percentages must be in [-100, 100]", nameof(text));
        bool drop = false;
        if (m.Groups["rounding"].Success)
        {
            string r = m.Groups["rounding"].Value;
            if (r == "pct1_dropremainder") drop = true;
            else if (r != "closest")
                throw new ArgumentException($"\"{text}\": rounding \"{r}\" is unknown; expected (closest) or (pct1_dropremainder)", nameof(text));
            if (!pct) throw new ArgumentException($"\"{text}\": a rounding applies to percentages only", nameof(text));
        }
        return new RowSlice { From = from, To = to, Percent = pct, DropRemainder = drop, Text = t };
    }

    private static int Int(string text, string digits) =>
        int.TryParse(digits, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v)
            ? v : throw new ArgumentException($"\"{text}\": {digits} is out of range", nameof(text));

    /// <summary>
    /// The selected rows of a file of <paramref name="count"/> rows: [Start, End), 0 ≤ Start ≤ End ≤ count (Hugging Face's
    /// <c>_rel_to_abs_instr</c>: percentages converted, negative ends counted from the end, both clamped; an empty range
    /// when TO ≤ FROM). <c>(pct1_dropremainder)</c> with fewer than 100 rows is an <see cref="ArgumentException"/>.
    /// </summary>
    public (int Start, int End) Resolve(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (Percent && DropRemainder && count < 100)
            throw new ArgumentException($"\"{Text}\": (pct1_dropremainder) needs at least 100 rows, the file has {count}", "rows");
        long from = From is int f ? (Percent ? PercentToRows(f, count) : f) : 0;
        long to = To is int t ? (Percent ? PercentToRows(t, count) : t) : count;
        if (from < 0) from = Math.Max(count + from, 0);
        if (to < 0) to = Math.Max(count + to, 0);
        from = Math.Min(from, count);
        to = Math.Min(to, count);
        return ((int)from, (int)Math.Max(from, to));
    }

    private long PercentToRows(int percent, int count) => DropRemainder
        ? (long)percent * (count / 100)
        : (long)Math.Round(percent * (double)count / 100.0, MidpointRounding.ToEven);

    /// <summary>The slice as written.</summary>
    public override string ToString() => Text;
}
