namespace Raft.Pipeline.Training;

/// <summary>
/// The data order: each epoch is a shuffle of the examples seeded by (seed, epoch), and step s of a (global) batch of B
/// takes the examples at positions s·B … s·B+B−1 of the concatenated epochs. A pure function of (seed, step, B), the
/// same in every process: a resumed run and every data-parallel rank see what a single uninterrupted process would.
/// </summary>
internal sealed class BatchSchedule(int examples, int seed)
{
    private readonly Dictionary<int, int[]> _orders = new();

    /// <summary>The shuffling seed of an epoch: SplitMix64 of (seed, epoch), folded to 31 bits; identical in every process.</summary>
    internal static int EpochSeed(int seed, int epoch)
    {
        ulong z = ((ulong)(uint)seed << 32 | (uint)epoch) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }

    private int[] Order(int epoch)
    {
        if (_orders.TryGetValue(epoch, out var order)) return order;
        order = Enumerable.Range(0, examples).ToArray();
        // A seed that is the same in every process (HashCode.Combine is randomised per process, so it must not be used).
        new Random(EpochSeed(seed, epoch)).Shuffle(order);
        if (_orders.Count > 4) _orders.Clear();
        return _orders[epoch] = order;
    }

    /// <summary>The example indices of step <paramref name="step"/> (0-based) for a global batch of <paramref name="batchSize"/>.</summary>
    public int[] Batch(int step, int batchSize)
    {
        var idx = new int[batchSize];
        for (int i = 0; i < idx.Length; i++)
        {
            long g = (long)step * batchSize + i;
            idx[i] = Order((int)(g / examples))[(int)(g % examples)];
        }
        return idx;
    }

    /// <summary>Rank <paramref name="rank"/>'s slice [r·b, (r+1)·b) of step <paramref name="step"/>'s global batch of b·ranks (the whole batch in one process).</summary>
    public int[] RankSlice(int step, int perRank, int rank, int ranks) =>
        ranks == 1 ? Batch(step, perRank) : Batch(step, perRank * ranks).AsSpan(rank * perRank, perRank).ToArray();
}
