namespace Raft.Pipeline.Filtering;

/// <summary>
/// The text after the last occurrence of a marker such as <c>Answer:</c> (compared ignoring case), up to the end of
/// that line, trimmed, with trailing periods removed; null when the marker does not occur or nothing follows it.
/// </summary>
public sealed class MarkerExtractor : IAnswerExtractor
{
    /// <summary>The spec prefix, <c>marker:</c>.</summary>
    public const string SpecPrefix = "marker:";

    /// <summary>Creates an extractor for <paramref name="marker"/> (non-empty).</summary>
    public MarkerExtractor(string marker)
    {
        ArgumentNullException.ThrowIfNull(marker);
        if (marker.Length == 0) throw new ArgumentException("marker must not be empty (got \"\").", nameof(marker));
        Marker = marker;
    }

    /// <summary>The marker.</summary>
    public string Marker { get; }

    /// <inheritdoc/>
    public string Name => SpecPrefix + Marker;

    /// <inheritdoc/>
    public string? Extract(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int i = text.LastIndexOf(Marker, StringComparison.OrdinalIgnoreCase);
        if (i < 0) return null;
        string rest = text[(i + Marker.Length)..];
        int eol = rest.IndexOfAny(['\n', '\r']);
        if (eol >= 0) rest = rest[..eol];
        rest = rest.Trim().TrimEnd('.').TrimEnd();
        return rest.Length == 0 ? null : rest;
    }
}
