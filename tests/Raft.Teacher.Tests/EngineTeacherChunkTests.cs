using Raft.Kernels;
using Raft.Model;

namespace Raft.Teacher.Tests;

/// <summary>
/// The engine teacher's lm_head by chunks of rows (only the rollout rows projected, a chunk at a time) against the full
/// forward's logits: the same top-K indices and probabilities, for chunks of 1 row, sizes that do not divide a rollout,
/// and larger than every rollout.
/// </summary>
public class EngineTeacherChunkTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(1000)]
    public void ChunkedScoresEqualTheFullForwardsTopK(int chunk)
    {
        var config = TestModels.Tiny(tied: true, bias: true, vocab: 29);
        var model = new LlamaModel(config, RandomData.RandomParameters(config, 81)) { Threads = 1 };
        int[][] contexts = [RandomData.RandomTokens(5, 29, 82), RandomData.RandomTokens(3, 29, 83), RandomData.RandomTokens(2, 29, 84)];
        int[][] rollouts = [RandomData.RandomTokens(7, 29, 85), RandomData.RandomTokens(4, 29, 86), RandomData.RandomTokens(1, 29, 87)];
        var settings = new DistillSettings(6, 1.5f);
        var kernels = new CpuKernels(1);
        using var teacher = new EngineTeacher(model, kernels, logitsChunkRows: chunk);
        var got = teacher.ScoreEach(contexts, rollouts, settings);
        for (int b = 0; b < contexts.Length; b++)
        {
            // the reference: the whole sequence's logits from the full forward, the rollout rows' top-K
            var (c, r) = (contexts[b], rollouts[b]);
            int[] tokens = [.. c, .. r.AsSpan(0, r.Length - 1)];
            var logits = model.Forward(tokens, 1, tokens.Length);
            int v = config.VocabSize, k = settings.TopK;
            var idx = new int[r.Length * k];
            var probs = new float[r.Length * k];
            kernels.TopKSoftmax(logits.AsSpan((c.Length - 1) * v, r.Length * v), r.Length, v, k, settings.Temperature, idx, probs);
            Assert.Equal(idx, got[b].Indices);
            for (int i = 0; i < probs.Length; i++) Assert.Equal(probs[i], got[b].Probs[i], 1e-6f);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new EngineTeacher(model, kernels, logitsChunkRows: -1));
    }
}
