namespace Raft.Distributed.Tests;

/// <summary>
/// N ranks as N threads of this process (for layout tests without mpirun): every collective exchanges the ranks'
/// buffers through shared slots between two barriers and reduces them in rank order.
/// </summary>
internal sealed class ThreadGroup(int size)
{
    private readonly Barrier _barrier = new(size);
    private readonly object?[] _slots = new object?[size];

    /// <summary>Runs <paramref name="body"/> on every rank (a thread each) and rethrows the first failure.</summary>
    public static void Run(int size, Action<ICollective> body)
    {
        var group = new ThreadGroup(size);
        var errors = new Exception?[size];
        var threads = Enumerable.Range(0, size).Select(r => new Thread(() =>
        {
            try { body(new Member(group, r)); }
            catch (Exception e) { errors[r] = e; group._barrier.RemoveParticipant(); }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromSeconds(60)), "a rank thread did not finish");
        foreach (var e in errors) if (e is not null) throw new Xunit.Sdk.XunitException($"rank failed: {e}");
    }

    private T[][] Exchange<T>(int rank, ReadOnlySpan<T> mine)
    {
        _slots[rank] = mine.ToArray();
        _barrier.SignalAndWait();
        var all = _slots.Select(s => (T[])s!).ToArray();
        _barrier.SignalAndWait();
        return all;
    }

    private sealed class Member(ThreadGroup group, int rank) : ICollective
    {
        public int Rank => rank;
        public int WorldSize => group._slots.Length;
        public string Backend => "threads";
        public string HostName => "test";
        public void Barrier() => group._barrier.SignalAndWait();
        public void Broadcast(Span<float> data, int root) => group.Exchange<float>(rank, data)[root].CopyTo(data);
        public void Broadcast(Span<byte> data, int root) => group.Exchange<byte>(rank, data)[root].CopyTo(data);
        public void AllReduceSum(Span<float> data)
        {
            var all = group.Exchange<float>(rank, data);
            for (int i = 0; i < data.Length; i++) { float s = 0; foreach (var a in all) s += a[i]; data[i] = s; }
        }
        public void AllReduceMean(Span<float> data) => throw new NotSupportedException();
        public void AllReduce(Span<double> data, ReduceOp op = ReduceOp.Sum)
        {
            if (op != ReduceOp.Sum) throw new NotSupportedException();
            var all = group.Exchange<double>(rank, data);
            for (int i = 0; i < data.Length; i++) { double s = 0; foreach (var a in all) s += a[i]; data[i] = s; }
        }
        public void ReduceScatterSum(ReadOnlySpan<float> send, Span<float> receive)
        {
            Assert.Equal(receive.Length * WorldSize, send.Length);
            var all = group.Exchange(rank, send);
            for (int i = 0; i < receive.Length; i++) { float s = 0; foreach (var a in all) s += a[rank * receive.Length + i]; receive[i] = s; }
        }
        public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
        {
            Assert.Equal(send.Length * WorldSize, receive.Length);
            var all = group.Exchange(rank, send);
            for (int r = 0; r < all.Length; r++) all[r].CopyTo(receive[(r * send.Length)..]);
        }
        public void Abort(string reason, int errorCode = 1) => throw new InvalidOperationException(reason);
        public void Dispose() { }
    }
}

public class FlatShardsTests
{
    // Integer-valued floats: sums are exact whatever the order.
    private static float[][] Buffers(int[] lengths, int rank) =>
        lengths.Select((n, b) => Enumerable.Range(0, n).Select(i => (float)((rank + 1) * 1000 + b * 100 + i)).ToArray()).ToArray();

    private static float[] Flat(float[][] buffers) => buffers.SelectMany(b => b).ToArray();

