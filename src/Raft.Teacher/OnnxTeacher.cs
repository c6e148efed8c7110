using Raft.Kernels;
using Raft.Model;

namespace Raft.Teacher;

/// <summary>
/// The teacher served by ONNX Runtime (<see cref="TeacherSession"/>): scoring through <see cref="TeacherScorer"/> (chunked
/// by a logits memory budget), generation through <see cref="TeacherGenerator"/> (the ONNX model's KV cache). Owns the session.
/// </summary>
public sealed class OnnxTeacher : ITeacher
{
    private readonly TeacherSession _session;
    private readonly TeacherScorer _scorer;
    private readonly long _budget;

    /// <summary>
    /// Wraps an open session; top-K rows are reduced with <paramref name="kernels"/>; <paramref name="vocabLimit"/> is the
    /// tokenizer's size when the embedding has padding rows (0: none).
    /// </summary>
    public OnnxTeacher(TeacherSession session, ILossKernels kernels, long memoryBudgetBytes = TeacherScorer.DefaultMemoryBudgetBytes, int vocabLimit = 0)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(kernels);
        if (memoryBudgetBytes <= 0) throw new ArgumentOutOfRangeException(nameof(memoryBudgetBytes), memoryBudgetBytes, "memoryBudgetBytes must be > 0.");
        _session = session;
        VocabLimit = TeacherArguments.VocabLimit(vocabLimit, session.VocabSize, nameof(vocabLimit));
        _scorer = new TeacherScorer(session, kernels) { VocabLimit = VocabLimit };
        _budget = memoryBudgetBytes;
    }

    /// <summary>Opens <c>model.onnx</c> in <paramref name="directory"/>.</summary>
    public static OnnxTeacher Open(string directory, TeacherOptions options, ILossKernels kernels, long memoryBudgetBytes = TeacherScorer.DefaultMemoryBudgetBytes,
        int vocabLimit = 0)
    {
        var session = TeacherSession.Open(directory, options);
        try { return new OnnxTeacher(session, kernels, memoryBudgetBytes, vocabLimit); }
        catch { session.Dispose(); throw; }
    }

    /// <summary>The session.</summary>
    public TeacherSession Session => _session;

    /// <inheritdoc/>
    public string Description => $"onnx ({_session.Provider}) {_session.ModelPath}";

    /// <inheritdoc/>
    public int VocabSize => _session.VocabSize;

    /// <inheritdoc/>
    public int VocabLimit { get; }

    /// <inheritdoc/>
    public void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings, TopKRows into) =>
        _scorer.Score(contexts, rollouts, settings, into, _budget);

    /// <inheritdoc/>
    public IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex) =>
        TeacherGenerator.Generate(_session, prompts, options, firstSequenceIndex);

    /// <inheritdoc/>
    public void Dispose() => _session.Dispose();
}
