using System.Text.RegularExpressions;

namespace Raft.Pipeline.Filtering;

/// <summary>
/// The last maximal run of letters and digits of the text, case kept; a <c>-</c> directly before a digit that does
/// not follow a letter or digit belongs to it (<c>x = -5</c> → <c>-5</c>, <c>3-5</c> → <c>5</c>). Independent of the
/// style of an answer as long as the style ends with the answer (<c>The answer is zfkab.</c>, <c>-&gt; "zfkab"</c> and
/// <c>= 5</c> all give theirs). Null when the text holds no letter or digit.
/// </summary>
public sealed partial class FinalTokenExtractor : IAnswerExtractor
{
    /// <summary>The spec name, <c>final_token</c>.</summary>
    public const string SpecName = "final_token";

    /// <inheritdoc/>
    public string Name => SpecName;

    [GeneratedRegex(@"(?:(?<![\p{L}\p{Nd}])-(?=\p{Nd}))?[\p{L}\p{Nd}]+", RegexOptions.CultureInvariant)]
    private static partial Regex TokenRegex();

    /// <inheritdoc/>
    public string? Extract(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        Match? last = null;
        for (var m = TokenRegex().Match(text); m.Success; m = m.NextMatch()) last = m;
        return last?.Value;
    }
}
