namespace Raft.Pipeline.Filtering;

/// <summary>Builds answer extractors from spec strings as written in configs and eval files.</summary>
public static class AnswerExtractors
{
    /// <summary>The spec forms, for help texts.</summary>
    public const string SpecHelp = "last_number | final_token | boxed | exact | marker:<text> | regex:<pattern>";

    /// <summary>
    /// Builds the extractor named by <paramref name="spec"/>: <c>last_number</c>, <c>final_token</c>, <c>boxed</c>, <c>exact</c>
    /// (trimmed whole text), <c>marker:&lt;text&gt;</c> or <c>regex:&lt;pattern&gt;</c>. An unknown spec, or an empty
    /// marker or invalid pattern, throws an <see cref="ArgumentException"/> naming it.
    /// </summary>
    public static IAnswerExtractor Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string s = spec.Trim();
        // the kind is case-insensitive (LAST_NUMBER, Marker:…); a marker's text and a pattern are kept as written
        const StringComparison kind = StringComparison.OrdinalIgnoreCase;
        if (s.Equals(LastNumberExtractor.SpecName, kind)) return new LastNumberExtractor();
        if (s.Equals(FinalTokenExtractor.SpecName, kind)) return new FinalTokenExtractor();
        if (s.Equals(BoxedExtractor.SpecName, kind)) return new BoxedExtractor();
        if (s.Equals(ExactExtractor.SpecName, kind)) return new ExactExtractor();
        if (s.StartsWith(MarkerExtractor.SpecPrefix, kind))
        {
            string marker = s[MarkerExtractor.SpecPrefix.Length..];
            if (marker.Length == 0) throw new ArgumentException($"extractor spec \"{spec}\" has an empty marker; expected marker:<text>.");
            return new MarkerExtractor(marker);
        }
        if (s.StartsWith(RegexExtractor.SpecPrefix, kind))
        {
            string pattern = s[RegexExtractor.SpecPrefix.Length..];
            try
            {
                return new RegexExtractor(pattern);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"extractor spec \"{spec}\": {e.Message}", e);
            }
        }
        throw new ArgumentException($"unknown extractor spec \"{spec}\"; expected {SpecHelp}.");
    }
}