    public static TheoryData<int, int[], int> Layouts => new()
    {
        { 3, [5, 0, 7, 1, 13], 4 },  // 26 elements: chunks 9, 9, 8; three rounds of 4, 4, 1
        { 4, [5, 0, 7, 1, 13], 0 },  // chunks of 7, the last 5; one round
        { 4, [2, 3], 1 },            // 5 elements: chunks 2, 2, 1, 0 (rank 3 owns nothing)
        { 2, [1], 1 },
        { 1, [3, 4], 2 },            // a world of one owns everything
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void ChunksCoverTheConcatenationInRankOrder(int ranks, int[] lengths, int piece)
    {
        long total = lengths.Sum();
        ThreadGroup.Run(ranks, world =>
        {
            var layout = new FlatShards(world, lengths, piece);
            Assert.Equal(total, layout.TotalLength);
            Assert.Equal((total + ranks - 1) / ranks, layout.ChunkLength);
            long next = 0;
            for (int r = 0; r < ranks; r++)
            {
                var (start, length) = layout.Range(r);
                Assert.Equal(next, start);
                Assert.True(length >= 0 && length <= layout.ChunkLength);
                next = start + length;
            }
            Assert.Equal(total, next);
            Assert.Equal(layout.Range(world.Rank), (layout.Start, layout.Length));
        });
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void ReduceScatterLeavesEachRankItsChunkOfTheSum(int ranks, int[] lengths, int piece)
    {
        var sum = new float[lengths.Sum()];
        for (int r = 0; r < ranks; r++)
        {
            var flat = Flat(Buffers(lengths, r));
            for (int i = 0; i < sum.Length; i++) sum[i] += flat[i];
        }
        ThreadGroup.Run(ranks, world =>
        {
            var layout = new FlatShards(world, lengths, piece);
            var buffers = Buffers(lengths, world.Rank);
            var before = Flat(buffers);
            var chunk = new float[layout.Length];
            layout.ReduceScatterSum(buffers, chunk);
            Assert.Equal(sum.AsSpan((int)layout.Start, (int)layout.Length).ToArray(), chunk);
            Assert.Equal(before, Flat(buffers)); // the buffers are not changed
        });
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void AllGatherGivesEveryRankEachOwnersChunk(int ranks, int[] lengths, int piece)
    {
        ThreadGroup.Run(ranks, world =>
        {
            var layout = new FlatShards(world, lengths, piece);
            var buffers = Buffers(lengths, world.Rank); // differ between ranks everywhere
            layout.AllGather(buffers);
            var flat = Flat(buffers);
            for (int r = 0; r < ranks; r++)
            {
                var (start, length) = layout.Range(r);
                var owner = Flat(Buffers(lengths, r));
                for (long i = start; i < start + length; i++) Assert.Equal(owner[i], flat[i]);
            }
        });
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void GatherToRootAssemblesEveryChunkOnTheRoot(int ranks, int[] lengths, int piece)
    {
        int root = ranks - 1;
        ThreadGroup.Run(ranks, world =>
        {
            var layout = new FlatShards(world, lengths, piece);
            var chunk = Enumerable.Range(0, (int)layout.Length).Select(i => (float)(layout.Start + i) * 3 + 1).ToArray();
            float[][]? full = world.Rank == root ? lengths.Select(n => new float[n]).ToArray() : null;
            layout.GatherToRoot(chunk, full, root);
            if (full is not null)
                Assert.Equal(Enumerable.Range(0, lengths.Sum()).Select(i => (float)i * 3 + 1).ToArray(), Flat(full));
        });
    }

    [Fact]
    public void ReadZeroFillsPastTheLimitAndWriteSpansBuffers()
    {
        var layout = new FlatShards(new SingleProcessCollective(), [2, 0, 3]);
        float[][] buffers = [[1, 2], [], [3, 4, 5]];
        var read = new float[4];
        layout.Read(buffers, 1, read);
        Assert.Equal([2f, 3, 4, 5], read);
        layout.Read(buffers, 3, read);
        Assert.Equal([4f, 5, 0, 0], read);
        layout.Read(buffers, 0, read, limit: 3);
        Assert.Equal([1f, 2, 3, 0], read);
        layout.Write(buffers, 1, [9f, 8]);
        Assert.Equal([1f, 9], buffers[0]);
        Assert.Equal([8f, 4, 5], buffers[2]);
        Assert.Throws<ArgumentOutOfRangeException>(() => layout.Write(buffers, 4, [1f, 2]));
    }

    [Fact]
    public void WrongBuffersAndChunksAreRefusedNamingTheLengths()
    {
        var layout = new FlatShards(new SingleProcessCollective(), [2, 3]);
        var e = Assert.Throws<ArgumentException>(() => layout.ReduceScatterSum([new float[2]], new float[5]));
        Assert.Contains("1 buffers given; the layout was planned for 2", e.Message);
        e = Assert.Throws<ArgumentException>(() => layout.AllGather([new float[2], new float[4]]));
        Assert.Contains("buffers[1] has 4 elements; the layout was planned for 3", e.Message);
        e = Assert.Throws<ArgumentException>(() => layout.ReduceScatterSum([new float[2], new float[3]], new float[4]));
        Assert.Contains("chunk.Length is 4; this rank's chunk has 5 elements", e.Message);
        Assert.Throws<ArgumentNullException>(() => layout.GatherToRoot(new float[5], null));
        Assert.Throws<ArgumentException>(() => new FlatShards(new SingleProcessCollective(), [2, -1]));
    }
}
