using Raft.Kernels;

namespace Raft.Model.Tests;

public class SamplerTests
{
    [Fact]
    public void PhiloxMatchesRandom123KnownAnswers()
    {
        Assert.Equal((0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u), Philox.Block(0, 0, 0, 0, 0, 0));
        Assert.Equal((0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu),
            Philox.Block(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff));
        Assert.Equal((0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u),
            Philox.Block(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0));
        double u = Philox.Uniform(1, 2, 3);
        Assert.InRange(u, 0.0, 1.0 - 1e-17);
        Assert.Equal(u, Philox.Uniform(1, 2, 3));
        Assert.NotEqual(u, Philox.Uniform(1, 2, 4));
        Assert.NotEqual(u, Philox.Uniform(1, 3, 3));
        Assert.NotEqual(u, Philox.Uniform(2, 2, 3));
    }

    /// <summary>Log-softmax in fp64: the reference for every log-probability below.</summary>
    private static double[] LogSoftmax(float[] logits, double temperature = 1)
    {
        double max = logits.Max(x => x / temperature);
        double lse = max + Math.Log(logits.Sum(x => Math.Exp(x / temperature - max)));
        return logits.Select(x => x / temperature - lse).ToArray();
    }

    private static float[] LogitsOf(params double[] probs) => probs.Select(p => (float)Math.Log(p)).ToArray();

    [Fact]
    public void GreedyIsArgmaxAndTopKOneIsGreedy()
    {
        float[] logits = [0.1f, 2.5f, -1f, 2.5f, 0.3f];
        var lsm = LogSoftmax(logits);
        var g = Sampler.Greedy(logits);
        Assert.Equal(1, g.TokenId); // first of the tied maxima
        Assert.Equal(0f, g.LogProb);
        Assert.Equal(lsm[1], g.ModelLogProb, 6);
        for (ulong seed = 0; seed < 20; seed++)
        {
            Assert.Equal(g, Sampler.Sample(logits, new SamplingOptions { Temperature = 0f, Seed = seed }, seed, 0));
            Assert.Equal(g, Sampler.Sample(logits, new SamplingOptions { TopK = 1, Temperature = 1.7f, Seed = seed }, 3, seed));
        }
        Assert.True(SamplingOptions.Greedy.IsGreedy);
    }

    [Fact]
    public void TopPExcludesTokensBeyondTheNucleus()
    {
        // p = [0.5, 0.3, 0.15, 0.05]; top-p 0.7 keeps {0, 1}: the mass before token 2 is 0.8 ≥ 0.7
        var logits = LogitsOf(0.15, 0.5, 0.05, 0.3);
        var options = new SamplingOptions { TopP = 0.7f };
        var seen = new HashSet<int>();
        for (int i = 0; i < 1000; i++)
        {
            var s = Sampler.Sample(logits, options, (i + 0.5) / 1000);
            seen.Add(s.TokenId);
            double expected = s.TokenId == 1 ? Math.Log(0.5 / 0.8) : Math.Log(0.3 / 0.8);
            Assert.Equal(expected, s.LogProb, 5);
            Assert.Equal(Math.Log(s.TokenId == 1 ? 0.5 : 0.3), s.ModelLogProb, 5);
        }
        Assert.Equal([1, 3], seen.Order());
        // the token that crosses the threshold is kept: top-p 0.5000001 keeps token 3 too, 0.45 does not
        Assert.Equal(3, Sampler.Sample(logits, new SamplingOptions { TopP = 0.51f }, 0.99).TokenId);
        Assert.Equal(1, Sampler.Sample(logits, new SamplingOptions { TopP = 0.45f }, 0.99).TokenId);
    }

    [Fact]
    public void TopPOnAFlatLargeVocabularyKeepsTheLowestIds()
    {
        var logits = new float[1000];
        var options = new SamplingOptions { TopP = 0.5f };
        Assert.Equal(499, Sampler.Sample(logits, options, 0.999999).TokenId);
        Assert.Equal(0, Sampler.Sample(logits, options, 0.0).TokenId);
        Assert.Equal(Math.Log(1.0 / 500), Sampler.Sample(logits, options, 0.3).LogProb, 5);
        // ties in top-k go to the lower ids, through the heap (small k) and the sort (large k)
        Assert.Equal(2, Sampler.Sample(logits, new SamplingOptions { TopK = 3 }, 0.999999).TokenId);
        Assert.Equal(0, Sampler.Sample(logits, new SamplingOptions { TopK = 3 }, 0.0).TokenId);
        var big = new float[10_000];
        Assert.Equal(4999, Sampler.Sample(big, new SamplingOptions { TopK = 5000 }, 0.9999999).TokenId);
    }

