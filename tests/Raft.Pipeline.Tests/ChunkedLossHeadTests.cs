using Raft.Kernels;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>
/// The student's lm_head + loss by chunks of rows (<see cref="ChunkedLossHead"/>) against the unchunked path (the whole
/// [rows, V] logits, <see cref="StepLoss.Compute(ILossKernels, PackedBatch, Span{float}, int, float, float)"/>, one
/// backward): the same losses and gradients to fp32 tolerance, for chunks of 1 row, sizes that do not divide the rows,
/// and chunks of at least all rows; RAFT (distillation + cross-entropy, weighted) and SFT.
/// </summary>
public class ChunkedLossHeadTests
{
    private static PackedBatch Batch(int vocab, int t, bool raft, int k, Random rng)
    {
        int nKd = raft ? 3 : 0, nSft = 2, rowsKd = nKd * t;
        var inputs = Enumerable.Range(0, (nKd + nSft) * t).Select(_ => rng.Next(vocab)).ToArray();
        var targets = Enumerable.Range(0, nSft * t).Select(i => i % 3 == 0 ? -100 : rng.Next(vocab)).ToArray();
        var weights = Enumerable.Range(0, rowsKd).Select(i => i % t < 2 ? 0f : 1f).ToArray();
        var idx = new int[rowsKd * k];
        var probs = new float[rowsKd * k];
        for (int r = 0; r < rowsKd; r++)
        {
            var ids = Enumerable.Range(0, vocab).OrderBy(_ => rng.Next()).Take(k).ToArray();
            var p = ids.Select(_ => rng.NextDouble() + 0.1).ToArray();
            double s = p.Sum();
            for (int j = 0; j < k; j++) { idx[r * k + j] = ids[j]; probs[r * k + j] = (float)(p[j] / s); }
        }
        return new PackedBatch
        {
            Inputs = inputs, SeqLen = t, KdSequences = nKd, SftSequences = nSft, Targets = targets, Tokens = inputs.Length,
            TeacherIndices = raft ? idx : [], TeacherProbs = raft ? probs : [], RowWeights = raft ? weights : [],
        };
    }

    [Theory]
    [InlineData(true, 1)]
    [InlineData(true, 4)]     // does not divide the 25 rows, and a chunk straddles the rollout/answer boundary
    [InlineData(true, 7)]
    [InlineData(true, 25)]    // all rows: the unchunked path
    [InlineData(true, 1000)]
    [InlineData(false, 3)]
    [InlineData(false, 1000)]
    public void ChunkedLossesAndGradientsEqualTheUnchunkedOnes(bool raft, int chunk)
    {
        var model = TinyModels.Model(seed: 71, layers: 2);
        model.Threads = 1;
        int v = model.Config.VocabSize, t = 5, k = 4;
        var rng = new Random(72);
        var batch = Batch(v, t, raft, k, rng);
        var kernels = new CpuKernels(1);
        var loss = new StepLoss(new DistillSettings(k, 1.5f), raft);
        double wKd = 0.7, wSft = 1.3;

        // unchunked: the whole logits
        var acts = new ModelActivations();
        var logits = model.Forward(batch.Inputs, batch.Sequences, t, acts);
        var expected = loss.Compute(kernels, batch, logits, v, 0, 0);
        StepLoss.Weigh(logits, batch, v, wKd, wSft);
        var expectedGrads = model.Parameters.ZerosLike();
        model.Backward(acts, logits, expectedGrads);

        var head = new ChunkedLossHead(chunk);
        var chunkActs = new ModelActivations();
        model.ForwardHidden(batch.Inputs, batch.Sequences, t, chunkActs);
        var got = head.Forward(model, chunkActs, batch, loss, kernels, 0, 0);
        Assert.True(got.Finite);
        Assert.Equal(expected.Kd.Loss, got.Kd.Loss, 1e-6 * Math.Max(1, Math.Abs(expected.Kd.Loss)));
        Assert.Equal(expected.Ce.Loss, got.Ce.Loss, 1e-6 * Math.Max(1, Math.Abs(expected.Ce.Loss)));
        if (raft) Assert.True(expected.Kd.Loss > 0);
        head.Weigh(model, wKd, wSft);
        var grads = model.Parameters.ZerosLike();
        var dHidden = head.Backward(model, chunkActs, grads);
        model.BackwardFromHidden(chunkActs, dHidden, grads);
        foreach (var g in grads.Tensors)
        {
            var e = expectedGrads[g.Name].Data;
            double maxDiff = 0, maxRef = 0;
            for (int i = 0; i < e.Length; i++) { maxDiff = Math.Max(maxDiff, Math.Abs(g.Data[i] - e[i])); maxRef = Math.Max(maxRef, Math.Abs(e[i])); }
            Assert.True(maxDiff <= 1e-5 * maxRef + 1e-12, $"chunk {chunk}: {g.Name} differs by {maxDiff} (max {maxRef})");
        }
        Assert.Contains(grads.Tensors, g => g.Data.Any(x => x != 0));
    }
}
