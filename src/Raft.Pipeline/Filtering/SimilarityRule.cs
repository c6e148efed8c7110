using System.Globalization;

namespace Raft.Pipeline.Filtering;

/// <summary>
/// Keeps a candidate whose similarity to the reference is at least a threshold; rejections read
/// <c>similarity 0.31 &lt; threshold 0.50</c>. Its score is the similarity.
/// </summary>
public sealed class SimilarityRule : IFilterRule
{
    /// <summary>Creates the rule; <paramref name="threshold"/> must be in [0, 1].</summary>
    public SimilarityRule(ISimilarity similarity, double threshold)
    {
        ArgumentNullException.ThrowIfNull(similarity);
        if (!(threshold >= 0 && threshold <= 1))
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, $"threshold must be in [0, 1], got {threshold.ToString(CultureInfo.InvariantCulture)}.");
        Similarity = similarity;
        Threshold = threshold;
    }

    /// <summary>The similarity measure.</summary>
    public ISimilarity Similarity { get; }

    /// <summary>The smallest similarity kept.</summary>
    public double Threshold { get; }

    /// <inheritdoc/>
    public string Name => $"similarity:{Similarity.Name}";

    /// <inheritdoc/>
    public FilterVerdict Check(string candidate, string reference)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(reference);
        double s = Similarity.Score(candidate, reference);
        return s >= Threshold
            ? FilterVerdict.Pass(s)
            : FilterVerdict.Reject(string.Create(CultureInfo.InvariantCulture, $"similarity {s:F2} < threshold {Threshold:F2}"), s);
    }
}
