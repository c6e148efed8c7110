namespace Raft.Model.Tests;

/// <summary>
/// Padded vocabularies (Qwen2.5/Qwen3: 151,936 embedding rows for 151,669 tokens): with
/// <see cref="SamplingOptions.VocabLimit"/> the generator never picks an id at or above the limit, even when the padding
/// rows' logits dominate, and picking is exactly picking with −∞ on those ids.
/// </summary>
public class PaddedVocabularyTests
{
    private const int Limit = 37; // the "tokenizer's" size; the model has 50 rows

    /// <summary>A model whose lm_head rows ≥ <see cref="Limit"/> are large random rows, so their logits are usually the largest.</summary>
    private static LlamaModel PaddedModel(int seed)
    {
        var c = TestUtil.Medium(tied: false, bias: true);
        var p = RandomData.RandomParameters(c, seed);
        var head = p["lm_head.weight"].Data;
        var rng = new Random(seed + 1);
        int d = c.HiddenSize;
        for (int row = Limit; row < c.VocabSize; row++)
            for (int j = 0; j < d; j++) head[row * d + j] = (float)(8 * Gauss.Next(rng)); // non-zero, dominant
        return new LlamaModel(c, p);
    }

    [Theory]
    [InlineData(1.0f, 0, 1f)]
    [InlineData(1.5f, 0, 1f)]
    [InlineData(2.0f, 20, 1f)]
    [InlineData(1.2f, 0, 0.95f)]
    public void Sampling_never_picks_a_padding_id(float temperature, int topK, float topP)
    {
        int seed = Environment.TickCount;
        var model = PaddedModel(seed);
        var rng = new Random(seed);
        var prompts = Enumerable.Range(0, 24).Select(_ => Enumerable.Range(0, 3).Select(_ => rng.Next(Limit)).ToArray()).ToArray();
        var options = new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, MaxNewTokens = 10, Seed = (ulong)seed, VocabLimit = Limit };
        var gens = Generator.Generate(model, prompts, options);
        Assert.All(gens.SelectMany(g => g.Tokens), t => Assert.InRange(t, 0, Limit - 1));

        // the check has teeth: without the limit the padding rows are picked
        var free = Generator.Generate(model, prompts, options with { VocabLimit = 0 });
        Assert.Contains(free.SelectMany(g => g.Tokens), t => t >= Limit);
    }

    [Fact]
    public void Picking_with_a_limit_is_picking_with_minus_infinity_on_the_padding()
    {
        int seed = Environment.TickCount;
        var rng = new Random(seed);
        for (int trial = 0; trial < 200; trial++)
        {
            var row = Enumerable.Range(0, 50).Select(i => (float)(i >= Limit ? 10 + 3 * Gauss.Next(rng) : 3 * Gauss.Next(rng))).ToArray();
            var masked = row.Select((x, i) => i >= Limit ? float.NegativeInfinity : x).ToArray();
            var options = new SamplingOptions { Temperature = 1.3f, TopK = trial % 3 == 0 ? 0 : 7, TopP = trial % 2 == 0 ? 1f : 0.9f, Seed = (ulong)trial };
            double u = rng.NextDouble();
            var a = Sampler.Sample(row.AsSpan(0, Limit), options, u);
            var b = Sampler.Sample(masked, options, u);
            // Both sum the same probabilities in float; a u within rounding of a cumulative boundary may fall on either
            // side, so such a draw (the masked row's choice changes within ±1e-6 of u) says nothing and is skipped.
            if (Sampler.Sample(masked, options, Math.Max(0, u - 1e-6)).TokenId != Sampler.Sample(masked, options, Math.Min(1 - 1e-9, u + 1e-6)).TokenId)
                continue;
            Assert.True(b.TokenId == a.TokenId, $"seed {seed}, trial {trial}, u {u:R}: {a.TokenId} with the limit, {b.TokenId} with −∞");
            // Within 1e-5 (xunit's Equal(…, 5) rounds both sides, so values 3e-8 apart on either side of a rounding step failed).
            Assert.True(Math.Abs(b.LogProb - a.LogProb) < 1e-5, $"seed {seed}, trial {trial}: log-prob {a.LogProb} vs {b.LogProb}");
            Assert.True(Math.Abs(b.ModelLogProb - a.ModelLogProb) < 1e-5, $"seed {seed}, trial {trial}: model log-prob {a.ModelLogProb} vs {b.ModelLogProb}");
            Assert.Equal(Sampler.ArgMax(masked), Sampler.Greedy(row.AsSpan(0, Limit)).TokenId);
        }
    }

    [Fact]
    public void Greedy_decoding_with_the_limit_takes_the_best_real_token()
    {
        var model = PaddedModel(seed: 17);
        int v = model.Config.VocabSize;
        int[] prompt = [1, 2, 3, 4];
        var gens = Generator.Generate(model, [prompt], SamplingOptions.Greedy with { MaxNewTokens = 6, VocabLimit = Limit });
        var seq = prompt.ToList();
        foreach (int token in gens[0].Tokens)
        {
            var logits = model.Forward(seq.ToArray(), 1, seq.Count);
            var last = logits.AsSpan((seq.Count - 1) * v, v);
            Assert.Equal(Sampler.ArgMax(last[..Limit]), token);
            seq.Add(token);
        }
    }

    [Fact]
    public void A_limit_equal_to_the_vocabulary_changes_nothing_and_bad_limits_are_named()
    {
        var model = PaddedModel(seed: 5);
        int[][] prompts = [[1, 2], [3, 4]];
        var options = new SamplingOptions { Temperature = 1f, MaxNewTokens = 8, Seed = 9 };
        var a = Generator.Generate(model, prompts, options);
        var b = Generator.Generate(model, prompts, options with { VocabLimit = model.Config.VocabSize });
        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i].Tokens, b[i].Tokens);

        Assert.Equal("VocabLimit", Assert.Throws<ArgumentException>(() => new SamplingOptions { VocabLimit = -1 }).ParamName);
        var e = Assert.Throws<ArgumentException>(() => Generator.Generate(model, prompts, options with { VocabLimit = 51 }));
        Assert.Contains("VocabLimit must be ≤ the vocabulary size 50", e.Message);
        e = Assert.Throws<ArgumentException>(() => Generator.Generate(model, prompts, options with { VocabLimit = Limit, StopTokenIds = [40] }));
        Assert.Contains("StopTokenIds[0] must be < VocabLimit 37", e.Message);
    }
}
