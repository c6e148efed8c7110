namespace Raft.Pipeline.Filtering;

/// <summary>A rule's decision on a candidate: keep or reject, why, and the score it measured (if any).</summary>
/// <param name="Keep">True to keep the candidate.</param>
/// <param name="Reason">Why it was rejected (null when kept).</param>
/// <param name="Score">The score the rule measured, if it measures one.</param>
public sealed record FilterVerdict(bool Keep, string? Reason, double? Score)
{
    /// <summary>A keep verdict with an optional score.</summary>
    public static FilterVerdict Pass(double? score = null) => new(true, null, score);

    /// <summary>A reject verdict with its reason and an optional score.</summary>
    public static FilterVerdict Reject(string reason, double? score = null) => new(false, reason, score);
}
