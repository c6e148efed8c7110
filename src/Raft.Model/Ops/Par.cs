namespace Raft.Model.Ops;

/// <summary>
/// Threading helper for the ops: a fixed partition of work items, each written by exactly one task, so a
/// result never depends on scheduling (every op is deterministic for any thread count).
/// </summary>
internal static class Par
{
    /// <summary>Resolves a thread count: ≤ 0 means every core.</summary>
    public static int Resolve(int threads) => threads > 0 ? threads : Environment.ProcessorCount;

    /// <summary>Runs body(i) for i in [0, count), on up to <paramref name="threads"/> threads.</summary>
    public static void For(int count, int threads, Action<int> body)
    {
        threads = Resolve(threads);
        if (count <= 0) return;
        if (threads == 1 || count == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads }, body);
    }

    /// <summary>Splits [0, n) into at most <paramref name="chunks"/> contiguous ranges of at least <paramref name="minChunk"/>; returns the chunk size.</summary>
    public static int ChunkSize(int n, int chunks, int minChunk) => Math.Max(minChunk, (n + chunks - 1) / Math.Max(1, chunks));
}
