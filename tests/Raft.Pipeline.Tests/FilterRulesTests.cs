using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Tests;

public sealed class FilterRulesTests
{
    private sealed class FixedSimilarity(double value) : ISimilarity
    {
        public string Name => "fixed";
        public double Score(string candidate, string reference) => value;
    }

    [Theory]
    [InlineData("so it is 42", "The answer is 42.", true, null)]
    [InlineData("so it is 41", "The answer is 42.", false, "answer mismatch: candidate 41, reference 42")]
    [InlineData("no idea", "The answer is 42.", false, "no answer found in candidate")]
    [InlineData("42", "no number", false, "no answer found in reference")]
    public void Answer_match(string candidate, string reference, bool keep, string? reason)
    {
        var v = new AnswerMatchRule(new LastNumberExtractor()).Check(candidate, reference);
        Assert.Equal(keep, v.Keep);
        Assert.Equal(reason, v.Reason);
    }

    [Theory]
    [InlineData(0.31, 0.5, false, "similarity 0.31 < threshold 0.50")]
    [InlineData(0.5, 0.5, true, null)]
    [InlineData(0.9, 0.5, true, null)]
    public void Similarity_threshold(double score, double threshold, bool keep, string? reason)
    {
        var v = new SimilarityRule(new FixedSimilarity(score), threshold).Check("c", "r");
        Assert.Equal(keep, v.Keep);
        Assert.Equal(reason, v.Reason);
        Assert.Equal(score, v.Score);
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void Similarity_threshold_out_of_range_is_rejected(double threshold) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new SimilarityRule(new FixedSimilarity(1), threshold));

    [Fact]
    public void Semantic_filter_returns_first_rejection_or_keep_with_scores()
    {
        var rng = new Random();
        double high = 0.6 + 0.4 * rng.NextDouble(), low = 0.4 * rng.NextDouble();
        var answer = new AnswerMatchRule(new LastNumberExtractor());
        var filter = new SemanticFilter(answer, new SimilarityRule(new FixedSimilarity(high), 0.5));
        var kept = filter.Check("it is 7", "7");
        Assert.True(kept.Keep);
        Assert.Null(kept.RejectedBy);
        Assert.Equal(high, kept.Scores["similarity:fixed"]);
        Assert.Equal(1, kept.Scores[answer.Name]);

        var bySim = new SemanticFilter(answer, new SimilarityRule(new FixedSimilarity(low), 0.5)).Check("it is 7", "7");
        Assert.False(bySim.Keep);
        Assert.Equal("similarity:fixed", bySim.RejectedBy);
        Assert.StartsWith("similarity 0.", bySim.Reason);

        // the first rejection wins: the answer rule runs first and the similarity rule is not consulted
        var byAnswer = new SemanticFilter(answer, new SimilarityRule(new FixedSimilarity(low), 0.5)).Check("it is 8", "7");
        Assert.Equal("answer_match:last_number", byAnswer.RejectedBy);
        Assert.Equal("answer mismatch: candidate 8, reference 7", byAnswer.Reason);
        Assert.False(byAnswer.Scores.ContainsKey("similarity:fixed"));
    }
}
