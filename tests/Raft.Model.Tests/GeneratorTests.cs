namespace Raft.Model.Tests;

/// <summary>Batched sampling with the KV cache against generation by full recomputation, and its options.</summary>
public class GeneratorTests
{
    private static LlamaModel Model(int seed, int maxPositions = 64)
    {
        var c = TestUtil.Medium(tied: false, bias: true) with { MaxPositionEmbeddings = maxPositions };
        return new LlamaModel(c, RandomData.RandomParameters(c, seed));
    }

    private static int[] Prompt(Random rng, int length, int vocab) => Enumerable.Range(0, length).Select(_ => rng.Next(vocab)).ToArray();

    private static double[] LogSoftmax(ReadOnlySpan<float> row)
    {
        double max = double.NegativeInfinity, sum = 0;
        foreach (float v in row) max = Math.Max(max, v);
        foreach (float v in row) sum += Math.Exp(v - max);
        var r = new double[row.Length];
        for (int i = 0; i < r.Length; i++) r[i] = row[i] - max - Math.Log(sum);
        return r;
    }

    [Fact]
    public void GreedyWithTheKvCacheEqualsFullRecomputationTokenForToken()
    {
        int seed = Environment.TickCount;
        var model = Model(seed);
        int vocab = model.Config.VocabSize;
        var rng = new Random(seed);
        var prompts = new[] { Prompt(rng, 3, vocab), Prompt(rng, 5, vocab), Prompt(rng, 3, vocab) };
        var options = SamplingOptions.Greedy with { MaxNewTokens = 12 };
        var gens = Generator.Generate(model, prompts, options);
        for (int p = 0; p < prompts.Length; p++)
        {
            var seq = prompts[p].ToList();
            for (int step = 0; step < options.MaxNewTokens; step++)
            {
                var logits = model.Forward(seq.ToArray(), 1, seq.Count);
                var last = logits.AsSpan((seq.Count - 1) * vocab, vocab);
                int argmax = Sampler.ArgMax(last);
                Assert.True(argmax == gens[p].Tokens[step], $"seed {seed}, prompt {p}, step {step}: full recomputation picks {argmax}, the KV cache {gens[p].Tokens[step]}");
                double lp = LogSoftmax(last)[argmax];
                Assert.True(Math.Abs(lp - gens[p].ModelLogProbs[step]) < 1e-4, $"model log-prob {gens[p].ModelLogProbs[step]} vs {lp}");
                Assert.Equal(0f, gens[p].LogProbs[step]); // greedy puts all probability on one token
                seq.Add(argmax);
            }
            Assert.Equal(StopReason.MaxNewTokens, gens[p].Reason);
        }
    }

    [Fact]
    public void SampledTokensDoNotDependOnHowPromptsAreBatched()
    {
        int seed = Environment.TickCount;
        var model = Model(seed);
        var rng = new Random(seed);
        var prompts = new[] { Prompt(rng, 4, 50), Prompt(rng, 4, 50), Prompt(rng, 6, 50), Prompt(rng, 4, 50) };
        var options = new SamplingOptions { Temperature = 1.3f, TopP = 0.95f, MaxNewTokens = 10, Seed = (ulong)seed };
        var together = Generator.Generate(model, prompts, options, firstSequenceIndex: 100);
        for (int p = 0; p < prompts.Length; p++)
        {
            var alone = Generator.Generate(model, [prompts[p]], options, firstSequenceIndex: 100 + (ulong)p);
            Assert.Equal(together[p].Tokens, alone[0].Tokens);
        }
        var oneAtATime = Generator.Generate(model, prompts, options, firstSequenceIndex: 100, maxBatch: 1);
        for (int p = 0; p < prompts.Length; p++) Assert.Equal(together[p].Tokens, oneAtATime[p].Tokens);
        var otherSeed = Generator.Generate(model, prompts, options with { Seed = (ulong)seed + 1 }, firstSequenceIndex: 100);
        Assert.Contains(Enumerable.Range(0, prompts.Length), p => !together[p].Tokens.SequenceEqual(otherSeed[p].Tokens));
    }

    [Fact]
    public void AStopTokenEndsTheSequenceAndIsKept()
    {
        var model = Model(7);
        var prompt = Prompt(new Random(7), 4, 50);
        var free = Generator.Generate(model, [prompt], SamplingOptions.Greedy with { MaxNewTokens = 8 })[0];
        int stopAt = Array.IndexOf(free.Tokens, free.Tokens[2]); // the first occurrence of the third token
        var stopped = Generator.Generate(model, [prompt], SamplingOptions.Greedy with { MaxNewTokens = 8, StopTokenIds = [free.Tokens[2]] })[0];
        Assert.Equal(StopReason.StopToken, stopped.Reason);
        Assert.Equal(free.Tokens.Take(stopAt + 1), stopped.Tokens);
    }

    [Fact]
    public void GenerationStopsWhenTheContextIsFull()
    {
        var model = Model(3, maxPositions: 9);
        var g = Generator.Generate(model, [Prompt(new Random(3), 6, 50)], SamplingOptions.Greedy with { MaxNewTokens = 20 })[0];
        Assert.Equal(StopReason.ContextFull, g.Reason);
        Assert.Equal(3, g.Tokens.Length);
    }

    [Fact]
    public void BadPromptsAreRejectedNamingThePrompt()
    {
        var model = Model(1);
        var e = Assert.Throws<ArgumentException>(() => Generator.Generate(model, [[1, 2], []], SamplingOptions.Greedy));
        Assert.Contains("prompts[1]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Generator.Generate(model, [[1, 50]], SamplingOptions.Greedy));
        Assert.Contains("token 50", e.Message);
        e = Assert.Throws<ArgumentException>(() => Generator.Generate(model, [[1]], SamplingOptions.Greedy with { StopTokenIds = [99] }));
        Assert.Contains("StopTokenIds[0]", e.Message);
    }
}
