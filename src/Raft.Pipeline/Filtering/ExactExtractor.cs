namespace Raft.Pipeline.Filtering;

/// <summary>The whole text, trimmed (exact-match scoring); null when it is empty or whitespace.</summary>
public sealed class ExactExtractor : IAnswerExtractor
{
    /// <summary>The spec name, <c>exact</c>.</summary>
    public const string SpecName = "exact";

    /// <inheritdoc/>
    public string Name => SpecName;

    /// <inheritdoc/>
    public string? Extract(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim();
        return t.Length == 0 ? null : t;
    }
}
