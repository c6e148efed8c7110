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
        int v = _session.VocabSize;
        if (context.IsEmpty) throw new ArgumentException("context must hold at least one token.", nameof(context));
        if (rollout.IsEmpty) throw new ArgumentException("rollout must hold at least one token.", nameof(rollout));
        if (k < 1 || k > v) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in 1..{v}.");
        if (!(temperature > 0) || !float.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be > 0 and finite.");
        int chunk = ChunkPositions(memoryBudgetBytes);

        // fed: context ++ rollout[..R−1]; fed position g (g ≥ C−1) predicts rollout[g − C + 1]
        int c = context.Length, r = rollout.Length, n = c + r - 1;
        long[] fed = new long[n];
        context.CopyTo(fed);
        rollout[..(r - 1)].CopyTo(fed.AsSpan(c));
        var indices = new int[(long)r * k];
        var probs = new float[(long)r * k];
        using var cache = _session.CreateCache(1);
        for (int s = 0; s < n; s += chunk)
        {
            int e = Math.Min(n, s + chunk);
            float[] logits = _session.Forward(fed.AsSpan(s, e - s), 1, e - s, cache); // [e − s, V]
            int first = Math.Max(s, c - 1);
            if (first >= e) continue;
            int rows = e - first, row0 = first - (c - 1);
            _kernels.TopKSoftmax(logits.AsSpan((first - s) * v, rows * v), rows, v, k, temperature,
                indices.AsSpan(row0 * k, rows * k), probs.AsSpan(row0 * k, rows * k));
        }
        return new TeacherTopK(r, k, indices, probs);
    }
}
