using Raft.Kernels;
using Raft.Model;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

public class TeacherScorerTests
{
    [Fact]
    public void ChunkedScoringEqualsUnchunkedAndTheEngineReference()
    {
        var config = Tiny(false, true, vocab: 37);
        var weights = RandomParameters(config, seed: 51);
        int[] context = RandomTokens(6, config.VocabSize, seed: 1), rollout = RandomTokens(9, config.VocabSize, seed: 2);
        const int k = 5;
        const float tau = 2f;

        // reference: the engine's full forward over context ++ rollout, rows C−1 .. C+R−2, top-K by the kernels
        int[] all = [.. context, .. rollout];
        float[] logits = new LlamaModel(config, weights).Forward(all, 1, all.Length);
        int v = config.VocabSize, rows = rollout.Length;
        var kernels = new CpuKernels(1);
        var refIdx = new int[rows * k];
        var refProbs = new float[rows * k];
        kernels.TopKSoftmax(logits.AsSpan((context.Length - 1) * v, rows * v), rows, v, k, tau, refIdx, refProbs);

        using var dir = new TempDirectory();
        OnnxExporter.Export(config, weights, dir.Path);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        var scorer = new TeacherScorer(teacher, kernels);
        int[] ctx = context, ro = rollout;
        var whole = scorer.Score(ctx, ro, new DistillSettings(k, tau));
        Assert.True(scorer.ChunkPositions(TeacherScorer.DefaultMemoryBudgetBytes) >= all.Length, "the default budget scores in one chunk");
        Assert.Equal(rows, whole.Rows);
        Assert.Equal(refIdx, whole.Indices);
        for (int i = 0; i < refProbs.Length; i++) Assert.True(Math.Abs(whole.Probs[i] - refProbs[i]) < 1e-4, $"prob {i}: {whole.Probs[i]} vs {refProbs[i]}");

        foreach (int positions in new[] { 1, 2, 4, 5 })
        {
            Assert.Equal(positions, scorer.ChunkPositions(positions * v * 4L));
            var chunked = scorer.Score(ctx, ro, new DistillSettings(k, tau), memoryBudgetBytes: positions * v * 4L);
            Assert.Equal(whole.Indices, chunked.Indices);
            for (int i = 0; i < whole.Probs.Length; i++)
                Assert.True(Math.Abs(chunked.Probs[i] - whole.Probs[i]) < 1e-5, $"chunk {positions}, prob {i}: {chunked.Probs[i]} vs {whole.Probs[i]}");
        }
    }

    [Fact]
    public void BatchScoringOfUnequalLengthsEqualsOneByOne()
    {
        var config = Tiny(true, true, vocab: 29);
        var weights = RandomParameters(config, seed: 71);
        using var dir = new TempDirectory();
        OnnxExporter.Export(config, weights, dir.Path);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        var scorer = new TeacherScorer(teacher, new CpuKernels(1));
        int[] cl = [3, 1, 7], rl = [6, 2, 1];
        var contexts = cl.Select((n, i) => RandomTokens(n, 29, 100 + i)).ToArray();
        var rollouts = rl.Select((n, i) => RandomTokens(n, 29, 200 + i)).ToArray();
        const int k = 4;
        foreach (long budget in new[] { TeacherScorer.DefaultMemoryBudgetBytes, 3L * 29 * 4 * 2, 1 })
        {
            var batch = scorer.ScoreBatch(contexts, rollouts, new DistillSettings(k, 0.7f), budget);
            Assert.Equal(3, batch.Length);
            for (int b = 0; b < 3; b++)
            {
                var one = scorer.Score(contexts[b], rollouts[b], new DistillSettings(k, 0.7f));
                Assert.Equal(rl[b], batch[b].Rows);
                Assert.Equal(one.Indices, batch[b].Indices);
                for (int i = 0; i < one.Probs.Length; i++)
                    Assert.True(Math.Abs(one.Probs[i] - batch[b].Probs[i]) < 1e-5, $"budget {budget}, sequence {b}, prob {i}: {batch[b].Probs[i]} vs {one.Probs[i]}");
                Assert.All(batch[b].Probs, p => Assert.True(p > 0 && p <= 1));
            }
        }
        Assert.Equal("rollouts", Assert.Throws<ArgumentException>(() => scorer.ScoreBatch(contexts, rollouts[..2], new DistillSettings(k, 1f))).ParamName);
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        var config = Tiny(true, false);
        using var dir = new TempDirectory();
        OnnxExporter.Export(config, RandomParameters(config, seed: 4), dir.Path);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        var scorer = new TeacherScorer(teacher, new CpuKernels(1));
        Assert.Equal("context", Assert.Throws<ArgumentException>(() => scorer.Score([], [1], new DistillSettings(2, 1f))).ParamName);
        Assert.Equal("rollout", Assert.Throws<ArgumentException>(() => scorer.Score([1], [], new DistillSettings(2, 1f))).ParamName);
        // K and τ are checked once, by DistillSettings.Validate, with the field's name
        Assert.Equal("TopK", Assert.Throws<ArgumentException>(() => scorer.Score([1], [2], new DistillSettings(12, 1f))).ParamName);
        Assert.Equal("Temperature", Assert.Throws<ArgumentException>(() => scorer.Score([1], [2], new DistillSettings(2, 0f))).ParamName);
        Assert.Equal("memoryBudgetBytes", Assert.Throws<ArgumentOutOfRangeException>(() => scorer.Score([1], [2], new DistillSettings(2, 1f), 0)).ParamName);
    }
}
