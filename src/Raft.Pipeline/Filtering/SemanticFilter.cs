namespace Raft.Pipeline.Filtering;

/// <summary>The outcome of <see cref="SemanticFilter.Check"/>.</summary>
/// <param name="Keep">True when every rule kept the candidate.</param>
/// <param name="RejectedBy">The name of the first rule that rejected it (null when kept).</param>
/// <param name="Reason">That rule's reason (null when kept).</param>
/// <param name="Scores">The scores measured by the rules that ran, by rule name.</param>
public sealed record FilterResult(bool Keep, string? RejectedBy, string? Reason, IReadOnlyDictionary<string, double> Scores);

/// <summary>Applies rules in order; the first rejection decides, else the candidate is kept.</summary>
public sealed class SemanticFilter
{
    /// <summary>Creates the filter from <paramref name="rules"/> (applied in this order).</summary>
    public SemanticFilter(IEnumerable<IFilterRule> rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        Rules = [.. rules];
        for (int i = 0; i < Rules.Count; i++)
            if (Rules[i] == null) throw new ArgumentException($"rules[{i}] is null.", nameof(rules));
    }

    /// <summary>Creates the filter from <paramref name="rules"/> (applied in this order).</summary>
    public SemanticFilter(params IFilterRule[] rules) : this((IEnumerable<IFilterRule>)rules) { }

    /// <summary>The rules, in order.</summary>
    public IReadOnlyList<IFilterRule> Rules { get; }

    /// <summary>Checks <paramref name="candidate"/> against <paramref name="reference"/> with each rule in turn.</summary>
    public FilterResult Check(string candidate, string reference)
    {
        var scores = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var rule in Rules)
        {
            var v = rule.Check(candidate, reference);
            if (v.Score is double s) scores[rule.Name] = s;
            if (!v.Keep) return new FilterResult(false, rule.Name, v.Reason ?? "rejected", scores);
        }
        return new FilterResult(true, null, null, scores);
    }
}
