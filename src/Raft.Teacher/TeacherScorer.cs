using Raft.Kernels;

namespace Raft.Teacher;

/// <summary>
/// Answer-conditioned scoring for stage 2: the teacher reads a context (the prompt with the fused answer placed in
/// it) followed by a student rollout, and at every rollout position gives its next-token distribution, reduced to
/// top-K at temperature τ by <see cref="ILossKernels.TopKSoftmax"/>. Row j predicts rollout token j, i.e. it is the
/// teacher's output after context ++ rollout[..j]. The sequence is fed through the KV cache in chunks of positions
/// so that at most <c>memoryBudgetBytes</c> of logits ([chunk, vocab] fp32) exist at a time; the result does not
/// depend on the chunking beyond float rounding.
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

    /// <summary>Positions per chunk for a budget: budget / (vocab · 4 bytes), at least 1.</summary>
    public int ChunkPositions(long memoryBudgetBytes)
    {
        if (memoryBudgetBytes <= 0) throw new ArgumentOutOfRangeException(nameof(memoryBudgetBytes), memoryBudgetBytes, "memoryBudgetBytes must be > 0.");
        return (int)Math.Clamp(memoryBudgetBytes / ((long)_session.VocabSize * sizeof(float)), 1, int.MaxValue);
    }

    /// <summary>
    /// The teacher's top-K at each of the rollout's positions: returns [rollout.Length, k] indices and probabilities.
    /// </summary>
    /// <param name="context">The teacher's context tokens (at least one): prompt with the fused answer in it.</param>
    /// <param name="rollout">The student's rollout tokens (at least one).</param>
    /// <param name="k">Kept entries per row, 1..vocab.</param>
    /// <param name="temperature">τ &gt; 0.</param>
    /// <param name="memoryBudgetBytes">The most logits memory one chunk may take.</param>
    public TeacherTopK Score(ReadOnlySpan<long> context, ReadOnlySpan<long> rollout, int k, float temperature,
        long memoryBudgetBytes = DefaultMemoryBudgetBytes)
    {
        if (context.IsEmpty) throw new ArgumentException("context must hold at least one token.", nameof(context));
        if (rollout.IsEmpty) throw new ArgumentException("rollout must hold at least one token.", nameof(rollout));
        return ScoreBatch([context.ToArray()], [rollout.ToArray()], k, temperature, memoryBudgetBytes)[0];
    }

    /// <summary>
    /// As <see cref="Score"/> for a batch of (context, rollout) pairs of any lengths, run together: each sequence
    /// context ++ rollout[..R−1] is right-padded to the longest (causal attention keeps pads from reaching the rows
    /// that are kept), and the budget bounds the logits of the whole batch per chunk ([batch, chunk, vocab]).
    /// Returns one <see cref="TeacherTopK"/> [R_b, k] per pair.
    /// </summary>
    public IReadOnlyList<TeacherTopK> ScoreBatch(IReadOnlyList<long[]> contexts, IReadOnlyList<long[]> rollouts, int k, float temperature,
        long memoryBudgetBytes = DefaultMemoryBudgetBytes)
    {
        ArgumentNullException.ThrowIfNull(contexts);
        ArgumentNullException.ThrowIfNull(rollouts);
        int v = _session.VocabSize, batch = contexts.Count;
        if (batch == 0) throw new ArgumentException("contexts is empty.", nameof(contexts));
        if (rollouts.Count != batch) throw new ArgumentException($"rollouts has {rollouts.Count} entries, contexts {batch}.", nameof(rollouts));
        for (int b = 0; b < batch; b++)
        {
            if (contexts[b] is not { Length: > 0 }) throw new ArgumentException($"contexts[{b}] must hold at least one token.", nameof(contexts));
            if (rollouts[b] is not { Length: > 0 }) throw new ArgumentException($"rollouts[{b}] must hold at least one token.", nameof(rollouts));
        }
        if (k < 1 || k > v) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in 1..{v}.");
        if (!(temperature > 0) || !float.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be > 0 and finite.");
        if (memoryBudgetBytes <= 0) throw new ArgumentOutOfRangeException(nameof(memoryBudgetBytes), memoryBudgetBytes, "memoryBudgetBytes must be > 0.");
        int chunk = (int)Math.Clamp(memoryBudgetBytes / ((long)batch * v * sizeof(float)), 1, int.MaxValue);

        // fed[b]: context ++ rollout[..R−1], right-padded with token 0 to n; fed position g ≥ C−1 predicts rollout[g − C + 1]
        var lengths = new int[batch];
        for (int b = 0; b < batch; b++) lengths[b] = contexts[b].Length + rollouts[b].Length - 1;
        int n = lengths.Max();
        var fed = new long[(long)batch * n];
        var result = new TeacherTopK[batch];
        for (int b = 0; b < batch; b++)
        {
            contexts[b].CopyTo(fed.AsSpan(b * n));
            rollouts[b].AsSpan(0, rollouts[b].Length - 1).CopyTo(fed.AsSpan(b * n + contexts[b].Length));
            int r = rollouts[b].Length;
            result[b] = new TeacherTopK(r, k, new int[(long)r * k], new float[(long)r * k]);
        }
        using var cache = _session.CreateCache(batch);
        var piece = new long[(long)batch * Math.Min(chunk, n)];
        for (int s = 0; s < n; s += chunk)
        {
            int e = Math.Min(n, s + chunk), m = e - s;
            for (int b = 0; b < batch; b++) fed.AsSpan(b * n + s, m).CopyTo(piece.AsSpan(b * m, m));
            float[] logits = _session.Forward(piece.AsSpan(0, batch * m), batch, m, cache); // [batch, m, V]
            for (int b = 0; b < batch; b++)
            {
                int c = contexts[b].Length;
                int first = Math.Max(s, c - 1), last = Math.Min(e, lengths[b]);
                if (first >= last) continue;
                int rows = last - first, row0 = first - (c - 1);
                _kernels.TopKSoftmax(logits.AsSpan((b * m + first - s) * v, rows * v), rows, v, k, temperature,
                    result[b].Indices.AsSpan(row0 * k, rows * k), result[b].Probs.AsSpan(row0 * k, rows * k));
            }
        }
        return result;
    }
}
