using Raft.Kernels;
using Raft.Model;

namespace Raft.Teacher;

/// <summary>
/// A frozen <see cref="LlamaModel"/> as the teacher: batched forward over context ++ rollout up to lm_head's input, then
/// lm_head on the rollout rows only, a chunk of rows at a time (<see cref="LogitsChunk"/>), each chunk's top-K by the
/// kernels: the teacher never holds [rows, V] logits for the whole batch.
/// </summary>
public sealed class EngineTeacher : ITeacher
{
    private readonly LlamaModel _model;
    private readonly ILossKernels _kernels;
    private readonly int _maxBatch, _chunkRows;
    private float[] _logits = [];

    /// <summary>
    /// Wraps <paramref name="model"/> (never modified) and reduces its rows with <paramref name="kernels"/>;
    /// <paramref name="vocabLimit"/> is the tokenizer's size when the embedding has padding rows (0: none);
    /// <paramref name="logitsChunkRows"/> the rows of logits computed at a time (0: <see cref="LogitsChunk.Rows"/>'s default).
    /// </summary>
    public EngineTeacher(LlamaModel model, ILossKernels kernels, string description = "engine", int maxBatch = 64, int vocabLimit = 0,
        int logitsChunkRows = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(kernels);
        if (maxBatch < 1) throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, "maxBatch must be ≥ 1.");
        if (logitsChunkRows < 0) throw new ArgumentOutOfRangeException(nameof(logitsChunkRows), logitsChunkRows, "logitsChunkRows must be ≥ 0 (0: the default).");
        _model = model; _kernels = kernels; _maxBatch = maxBatch;
        _chunkRows = LogitsChunk.Rows(logitsChunkRows, model.Config.VocabSize);
        VocabLimit = TeacherArguments.VocabLimit(vocabLimit, model.Config.VocabSize, nameof(vocabLimit));
        Description = description;
    }

    /// <inheritdoc/>
    public string Description { get; }

    /// <inheritdoc/>
    public int VocabSize => _model.Config.VocabSize;

    /// <inheritdoc/>
    public int VocabLimit { get; }

    /// <inheritdoc/>
    public void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings, TopKRows into)
    {
        TeacherArguments.Score(contexts, rollouts, settings, into, VocabSize);
        TeacherArguments.TopKFits(settings, VocabLimit, VocabSize);
        int v = VocabSize, k = settings.TopK;
        for (int start = 0; start < contexts.Count; start += _maxBatch)
        {
            int batch = Math.Min(_maxBatch, contexts.Count - start);
            int t = 0;
            for (int b = 0; b < batch; b++) t = Math.Max(t, contexts[start + b].Length + rollouts[start + b].Length - 1);
            if (t > _model.Config.MaxPositionEmbeddings)
                throw new ArgumentException($"a context with its rollout takes {t} positions; the teacher's max_position_embeddings is {_model.Config.MaxPositionEmbeddings}.", nameof(contexts));
            var tokens = new int[batch * t];
            for (int b = 0; b < batch; b++)
            {
                var (c, r) = (contexts[start + b], rollouts[start + b]);
                c.CopyTo(tokens, b * t);
                r.AsSpan(0, r.Length - 1).CopyTo(tokens.AsSpan(b * t + c.Length));
            }
            var hidden = _model.ForwardHidden(tokens, batch, t);
            int d = _model.Config.HiddenSize;
            for (int b = 0; b < batch; b++)
            {
                int c = contexts[start + b].Length, rows = rollouts[start + b].Length;
                var indices = into.IndicesOf(start + b, rows);
                var probs = into.ProbsOf(start + b, rows);
                // the rollout's rows (positions c−1 … c+rows−2), a chunk at a time
                for (int j0 = 0; j0 < rows; j0 += _chunkRows)
                {
                    int n = Math.Min(_chunkRows, rows - j0);
                    if (_logits.Length < (long)n * v) _logits = new float[checked(Math.Min(_chunkRows, rows) * v)];
                    var logits = _logits.AsSpan(0, n * v);
                    _model.LmHead(hidden.Slice(checked((b * t + c - 1 + j0) * d), n * d), n, logits);
                    VocabMask.Apply(logits, n, v, VocabLimit);
                    _kernels.TopKSoftmax(logits, n, v, k, settings.Temperature, indices.Slice(j0 * k, n * k), probs.Slice(j0 * k, n * k));
                }
            }
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex) =>
        Generator.Generate(_model, prompts, options, firstSequenceIndex, _maxBatch);

    /// <inheritdoc/>
    public void Dispose() { }
}
