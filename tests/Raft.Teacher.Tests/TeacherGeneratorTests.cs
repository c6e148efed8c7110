using Raft.Model;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

public sealed class TeacherGeneratorTests : IDisposable
{
    private const int Vocab = 37;
    private readonly TempDirectory _dir = new();
    private readonly ModelConfig _config = Tiny(tied: false, bias: true, vocab: Vocab);
    private readonly TensorSet _weights;
    private readonly TeacherSession _teacher;

    public TeacherGeneratorTests()
    {
        _weights = RandomParameters(_config, seed: 17);
        OnnxExporter.Export(_config, _weights, _dir.Path);
        _teacher = TeacherSession.Open(_dir.Path, Cpu());
    }

    public void Dispose()
    {
        _teacher.Dispose();
        _dir.Dispose();
    }

    /// <summary>Prompts of lengths 5, 3, 5, 7, 3, 1, 5, 3, 9, 5 (several groups, some with more than one member).</summary>
    private static int[][] Prompts() =>
        new[] { 5, 3, 5, 7, 3, 1, 5, 3, 9, 5 }.Select((n, i) => RandomTokens(n, Vocab, seed: 300 + i)).ToArray();

    private static void AssertSame(IReadOnlyList<Generation> expected, IReadOnlyList<Generation> actual, float lpTolerance, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].Tokens.SequenceEqual(actual[i].Tokens),
                $"{what}, sequence {i}: [{string.Join(", ", actual[i].Tokens)}] vs [{string.Join(", ", expected[i].Tokens)}]");
            Assert.Equal(expected[i].Reason, actual[i].Reason);
            for (int j = 0; j < expected[i].Tokens.Length; j++)
            {
                Assert.True(Math.Abs(expected[i].LogProbs[j] - actual[i].LogProbs[j]) <= lpTolerance,
                    $"{what}, sequence {i}, token {j}: log-prob {actual[i].LogProbs[j]} vs {expected[i].LogProbs[j]}");
                Assert.True(Math.Abs(expected[i].ModelLogProbs[j] - actual[i].ModelLogProbs[j]) <= lpTolerance,
                    $"{what}, sequence {i}, token {j}: model log-prob {actual[i].ModelLogProbs[j]} vs {expected[i].ModelLogProbs[j]}");
            }
        }
    }

    [Fact]
    public void GreedyWithTheCacheEqualsFullRecomputation()
    {
        var prompts = Prompts();
        var options = SamplingOptions.Greedy with { MaxNewTokens = 12 };
        var cached = TeacherGenerator.Generate(_teacher, prompts, options, maxBatch: 4);

        for (int i = 0; i < prompts.Length; i++)
        {
            // no cache: the whole sequence again at every step, the last position's logits picked
            var seq = prompts[i].Select(t => (long)t).ToList();
            var tokens = new List<int>();
            var modelLp = new List<float>();
            for (int step = 0; step < options.MaxNewTokens; step++)
            {
                float[] logits = _teacher.Forward(seq.ToArray(), 1, seq.Count);
                var s = Sampler.Sample(logits.AsSpan((seq.Count - 1) * Vocab, Vocab), options, (ulong)i, (ulong)step);
                tokens.Add(s.TokenId); modelLp.Add(s.ModelLogProb);
                seq.Add(s.TokenId);
            }
            Assert.Equal(tokens, cached[i].Tokens);
            Assert.Equal(StopReason.MaxNewTokens, cached[i].Reason);
            Assert.All(cached[i].LogProbs, lp => Assert.Equal(0f, lp)); // greedy: a point mass
            for (int j = 0; j < tokens.Count; j++)
                Assert.True(Math.Abs(modelLp[j] - cached[i].ModelLogProbs[j]) < 1e-4, $"sequence {i}, token {j}: {cached[i].ModelLogProbs[j]} vs {modelLp[j]}");
        }
        // not degenerate: the continuations differ and are not one repeated token
        Assert.True(cached.Select(g => string.Join(",", g.Tokens)).Distinct().Count() > 1);
        Assert.Contains(cached, g => g.Tokens.Distinct().Count() > 1);
    }

    [Fact]
    public void GreedyEqualsTheEnginesGenerator()
    {
        var prompts = Prompts();
        var options = SamplingOptions.Greedy with { MaxNewTokens = 16 };
        var engine = Generator.Generate(new LlamaModel(_config, _weights), prompts, options);
        var teacher = TeacherGenerator.Generate(_teacher, prompts, options);
        AssertSame(engine, teacher, 1e-4f, "greedy");
    }

    [Theory]
    [InlineData(1.0f, 0, 1.0f)]
    [InlineData(0.7f, 8, 1.0f)]
    [InlineData(1.3f, 0, 0.9f)]
    [InlineData(1.0f, 10, 0.8f)]
    public void SampledWithASeedEqualsTheEnginesGenerator(float temperature, int topK, float topP)
    {
        // Same (seed, index, step) → same uniform draw, so the same token unless the two logits rows differ across a
        // cumulative-probability boundary (they differ by ~1e-6, the draw lands that close with probability ~1e-5 a token);
        // the seeds here are fixed, so the outcome is deterministic. Log-probs are compared within 1e-4.
        var prompts = Prompts();
        var options = new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, MaxNewTokens = 16, Seed = 1234 };
        var engine = Generator.Generate(new LlamaModel(_config, _weights), prompts, options, firstSequenceIndex: 40);
        var teacher = TeacherGenerator.Generate(_teacher, prompts, options, firstSequenceIndex: 40);
        AssertSame(engine, teacher, 1e-4f, $"T={temperature}, k={topK}, p={topP}");
        Assert.Contains(teacher, g => g.LogProbs.Any(lp => lp < 0)); // it did sample
    }

    [Fact]
    public void SampledResultsDoNotDependOnTheBatching()
    {
        var prompts = Prompts();
        var options = new SamplingOptions { Temperature = 1.2f, TopK = 12, TopP = 0.95f, MaxNewTokens = 10, Seed = 99, StopTokenIds = [3] };
        var one = TeacherGenerator.Generate(_teacher, prompts, options, firstSequenceIndex: 1000, maxBatch: 1);
        var eight = TeacherGenerator.Generate(_teacher, prompts, options, firstSequenceIndex: 1000, maxBatch: 8);
        var all = TeacherGenerator.Generate(_teacher, prompts, options, firstSequenceIndex: 1000);
        AssertSame(one, eight, 1e-5f, "maxBatch 8 vs 1");
        AssertSame(one, all, 1e-5f, "maxBatch 64 vs 1");

        // a split across calls (as across ranks) with the global index of its first prompt gives the same sequences
        var tail = TeacherGenerator.Generate(_teacher, prompts[4..], options, firstSequenceIndex: 1004, maxBatch: 3);
        AssertSame(one.Skip(4).ToList(), tail, 1e-5f, "prompts 4.. from index 1004");

        // and another seed or another index gives other tokens
        var otherSeed = TeacherGenerator.Generate(_teacher, prompts, options with { Seed = 100 }, firstSequenceIndex: 1000);
        Assert.NotEqual(one.Select(g => string.Join(",", g.Tokens)), otherSeed.Select(g => string.Join(",", g.Tokens)));
    }

    [Fact]
    public void StopTokensEndEachSequenceOnItsOwn()
    {
        var prompts = Prompts();
        var free = TeacherGenerator.Generate(_teacher, prompts, SamplingOptions.Greedy with { MaxNewTokens = 10 });
        // a stop id that the first sequence produces after a few tokens
        int stopAt = Enumerable.Range(1, 9).First(j => !free[0].Tokens[..j].Contains(free[0].Tokens[j]));
        int stopId = free[0].Tokens[stopAt];
        var options = SamplingOptions.Greedy with { MaxNewTokens = 10, StopTokenIds = [stopId, Vocab - 1] };
        var stopped = TeacherGenerator.Generate(_teacher, prompts, options, maxBatch: 4);

        int stoppedCount = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            int first = Array.FindIndex(free[i].Tokens, t => t == stopId || t == Vocab - 1);
            if (first < 0)
            {
                Assert.Equal(free[i].Tokens, stopped[i].Tokens);
                Assert.Equal(StopReason.MaxNewTokens, stopped[i].Reason);
            }
            else
            {
                stoppedCount++;
                Assert.Equal(free[i].Tokens[..(first + 1)], stopped[i].Tokens); // the stop token is kept, last
                Assert.Equal(StopReason.StopToken, stopped[i].Reason);
                Assert.Equal(stopped[i].Tokens.Length, stopped[i].LogProbs.Length);
                Assert.Equal(stopped[i].Tokens.Length, stopped[i].ModelLogProbs.Length);
            }
        }
        Assert.Equal(StopReason.StopToken, stopped[0].Reason);
        Assert.Equal(stopAt + 1, stopped[0].Tokens.Length);
        Assert.True(stoppedCount < prompts.Length, "some sequences must run on past the others' stop");
    }

    [Fact]
    public void AFullContextEndsWithContextFull()
    {
        // max_position_embeddings is 64: a 60-token prompt has room for 4 new tokens
        int[] longPrompt = RandomTokens(60, Vocab, seed: 5), shortPrompt = RandomTokens(4, Vocab, seed: 6);
        var options = SamplingOptions.Greedy with { MaxNewTokens = 10 };
        var g = TeacherGenerator.Generate(_teacher, [longPrompt, shortPrompt], options);
        Assert.Equal(StopReason.ContextFull, g[0].Reason);
        Assert.Equal(4, g[0].Tokens.Length);
        Assert.Equal(StopReason.MaxNewTokens, g[1].Reason);
        Assert.Equal(10, g[1].Tokens.Length);
        var engine = Generator.Generate(new LlamaModel(_config, _weights), [longPrompt, shortPrompt], options);
        AssertSame(engine, g, 1e-4f, "context full");
    }

    [Fact]
    public void EveryStopRuleEndsTheSameSequencesAsTheEnginesGenerator()
    {
        // one call where rows stop on a stop token, on MaxNewTokens and on a full context (a 58-token prompt: room 6),
        // batched across length groups; both generators decode through the same loop, so they must agree row by row
        int[][] prompts = [.. Prompts(), RandomTokens(58, Vocab, seed: 7), RandomTokens(58, Vocab, seed: 8)];
        var engineModel = new LlamaModel(_config, _weights);
        var sampling = new SamplingOptions { Temperature = 0.8f, TopK = 12, MaxNewTokens = 8, Seed = 99 };
        // a stop id some short rows produce and the long rows do not (so that those run into the end of the context)
        var free = Generator.Generate(engineModel, prompts, sampling, firstSequenceIndex: 9);
        var longRows = free.Skip(free.Count - 2).SelectMany(g => g.Tokens).ToHashSet();
        int stopId = free.Take(free.Count - 2).SelectMany(g => g.Tokens.Skip(1)).First(t => !longRows.Contains(t));
        var options = sampling with { StopTokenIds = [stopId] };
        var engine = Generator.Generate(engineModel, prompts, options, firstSequenceIndex: 9, maxBatch: 3);
        var teacher = TeacherGenerator.Generate(_teacher, prompts, options, firstSequenceIndex: 9, maxBatch: 3);
        AssertSame(engine, teacher, 1e-4f, "stop rules");
        Assert.Contains(teacher, g => g.Reason == StopReason.StopToken);
        Assert.Contains(teacher, g => g.Reason == StopReason.MaxNewTokens);
        Assert.Contains(teacher, g => g.Reason == StopReason.ContextFull);
        Assert.All(teacher.Where(g => g.Reason == StopReason.ContextFull), g => Assert.Equal(6, g.Tokens.Length));
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        var ok = SamplingOptions.Greedy with { MaxNewTokens = 2 };
        ArgumentException Bad(IReadOnlyList<int[]> prompts, SamplingOptions? options = null, int maxBatch = 64) =>
            Assert.ThrowsAny<ArgumentException>(() => TeacherGenerator.Generate(_teacher, prompts, options ?? ok, maxBatch: maxBatch));

        var e = Bad([[1, 2], []]);
        Assert.Equal("prompts", e.ParamName);
        Assert.Contains("prompts[1] is empty", e.Message);
        e = Bad([[1, 2], [3, Vocab]]);
        Assert.Contains("prompts[1] holds token 37, outside 0..36", e.Message);
        Assert.Contains("token -1", Bad([[-1]]).Message);
        Assert.Contains("prompts[0] is null", Bad([null!]).Message);
        e = Bad([RandomTokens(64, Vocab, 1)]);
        Assert.Contains("64 tokens", e.Message);
        Assert.Contains("max_position_embeddings is 64", e.Message);
        e = Bad([[1]], maxBatch: 0);
        Assert.Equal("maxBatch", e.ParamName);
        Assert.Contains("got 0", e.Message);
        e = Bad([[1]], ok with { StopTokenIds = [2, Vocab + 5] });
        Assert.Contains("StopTokenIds[1]", e.Message);
        Assert.Contains("42", e.Message);
        Assert.Throws<ArgumentNullException>(() => TeacherGenerator.Generate(null!, [[1]], ok));
        Assert.Throws<ArgumentNullException>(() => TeacherGenerator.Generate(_teacher, null!, ok));
        Assert.Throws<ArgumentNullException>(() => TeacherGenerator.Generate(_teacher, [[1]], null!));
        Assert.Empty(TeacherGenerator.Generate(_teacher, [], ok));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4)]
    public void PrefillInChunksGivesTheSameResult(int positionsPerChunk)
    {
        // a budget of positionsPerChunk positions of a batch of 4 rows: 9-token prompts take ⌈9 / positions⌉ calls
        var prompts = Enumerable.Range(0, 4).Select(i => RandomTokens(9, Vocab, seed: 900 + i)).ToArray();
        var options = new SamplingOptions { Temperature = 0.9f, TopK = 20, MaxNewTokens = 6, Seed = 7 };
        var whole = TeacherGenerator.Generate(_teacher, prompts, options);
        var chunked = TeacherGenerator.Generate(_teacher, prompts, options, 0, 64, prefillBudgetBytes: positionsPerChunk * 4L * Vocab * sizeof(float));
        AssertSame(whole, chunked, 1e-5f, $"prefill in chunks of {positionsPerChunk}");
    }
}
