using Raft.Kernels;
using Raft.Model;
using Raft.Teacher;

namespace Raft.Pipeline.Training;

/// <summary>A frozen <see cref="LlamaModel"/> as the teacher: batched forward over context ++ rollout, top-K by the kernels.</summary>
public sealed class EngineTeacher : ITeacher
{
    private readonly LlamaModel _model;
    private readonly ILossKernels _kernels;
    private readonly int _maxBatch;

    /// <summary>Wraps <paramref name="model"/> (never modified) and reduces its rows with <paramref name="kernels"/>.</summary>
    public EngineTeacher(LlamaModel model, ILossKernels kernels, string description = "engine", int maxBatch = 64)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(kernels);
        if (maxBatch < 1) throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, "maxBatch must be ≥ 1.");
        _model = model; _kernels = kernels; _maxBatch = maxBatch;
        Description = description;
    }

    /// <inheritdoc/>
    public string Description { get; }

    /// <inheritdoc/>
    public int VocabSize => _model.Config.VocabSize;

    /// <inheritdoc/>
    public IReadOnlyList<TeacherTopK> Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, int k, float temperature)
    {
        ArgumentNullException.ThrowIfNull(contexts);
        ArgumentNullException.ThrowIfNull(rollouts);
        if (rollouts.Count != contexts.Count)
            throw new ArgumentException($"rollouts has {rollouts.Count} entries, contexts {contexts.Count}.", nameof(rollouts));
        int v = VocabSize;
        var result = new TeacherTopK[contexts.Count];
        for (int start = 0; start < contexts.Count; start += _maxBatch)
        {
            int batch = Math.Min(_maxBatch, contexts.Count - start);
            int t = 0;
            for (int b = 0; b < batch; b++)
            {
                var (c, r) = (contexts[start + b], rollouts[start + b]);
                if (c is not { Length: > 0 }) throw new ArgumentException($"contexts[{start + b}] must hold at least one token.", nameof(contexts));
                if (r is not { Length: > 0 }) throw new ArgumentException($"rollouts[{start + b}] must hold at least one token.", nameof(rollouts));
                t = Math.Max(t, c.Length + r.Length - 1);
            }
            if (t > _model.Config.MaxPositionEmbeddings)
                throw new ArgumentException($"a context with its rollout takes {t} positions; the teacher's max_position_embeddings is {_model.Config.MaxPositionEmbeddings}.", nameof(contexts));
            var tokens = new int[batch * t];
            for (int b = 0; b < batch; b++)
            {
                var (c, r) = (contexts[start + b], rollouts[start + b]);
                c.CopyTo(tokens, b * t);
                r.AsSpan(0, r.Length - 1).CopyTo(tokens.AsSpan(b * t + c.Length));
            }
            var logits = _model.Forward(tokens, batch, t);
            for (int b = 0; b < batch; b++)
            {
                var (c, r) = (contexts[start + b], rollouts[start + b]);
                int rows = r.Length;
                var rowLogits = logits.AsSpan(checked((b * t + c.Length - 1) * v), rows * v);
                var idx = new int[rows * k];
                var p = new float[rows * k];
                _kernels.TopKSoftmax(rowLogits, rows, v, k, temperature, idx, p);
                result[start + b] = new TeacherTopK(rows, k, idx, p);
            }
        }
        return result;
    }

    /// <inheritdoc/>
    public IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex) =>
        Generator.Generate(_model, prompts, options, firstSequenceIndex, _maxBatch);

    /// <inheritdoc/>
    public void Dispose() { }
}
