namespace Raft.Pipeline.Filtering;

/// <summary>A pluggable check that keeps or rejects a candidate rewrite against its reference.</summary>
public interface IFilterRule
{
    /// <summary>The rule's name as shown in reports (e.g. <c>answer_match:last_number</c>).</summary>
    string Name { get; }

    /// <summary>Decides whether <paramref name="candidate"/> may replace <paramref name="reference"/>.</summary>
    FilterVerdict Check(string candidate, string reference);
}
