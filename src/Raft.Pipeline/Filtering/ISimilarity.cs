namespace Raft.Pipeline.Filtering;

/// <summary>A similarity score between a candidate rewrite and its reference, in [0, 1] (1 = same meaning).</summary>
public interface ISimilarity
{
    /// <summary>The measure's name as written in configs and reports (e.g. <c>char_ngram_cosine</c>).</summary>
    string Name { get; }

    /// <summary>The similarity of <paramref name="candidate"/> to <paramref name="reference"/>, in [0, 1].</summary>
    double Score(string candidate, string reference);
}
