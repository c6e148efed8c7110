namespace Raft.Pipeline.Filtering;

/// <summary>
/// Keeps a candidate whose extracted final answer equals (ordinal) the reference's. Rejections read
/// <c>no answer found in candidate</c>, <c>no answer found in reference</c> or
/// <c>answer mismatch: candidate 41, reference 42</c>. Its score is 1 on a match.
/// </summary>
public sealed class AnswerMatchRule(IAnswerExtractor extractor) : IFilterRule
{
    /// <summary>The extractor applied to both texts.</summary>
    public IAnswerExtractor Extractor { get; } = extractor ?? throw new ArgumentNullException(nameof(extractor));

    /// <inheritdoc/>
    public string Name => $"answer_match:{Extractor.Name}";

    /// <inheritdoc/>
    public FilterVerdict Check(string candidate, string reference)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(reference);
        string? r = Extractor.Extract(reference);
        if (r == null) return FilterVerdict.Reject("no answer found in reference", 0);
        string? c = Extractor.Extract(candidate);
        if (c == null) return FilterVerdict.Reject("no answer found in candidate", 0);
        return string.Equals(c, r, StringComparison.Ordinal)
            ? FilterVerdict.Pass(1)
            : FilterVerdict.Reject($"answer mismatch: candidate {c}, reference {r}", 0);
    }
}
