using Raft.Kernels;
using Raft.Model;

namespace Raft.Teacher;

/// <summary>
/// The frozen original model as RAFT uses it: it scores student rollouts (stage 2) and writes rewrites (stage 1).
/// Two implementations: <see cref="OnnxTeacher"/> (ONNX Runtime, the product path) and <see cref="EngineTeacher"/>
/// (the engine's own forward over a frozen checkpoint, for tests and for machines without an exported model).
/// </summary>
public interface ITeacher : IDisposable
{
    /// <summary>A short description for logs (e.g. "onnx:cpu /path/model.onnx").</summary>
    string Description { get; }

    /// <summary>The teacher's vocabulary size (must equal the student's).</summary>
    int VocabSize { get; }

    /// <summary>
    /// The ids its top-K may hold: the tokenizer's size when the embedding has padding rows beyond it (ids at and above
    /// get −∞ before the top-K, see <see cref="VocabMask"/>); <see cref="VocabSize"/> when there are none.
    /// </summary>
    int VocabLimit { get; }

    /// <summary>
    /// For each (context, rollout) pair b, the teacher's top-K at temperature τ (<paramref name="settings"/>'
    /// <see cref="DistillSettings.TopK"/> and <see cref="DistillSettings.Temperature"/>) at every rollout position j —
    /// the row that predicts rollout[j] from context ++ rollout[..j] — written straight into the caller's packed buffers
    /// at row <c>into.FirstRow[b] + j</c>. Rows the map does not name are left as they are.
    /// </summary>
    /// <exception cref="ArgumentException">A context or rollout is empty, the lists differ in length, the settings do
    /// not fit the vocabulary, or a pair's rows fall outside <paramref name="into"/>.</exception>
    /// <exception cref="NonFiniteLogitException">The teacher produced a NaN or infinite logit (an overflowing fp16 teacher).</exception>
    void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings, TopKRows into);

    /// <summary>Samples a continuation of each prompt (same options and reproducibility as <see cref="Generator"/>).</summary>
    IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex);
}

/// <summary>Conveniences over <see cref="ITeacher"/>.</summary>
public static class TeacherExtensions
{
    /// <summary>
    /// <see cref="ITeacher.Score"/> into fresh buffers, one <see cref="TeacherTopK"/> [rollout.Length, K] per pair (for
    /// callers that keep the pairs apart, such as the offline teacher cache).
    /// </summary>
    public static IReadOnlyList<TeacherTopK> ScoreEach(this ITeacher teacher, IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings)
    {
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(rollouts);
        var into = TopKRows.Contiguous(rollouts, settings.TopK);
        teacher.Score(contexts, rollouts, settings, into);
        var result = new TeacherTopK[rollouts.Count];
        for (int b = 0; b < result.Length; b++) result[b] = into.Copy(b, rollouts[b].Length);
        return result;
    }
}

/// <summary>The argument checks every teacher's <see cref="ITeacher.Score"/> shares.</summary>
internal static class TeacherArguments
{
    /// <summary>Non-null lists of equal length, every context and rollout non-empty, settings valid for <paramref name="vocab"/>, rows inside the buffers.</summary>
    public static void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings, TopKRows into, int vocab)
    {
        ArgumentNullException.ThrowIfNull(contexts);
        ArgumentNullException.ThrowIfNull(rollouts);
        ArgumentNullException.ThrowIfNull(into);
        if (rollouts.Count != contexts.Count)
            throw new ArgumentException($"rollouts has {rollouts.Count} entries, contexts {contexts.Count}.", nameof(rollouts));
        for (int b = 0; b < contexts.Count; b++)
        {
            if (contexts[b] is not { Length: > 0 }) throw new ArgumentException($"contexts[{b}] must hold at least one token.", nameof(contexts));
            if (rollouts[b] is not { Length: > 0 }) throw new ArgumentException($"rollouts[{b}] must hold at least one token.", nameof(rollouts));
        }
        settings.Validate(vocab);
        into.Check(rollouts, settings.TopK);
    }

    /// <summary>A teacher's vocabulary limit: 0 means the whole vocabulary; else 1..vocab.</summary>
    public static int VocabLimit(int limit, int vocab, string paramName = "vocabLimit")
    {
        if (limit == 0) return vocab;
        if (limit < 0 || limit > vocab) throw new ArgumentOutOfRangeException(paramName, limit, $"the vocabulary limit must be in 1..{vocab} (0: the whole vocabulary).");
        return limit;
    }

    /// <summary>K must fit the ids the teacher may pick.</summary>
    public static void TopKFits(DistillSettings settings, int limit, int vocab)
    {
        if (limit < vocab && settings.TopK > limit)
            throw new ArgumentException($"TopK = {settings.TopK}: must be ≤ the {limit} ids the tokenizer has (the embedding's {vocab - limit} padding rows are never picked).", "TopK");
    }
}

/// <summary>
/// Padded vocabularies: an embedding with more rows than the tokenizer has tokens (Qwen2.5 and Qwen3: 151,936 rows, 151,669
/// tokens). The padding columns of a logits row get the most negative finite float before the teacher's top-K — the
/// effect of −∞ (never among the K largest when K ≤ the tokenizer's size; no probability mass), while the kernels'
/// non-finite check keeps its meaning.
/// </summary>
public static class VocabMask
{
    /// <summary>Sets columns <paramref name="limit"/>..vocab−1 of every row of <paramref name="logits"/> [rows, vocab] to <see cref="float.MinValue"/>.</summary>
    public static void Apply(Span<float> logits, int rows, int vocab, int limit)
    {
        if (limit >= vocab) return;
        for (int r = 0; r < rows; r++) logits.Slice(r * vocab + limit, vocab - limit).Fill(float.MinValue);
    }
}
