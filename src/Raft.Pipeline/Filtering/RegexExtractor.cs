using System.Text.RegularExpressions;

namespace Raft.Pipeline.Filtering;

/// <summary>
/// The last match of a regular expression: its group 1 when the pattern has a capturing group that took part in the
/// match, else the whole match; trimmed; null when there is no match or it is empty.
/// </summary>
public sealed class RegexExtractor : IAnswerExtractor
{
    /// <summary>The spec prefix, <c>regex:</c>.</summary>
    public const string SpecPrefix = "regex:";

    private readonly Regex _regex;

    /// <summary>Compiles <paramref name="pattern"/>; an invalid one throws an <see cref="ArgumentException"/> naming it.</summary>
    public RegexExtractor(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (pattern.Length == 0) throw new ArgumentException("regex pattern must not be empty (got \"\").", nameof(pattern));
        try
        {
            _regex = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(2));
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"invalid regex pattern \"{pattern}\": {e.Message}", nameof(pattern), e);
        }
        Pattern = pattern;
    }

    /// <summary>The pattern.</summary>
    public string Pattern { get; }

    /// <inheritdoc/>
    public string Name => SpecPrefix + Pattern;

    /// <inheritdoc/>
    public string? Extract(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        Match? last = null;
        for (var m = _regex.Match(text); m.Success; m = m.NextMatch()) last = m;
        if (last == null) return null;
        string value = (last.Groups.Count > 1 && last.Groups[1].Success ? last.Groups[1].Value : last.Value).Trim();
        return value.Length == 0 ? null : value;
    }
}
