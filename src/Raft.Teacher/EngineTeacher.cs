using Raft.Kernels;
using Raft.Model;

namespace Raft.Teacher;

/// <summary>A frozen <see cref="LlamaModel"/> as the teacher: batched forward over context ++ rollout, top-K by the kernels.</summary>
public sealed class EngineTeacher : ITeacher
{
    private readonly LlamaModel _model;
    private readonly ILossKernels _kernels;
    private readonly int _maxBatch;

    /// <summary>
    /// Wraps <paramref name="model"/> (never modified) and reduces its rows with <paramref name="kernels"/>;
    /// <paramref name="vocabLimit"/> is the tokenizer's size when the embedding has padding rows (0: none).
    /// </summary>
    public EngineTeacher(LlamaModel model, ILossKernels kernels, string description = "engine", int maxBatch = 64, int vocabLimit = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(kernels);
        if (maxBatch < 1) throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, "maxBatch must be ≥ 1.");
        _model = model; _kernels = kernels; _maxBatch = maxBatch;
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
            var logits = _model.Forward(tokens, batch, t);
            for (int b = 0; b < batch; b++)
            {
                int c = contexts[start + b].Length, rows = rollouts[start + b].Length;
                var rowLogits = logits.AsSpan(checked((b * t + c - 1) * v), rows * v);
                VocabMask.Apply(rowLogits, rows, v, VocabLimit);
                _kernels.TopKSoftmax(rowLogits, rows, v, k, settings.Temperature, into.IndicesOf(start + b, rows), into.ProbsOf(start + b, rows));
            }
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex) =>
        Generator.Generate(_model, prompts, options, firstSequenceIndex, _maxBatch);

    /// <inheritdoc/>
    public void Dispose() { }
}