    /// <summary>The kept set and final probabilities, by brute force in fp64 (full sort), in Hugging Face's order.</summary>
    private static Dictionary<int, double> Reference(float[] logits, float temperature, int topK, float topP)
    {
        var ls = LogSoftmax(logits, temperature);
        var order = Enumerable.Range(0, logits.Length).OrderByDescending(i => (float)(logits[i] / temperature)).ThenBy(i => i).ToList();
        if (topK > 0) order = order.Take(topK).ToList();
        double z = order.Sum(i => Math.Exp(ls[i]));
        var kept = new List<int>();
        double before = 0;
        foreach (int i in order)
        {
            if (before >= topP * z) break;
            kept.Add(i);
            before += Math.Exp(ls[i]);
        }
        double zk = kept.Sum(i => Math.Exp(ls[i]));
        return kept.ToDictionary(i => i, i => Math.Exp(ls[i]) / zk);
    }

    [Theory]
    [InlineData(1.0f, 0, 1.0f)]
    [InlineData(0.7f, 0, 1.0f)]
    [InlineData(1.3f, 5, 1.0f)]
    [InlineData(0.8f, 0, 0.9f)]
    [InlineData(1.0f, 6, 0.8f)]
    public void EmpiricalFrequenciesMatchTheFinalDistribution(float temperature, int topK, float topP)
    {
        float[] logits = [1.2f, -0.3f, 0.8f, 2.0f, -1.5f, 0.1f, 0.9f, float.NegativeInfinity, 1.7f, -0.2f];
        var options = new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, Seed = 1234 };
        var expected = Reference(logits, temperature, topK, topP);
        const int N = 40_000;
        var counts = new int[logits.Length];
        var modelLsm = LogSoftmax(logits);
        for (int i = 0; i < N; i++)
        {
            var s = Sampler.Sample(logits, options, (ulong)i, 7);
            counts[s.TokenId]++;
            if (i < 200)
            {
                Assert.Equal(Math.Log(expected[s.TokenId]), s.LogProb, 5);
                Assert.Equal(modelLsm[s.TokenId], s.ModelLogProb, 5);
            }
        }
        double chi2 = 0;
        for (int t = 0; t < logits.Length; t++)
        {
            if (!expected.TryGetValue(t, out double p)) { Assert.Equal(0, counts[t]); continue; }
            double e = p * N;
            chi2 += (counts[t] - e) * (counts[t] - e) / e;
        }
        // dof ≤ 8: the 99.99th percentile of χ²(8) is ≈ 31.8
        Assert.True(chi2 < 31.8, $"chi-square {chi2:F2} too large; counts {string.Join(",", counts)}");
    }

    [Fact]
    public void TemperatureComesBeforeTopP()
    {
        // raw p = [0.6, 0.25, 0.1, 0.05]: raw top-p 0.5 would keep only token 0; at T = 2 the tempered
        // probabilities are [0.427, 0.276, 0.174, 0.123], so top-p 0.5 keeps tokens 0 and 1
        var logits = LogitsOf(0.6, 0.25, 0.1, 0.05);
        var options = new SamplingOptions { Temperature = 2f, TopP = 0.5f };
        Assert.Equal(1, Sampler.Sample(logits, options, 0.99).TokenId);
        Assert.Equal(0, Sampler.Sample(logits, options, 0.01).TokenId);
    }

    [Fact]
    public void TopKComesBeforeTopP()
    {
        // p = [0.4, 0.3, 0.2, 0.1]; top-k 2 renormalises to [0.571, 0.429], and top-p 0.5 on that keeps only token 0
        // (top-p first would have kept tokens 0 and 1)
        var logits = LogitsOf(0.4, 0.3, 0.2, 0.1);
        var options = new SamplingOptions { TopK = 2, TopP = 0.5f };
        for (int i = 0; i < 100; i++)
        {
            var s = Sampler.Sample(logits, options, (i + 0.5) / 100);
            Assert.Equal(0, s.TokenId);
            Assert.Equal(0.0, s.LogProb, 6);
        }
        var k2 = new SamplingOptions { TopK = 2 };
        var s1 = Sampler.Sample(logits, k2, 0.99);
        Assert.Equal(1, s1.TokenId);
        Assert.Equal(Math.Log(0.3 / 0.7), s1.LogProb, 5);
    }

    [Fact]
    public void LargeVocabularyNucleusMatchesTheBruteForceReference()
    {
        var rng = new Random(9);
        var logits = Enumerable.Range(0, 50_000).Select(_ => (float)(rng.NextDouble() * 12 - 6)).ToArray();
        foreach (var (topK, topP) in new[] { (0, 0.95f), (0, 0.3f), (40, 0.9f), (1000, 1f), (5000, 1f), (6000, 0.9f), (30_000, 0.5f) })
        {
            var options = new SamplingOptions { Temperature = 0.9f, TopK = topK, TopP = topP };
            var expected = Reference(logits, 0.9f, topK, topP);
            var last = Sampler.Sample(logits, options, 1 - 1e-12);
            var first = Sampler.Sample(logits, options, 0);
            // the walk is in decreasing probability: u → 0 gives the most likely, u → 1 the least likely kept token
            Assert.Equal(expected.MaxBy(kv => kv.Value).Key, first.TokenId);
            Assert.Equal(expected.MinBy(kv => kv.Value).Key, last.TokenId);
            Assert.Equal(Math.Log(expected[last.TokenId]), last.LogProb, 4);
        }
    }

    [Fact]
    public void SameSeedSameTokensDifferentSeedDifferentTokens()
    {
        var rng = new Random(4);
        var logits = Enumerable.Range(0, 100).Select(_ => (float)rng.NextDouble() * 3).ToArray();
        var a = new SamplingOptions { Temperature = 1.1f, TopK = 50, TopP = 0.95f, Seed = 42 };
        var first = Enumerable.Range(0, 200).Select(i => Sampler.Sample(logits, a, (ulong)(i % 10), (ulong)(i / 10))).ToArray();
        var again = Enumerable.Range(0, 200).Select(i => Sampler.Sample(logits, a, (ulong)(i % 10), (ulong)(i / 10))).ToArray();
        Assert.Equal(first, again);
        var other = Enumerable.Range(0, 200).Select(i => Sampler.Sample(logits, a with { Seed = 43 }, (ulong)(i % 10), (ulong)(i / 10))).ToArray();
        Assert.NotEqual(first.Select(s => s.TokenId), other.Select(s => s.TokenId));
    }

    [Fact]
    public void MaskedTokensAreNeverSampledAndBadLogitsAreReported()
    {
        float[] logits = [float.NegativeInfinity, 0f, float.NegativeInfinity, 0.5f];
        for (int i = 0; i < 200; i++)
            Assert.DoesNotContain(Sampler.Sample(logits, new SamplingOptions(), (ulong)i, 0).TokenId, new[] { 0, 2 });
        var e = Assert.Throws<NonFiniteLogitException>(() => Sampler.Sample([0f, float.NaN, 1f], new SamplingOptions(), 0.5));
        Assert.Equal(1, e.Column);
        Assert.Throws<NonFiniteLogitException>(() => Sampler.Sample([0f, float.PositiveInfinity], new SamplingOptions(), 0.5));
        Assert.Throws<ArgumentException>(() => Sampler.Sample([float.NegativeInfinity], new SamplingOptions(), 0.5));
        Assert.Throws<ArgumentException>(() => Sampler.Sample([], new SamplingOptions(), 0.5));
        Assert.Throws<ArgumentException>(() => Sampler.Sample([1f], new SamplingOptions(), 1.0));
    }

    [Fact]
    public void TinyTemperaturesTendToGreedy()
    {
        float[] logits = [1f, 3f, 2f];
        var s = Sampler.Sample(logits, new SamplingOptions { Temperature = 1e-38f }, 0.99);
        Assert.Equal(1, s.TokenId);
        Assert.Equal(0f, s.LogProb);
    }

    [Fact]
    public void OptionsValidationNamesFieldAndValue()
    {
        void Check(Func<SamplingOptions> make, string field, string value)
        {
            var e = Assert.Throws<ArgumentException>(() => make());
            Assert.Equal(field, e.ParamName);
            Assert.Contains(field, e.Message);
            Assert.Contains(value, e.Message);
        }
        Check(() => new SamplingOptions { Temperature = -0.5f }, "Temperature", "-0.5");
        Check(() => new SamplingOptions { Temperature = float.NaN }, "Temperature", "NaN");
        Check(() => new SamplingOptions { TopK = -2 }, "TopK", "-2");
        Check(() => new SamplingOptions { TopP = 0f }, "TopP", "0");
        Check(() => new SamplingOptions { TopP = 1.5f }, "TopP", "1.5");
        Check(() => new SamplingOptions { MaxNewTokens = 0 }, "MaxNewTokens", "0");
        Check(() => new SamplingOptions { StopTokenIds = [3, -7] }, "StopTokenIds", "-7");
        Check(() => SamplingOptions.Greedy with { TopP = 2f }, "TopP", "2");
        var ok = new SamplingOptions { StopTokenIds = [2, 10] };
        var e = Assert.Throws<ArgumentException>(() => ok.ValidateFor(10));
        Assert.Contains("10", e.Message);
        ok.ValidateFor(11);
    }
}
