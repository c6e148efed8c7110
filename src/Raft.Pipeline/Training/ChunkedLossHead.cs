using Raft.Kernels;
using Raft.Model;

namespace Raft.Pipeline.Training;

/// <summary>
/// The student's lm_head fused with the step's loss, a chunk of rows at a time (Liger-Kernel's fused linear + loss, on
/// the CPU): this class owns the chunking and the backward, <see cref="StepLoss.ComputeRows"/> adds the math. The forward
/// (<see cref="Forward"/>) computes each chunk's logits [chunk, V] from the recorded hidden rows, its losses (the
/// batch's normalizers, so the chunks' losses sum to the batch's) and drops them; the balancer's weights are known only
/// once every loss is, so <see cref="Backward"/> recomputes each chunk's logits, the loss gradient in place, weighs it
/// and runs lm_head's backward for those rows (dHidden, and dW of lm_head or the tied embedding, accumulated in row
/// order). A batch of at most one chunk keeps its logits between the two (one lm_head forward, as unchunked).
/// Peak memory: one chunk of logits instead of [rows, V].
/// </summary>
internal sealed class ChunkedLossHead(int chunkRows)
{
    private float[] _logits = [];
    private float[] _dHidden = [];
    private PackedBatch? _batch;
    private StepLoss? _loss;
    private ILossKernels? _kernels;
    private float _kdNormalizer, _ceNormalizer;
    private double _wKd = 1, _wSft = 1;
    private bool _kept;

    /// <summary>Rows per chunk.</summary>
    public int ChunkRows { get; } = chunkRows > 0 ? chunkRows : throw new ArgumentOutOfRangeException(nameof(chunkRows), chunkRows, "must be > 0.");

    /// <summary>
    /// The losses of the recorded forward <paramref name="acts"/> of <paramref name="batch"/>. Normalizers of 0 mean this
    /// call's counts (one process), as <see cref="StepLoss.Compute(ILossKernels, PackedBatch, Span{float}, int, float, float)"/> takes them.
    /// </summary>
    public StepLosses Forward(LlamaModel model, ModelActivations acts, PackedBatch batch, StepLoss loss, ILossKernels kernels,
        float kdNormalizer, float ceNormalizer)
    {
        int rows = batch.Sequences * batch.SeqLen, v = model.Config.VocabSize;
        (_batch, _loss, _kernels, _wKd, _wSft) = (batch, loss, kernels, 1, 1);
        _kept = rows <= ChunkRows;
        if (_kept)
        {
            // one chunk: the unchunked path, logits kept for the backward
            (_kdNormalizer, _ceNormalizer) = (kdNormalizer, ceNormalizer);
            var all = Logits(model, acts, 0, rows);
            return loss.Compute(kernels, batch, all, v, kdNormalizer, ceNormalizer);
        }
        // every chunk is normalised by the batch's counts (or the global ones given)
        _kdNormalizer = kdNormalizer > 0 ? kdNormalizer : (float)batch.KdCount();
        _ceNormalizer = ceNormalizer > 0 ? ceNormalizer : (float)batch.CeCount();
        StepLosses total = default;
        for (int r0 = 0; r0 < rows; r0 += ChunkRows)
        {
            int n = Math.Min(ChunkRows, rows - r0);
            var part = loss.ComputeRows(kernels, batch, r0, n, Logits(model, acts, r0, n), v, _kdNormalizer, _ceNormalizer);
            total = r0 == 0 ? part : total.Plus(part);
            if (!part.Finite) return total with { Finite = false };
        }
        return total;
    }

    /// <summary>The balancer's weights of the two parts (RAFT); the gradient is the weighted one from here on.</summary>
    public void Weigh(LlamaModel model, double wKd, double wSft)
    {
        (_wKd, _wSft) = (wKd, wSft);
        if (_kept) StepLoss.Weigh(_logits, _batch!, model.Config.VocabSize, wKd, wSft);
    }

    /// <summary>
    /// lm_head's backward of the weighted loss, chunk by chunk: ACCUMULATES lm_head's (or the tied embedding's) gradient
    /// into <paramref name="grads"/> when it holds it and returns dL/dHidden [rows, C] (this instance's buffer), from
    /// which <see cref="LlamaModel.BackwardFromHidden"/> goes on.
    /// </summary>
    public ReadOnlySpan<float> Backward(LlamaModel model, ModelActivations acts, TensorSet grads)
    {
        var b = _batch ?? throw new InvalidOperationException("Backward before Forward.");
        int rows = b.Sequences * b.SeqLen, v = model.Config.VocabSize, d = model.Config.HiddenSize;
        if (_dHidden.Length < (long)rows * d) _dHidden = new float[(long)rows * d];
        var hidden = acts.Hidden;
        for (int r0 = 0; r0 < rows; r0 += ChunkRows)
        {
            int n = Math.Min(ChunkRows, rows - r0);
            Span<float> logits;
            if (_kept) logits = _logits.AsSpan(0, n * v);
            else
            {
                logits = Logits(model, acts, r0, n);
                _loss!.ComputeRows(_kernels!, b, r0, n, logits, v, _kdNormalizer, _ceNormalizer);   // the same gradient as in the forward
                StepLoss.WeighRows(logits, b, r0, n, v, _wKd, _wSft);
            }
            model.LmHeadBackward(logits, hidden.Slice(r0 * d, n * d), n, _dHidden.AsSpan(r0 * d, n * d), grads);
        }
        return _dHidden.AsSpan(0, rows * d);
    }

    private Span<float> Logits(LlamaModel model, ModelActivations acts, int r0, int n)
    {
        int v = model.Config.VocabSize, d = model.Config.HiddenSize;
        if (_logits.Length < (long)n * v) _logits = new float[(long)n * v];
        var logits = _logits.AsSpan(0, n * v);
        model.LmHead(acts.Hidden.Slice(r0 * d, n * d), n, logits);
        return logits;
    }
}
