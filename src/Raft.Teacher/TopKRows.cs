namespace Raft.Teacher;

/// <summary>
/// Where a teacher writes its top-K: the caller's packed buffers <see cref="Indices"/> and <see cref="Probs"/>
/// [rows, K] (the very arrays the distillation kernels then read) and a row map: pair b's rollout position j goes to
/// row <c>FirstRow[b] + j</c>. Rows that no pair maps to are never written (a trainer gives them weight 0, and the
/// kernels neither read nor validate rows of weight 0).
/// </summary>
public sealed class TopKRows
{
    /// <summary>Wraps the buffers [rows, k] and the first row of each pair.</summary>
    /// <exception cref="ArgumentException">k ≤ 0, the buffers' lengths differ or are not a multiple of k, or a first row is outside the buffers.</exception>
    public TopKRows(int[] indices, float[] probs, int k, int[] firstRow)
    {
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentNullException.ThrowIfNull(probs);
        ArgumentNullException.ThrowIfNull(firstRow);
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be > 0.");
        if (indices.Length % k != 0) throw new ArgumentException($"indices has {indices.Length} values, not a whole number of rows of k = {k}.", nameof(indices));
        if (probs.Length != indices.Length) throw new ArgumentException($"probs has {probs.Length} values, indices {indices.Length}; both are [rows, k].", nameof(probs));
        Rows = indices.Length / k;
        for (int b = 0; b < firstRow.Length; b++)
            if ((uint)firstRow[b] > (uint)Rows)
                throw new ArgumentException($"firstRow[{b}] = {firstRow[b]} is outside the buffers' 0..{Rows} rows.", nameof(firstRow));
        Indices = indices; Probs = probs; K = k; FirstRow = firstRow;
    }

    /// <summary>Buffers for <paramref name="rollouts"/> packed one after another (pair b starts where pair b−1 ends).</summary>
    public static TopKRows Contiguous(IReadOnlyList<int[]> rollouts, int k)
    {
        ArgumentNullException.ThrowIfNull(rollouts);
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be > 0.");
        var first = new int[rollouts.Count];
        long rows = 0;
        for (int b = 0; b < first.Length; b++)
        {
            first[b] = checked((int)rows);
            rows += rollouts[b]?.Length ?? 0;
        }
        long n = checked(rows * k);
        return new TopKRows(new int[n], new float[n], k, first);
    }

    /// <summary>Token ids [rows, K].</summary>
    public int[] Indices { get; }
    /// <summary>Probabilities [rows, K].</summary>
    public float[] Probs { get; }
    /// <summary>Kept entries per row.</summary>
    public int K { get; }
    /// <summary>Rows of the buffers.</summary>
    public int Rows { get; }
    /// <summary>The row of each pair's first rollout position.</summary>
    public IReadOnlyList<int> FirstRow { get; }

    /// <summary>Pair <paramref name="pair"/>'s <paramref name="rows"/> rows of indices, [rows, K].</summary>
    public Span<int> IndicesOf(int pair, int rows) => Indices.AsSpan(FirstRow[pair] * K, rows * K);

    /// <summary>Pair <paramref name="pair"/>'s <paramref name="rows"/> rows of probabilities, [rows, K].</summary>
    public Span<float> ProbsOf(int pair, int rows) => Probs.AsSpan(FirstRow[pair] * K, rows * K);

    /// <summary>A copy of pair <paramref name="pair"/>'s rows as a <see cref="TeacherTopK"/>.</summary>
    public TeacherTopK Copy(int pair, int rows) => new(rows, K, IndicesOf(pair, rows).ToArray(), ProbsOf(pair, rows).ToArray());

    /// <summary>Every pair named, with K as the settings say and its rows inside the buffers.</summary>
    internal void Check(IReadOnlyList<int[]> rollouts, int k)
    {
        if (k != K) throw new ArgumentException($"the buffers hold K = {K} entries per row, the settings ask for TopK = {k}.", "into");
        if (FirstRow.Count != rollouts.Count)
            throw new ArgumentException($"the row map names {FirstRow.Count} pairs, there are {rollouts.Count} rollouts.", "into");
        for (int b = 0; b < rollouts.Count; b++)
            if ((long)FirstRow[b] + rollouts[b].Length > Rows)
                throw new ArgumentException($"rollouts[{b}] needs rows {FirstRow[b]}..{(long)FirstRow[b] + rollouts[b].Length - 1}; the buffers have {Rows}.", "into");
    }
}
