using Raft.Kernels;
using Raft.Model;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

/// <summary>
/// A padded vocabulary (embedding rows beyond the tokenizer): the teacher's top-K never holds a padding id, even when the
/// padding rows' logits are the largest, and equals the top-K of the real columns alone — for the engine teacher and
/// for the ONNX teacher.
/// </summary>
public class PaddedVocabularyTeacherTests
{
    private const int Vocab = 40, Limit = 29, K = 6;
    private const float Tau = 1.5f;

    private static (ModelConfig Config, TensorSet Weights) PaddedModel(int seed)
    {
        var config = Tiny(tied: false, bias: true, vocab: Vocab);
        var weights = RandomParameters(config, seed);
        var head = weights["lm_head.weight"].Data;
        var rng = new Random(seed + 1);
        for (int row = Limit; row < Vocab; row++)
            for (int j = 0; j < config.HiddenSize; j++) head[row * config.HiddenSize + j] = (float)(6 * Gauss.Next(rng));
        return (config, weights);
    }

    /// <summary>The reference: the engine's forward over context ++ rollout, then the top-K of each row's first <see cref="Limit"/> columns.</summary>
    private static (int[] Idx, float[] P) Expected(ModelConfig config, TensorSet weights, int[] context, int[] rollout)
    {
        int[] all = [.. context, .. rollout[..^1]];
        var logits = new LlamaModel(config, weights).Forward(all, 1, all.Length);
        int rows = rollout.Length;
        var real = new float[rows * Limit];
        for (int r = 0; r < rows; r++) logits.AsSpan((context.Length - 1 + r) * Vocab, Limit).CopyTo(real.AsSpan(r * Limit));
        var idx = new int[rows * K];
        var p = new float[rows * K];
        ReferenceKernels.Instance.TopKSoftmax(real, rows, Limit, K, Tau, idx, p);
        return (idx, p);
    }

    [Fact]
    public void Engine_and_onnx_teachers_never_put_a_padding_id_in_the_top_k()
    {
        int seed = Environment.TickCount;
        var (config, weights) = PaddedModel(seed);
        var rng = new Random(seed);
        int[][] contexts = [RandomTokens(5, Limit, seed), RandomTokens(2, Limit, seed + 1)];
        int[][] rollouts = [RandomTokens(7, Limit, seed + 2), RandomTokens(3, Limit, seed + 3)];
        var settings = new DistillSettings(K, Tau);

        using var free = new EngineTeacher(new LlamaModel(config, weights), new CpuKernels(1));
        Assert.Contains(free.ScoreEach(contexts, rollouts, settings).SelectMany(t => t.Indices), i => i >= Limit); // the test has teeth

        using var engine = new EngineTeacher(new LlamaModel(config, weights), new CpuKernels(1), vocabLimit: Limit);
        using var dir = new TempDirectory();
        OnnxExporter.Export(config, weights, dir.Path);
        using var onnx = OnnxTeacher.Open(dir.Path, Cpu(), new CpuKernels(1), vocabLimit: Limit);
        foreach (ITeacher teacher in new ITeacher[] { engine, onnx })
        {
            Assert.Equal(Limit, teacher.VocabLimit);
            var got = teacher.ScoreEach(contexts, rollouts, settings);
            for (int b = 0; b < contexts.Length; b++)
            {
                var (idx, p) = Expected(config, weights, contexts[b], rollouts[b]);
                Assert.All(got[b].Indices, i => Assert.InRange(i, 0, Limit - 1));
                Assert.Equal(idx, got[b].Indices);
                for (int i = 0; i < p.Length; i++) Assert.True(Math.Abs(p[i] - got[b].Probs[i]) < 1e-4, $"{teacher.Description} pair {b} entry {i}: {got[b].Probs[i]} vs {p[i]}");
            }
        }
        var e = Assert.Throws<ArgumentException>(() => engine.ScoreEach(contexts, rollouts, new DistillSettings(Limit + 1, Tau)));
        Assert.Contains($"must be ≤ the {Limit} ids the tokenizer has", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new EngineTeacher(new LlamaModel(config, weights), new CpuKernels(1), vocabLimit: Vocab + 1));
    }
}
