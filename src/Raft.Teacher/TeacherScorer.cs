using Raft.Kernels;

namespace Raft.Teacher;

/// <summary>
/// Answer-conditioned scoring for stage 2: the teacher reads a context (the prompt with the fused answer placed in
/// it) followed by a student rollout, and at every rollout position gives its next-token distribution, reduced to
/// top-K at temperature τ by <see cref="ILossKernels.TopKSoftmax"/>. Row j predicts rollout token j, i.e. it is the
/// teacher's output after context ++ rollout[..j]. The sequences are fed through the KV cache in chunks of positions
/// so that at most <c>memoryBudgetBytes</c> of logits ([batch, chunk, vocab] fp32) exist at a time; the result does
/// not depend on the chunking beyond float rounding. The top-K of each chunk is taken from ONNX Runtime's output
/// buffer (no copy) straight into the caller's packed rows (<see cref="TopKRows"/>).
/// </summary>
public sealed class TeacherScorer
{
    private readonly TeacherSession _session;
    private readonly ILossKernels _kernels;

    /// <summary>The default logits budget per chunk: 256 MiB.</summary>
    public const long DefaultMemoryBudgetBytes = 256L << 20;

    /// <summary>Scores with <paramref name="session"/>, reducing rows with <paramref name="kernels"/>.</summary>
    public TeacherScorer(TeacherSession session, ILossKernels kernels)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(kernels);
        _session = session; _kernels = kernels;
    }

    /// <summary>Ids at and above this get −∞ before the top-K (<see cref="VocabMask"/>); 0 (the default): the whole vocabulary.</summary>
    public int VocabLimit
    {
        get => _vocabLimit;
        init => _vocabLimit = value == 0 ? 0 : TeacherArguments.VocabLimit(value, _session.VocabSize, nameof(VocabLimit));
    }
    private readonly int _vocabLimit;

    /// <summary>Positions per chunk for a budget: budget / (vocab · 4 bytes), at least 1.</summary>
    public int ChunkPositions(long memoryBudgetBytes)
    {
        CheckBudget(memoryBudgetBytes);
        return (int)Math.Clamp(memoryBudgetBytes / ((long)_session.VocabSize * sizeof(float)), 1, int.MaxValue);
    }

    private static void CheckBudget(long memoryBudgetBytes)
    {
        if (memoryBudgetBytes <= 0) throw new ArgumentOutOfRangeException(nameof(memoryBudgetBytes), memoryBudgetBytes, "memoryBudgetBytes must be > 0.");
    }

    /// <summary>
    /// The teacher's top-K at each of one rollout's positions: [rollout.Length, K] indices and probabilities.
    /// </summary>
    /// <param name="context">The teacher's context tokens (at least one): prompt with the fused answer in it.</param>
    /// <param name="rollout">The student's rollout tokens (at least one).</param>
    /// <param name="settings">K (1..vocab) and τ &gt; 0.</param>
    /// <param name="memoryBudgetBytes">The most logits memory one chunk may take.</param>
    public TeacherTopK Score(int[] context, int[] rollout, DistillSettings settings, long memoryBudgetBytes = DefaultMemoryBudgetBytes)
    {
        if (context is not { Length: > 0 }) throw new ArgumentException("context must hold at least one token.", nameof(context));
        if (rollout is not { Length: > 0 }) throw new ArgumentException("rollout must hold at least one token.", nameof(rollout));
        return ScoreBatch([context], [rollout], settings, memoryBudgetBytes)[0];
    }

    /// <summary>As <see cref="Score(IReadOnlyList{int[]}, IReadOnlyList{int[]}, DistillSettings, TopKRows, long)"/> into fresh buffers: one <see cref="TeacherTopK"/> [R_b, K] per pair.</summary>
    public TeacherTopK[] ScoreBatch(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings,
        long memoryBudgetBytes = DefaultMemoryBudgetBytes)
    {
        ArgumentNullException.ThrowIfNull(rollouts);
        var into = TopKRows.Contiguous(rollouts, settings.TopK);
        Score(contexts, rollouts, settings, into, memoryBudgetBytes);
        var result = new TeacherTopK[rollouts.Count];
        for (int b = 0; b < result.Length; b++) result[b] = into.Copy(b, rollouts[b].Length);
        return result;
    }

    /// <summary>
    /// A batch of (context, rollout) pairs of any lengths, run together: each sequence context ++ rollout[..R−1] is
    /// right-padded to the longest (causal attention keeps pads from reaching the rows that are kept), and the budget
    /// bounds the logits of the whole batch per chunk ([batch, chunk, vocab]). Pair b's rollout position j is written to
    /// row <c>into.FirstRow[b] + j</c> of the caller's buffers.
    /// </summary>
    public void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings, TopKRows into,
        long memoryBudgetBytes = DefaultMemoryBudgetBytes)
    {
        int v = _session.VocabSize;
        TeacherArguments.Score(contexts, rollouts, settings, into, v);
        int limit = _vocabLimit == 0 ? v : _vocabLimit;
        TeacherArguments.TopKFits(settings, limit, v);
        int batch = contexts.Count;
        if (batch == 0) throw new ArgumentException("contexts is empty.", nameof(contexts));
        CheckBudget(memoryBudgetBytes);
        int k = settings.TopK;
        int chunk = (int)Math.Clamp(memoryBudgetBytes / ((long)batch * v * sizeof(float)), 1, int.MaxValue);
        if (batch > 1 && chunk > 1 && _session.ChunksNeedBatchOne
            && contexts.Select((c, b) => c.Length + rollouts[b].Length - 1).Max() > chunk)
        {
            // GroupQueryAttention takes chunks after the first only for one sequence: score the pairs one by one
            for (int b = 0; b < batch; b++)
                Score([contexts[b]], [rollouts[b]], settings, new TopKRows(into.Indices, into.Probs, into.K, [into.FirstRow[b]]), memoryBudgetBytes);
            return;
        }

        // fed[b]: context ++ rollout[..R−1] as ONNX Runtime's int64 ids, right-padded with token 0 to n; fed position
        // g ≥ C−1 predicts rollout[g − C + 1]
        var lengths = new int[batch];
        for (int b = 0; b < batch; b++) lengths[b] = contexts[b].Length + rollouts[b].Length - 1;
        int n = lengths.Max();
        var fed = new long[(long)batch * n];
        for (int b = 0; b < batch; b++)
        {
            var row = fed.AsSpan(b * n);
            var c = contexts[b];
            for (int i = 0; i < c.Length; i++) row[i] = c[i];
            var r = rollouts[b];
            for (int i = 0; i + 1 < r.Length; i++) row[c.Length + i] = r[i];
        }
        using var cache = _session.CreateCache(batch);
        // one chunk feeds fed itself; more chunks gather each chunk's columns
        var piece = chunk >= n ? fed : new long[(long)batch * chunk];
        for (int s = 0; s < n; s += chunk)
        {
            int e = Math.Min(n, s + chunk), m = e - s;
            if (!ReferenceEquals(piece, fed))
                for (int b = 0; b < batch; b++) fed.AsSpan(b * n + s, m).CopyTo(piece.AsSpan(b * m, m));
            _session.ForwardWith(piece.AsSpan(0, batch * m), batch, m, logits => // [batch, m, V]
            {
                for (int b = 0; b < batch; b++)
                {
                    int c = contexts[b].Length;
                    int first = Math.Max(s, c - 1), last = Math.Min(e, lengths[b]);
                    if (first >= last) continue;
                    int rows = last - first, row0 = into.FirstRow[b] + first - (c - 1);
                    var rowLogits = logits.Slice((b * m + first - s) * v, rows * v);
                    VocabMask.Apply(rowLogits, rows, v, limit);
                    _kernels.TopKSoftmax(rowLogits, rows, v, k, settings.Temperature,
                        into.Indices.AsSpan(row0 * k, rows * k), into.Probs.AsSpan(row0 * k, rows * k));
                }
            }, cache);
        }
    }
}
