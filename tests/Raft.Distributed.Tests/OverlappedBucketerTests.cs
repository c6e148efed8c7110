using System.Collections.Concurrent;

namespace Raft.Distributed.Tests;

/// <summary>
/// The all-reduce overlapped with the backward (<see cref="GradientBucketer.BeginOverlappedSum"/>): a communication
/// thread sums each bucket as soon as its buffers are marked ready. Checked against the blocking sum with a fake world
/// of 2 whose sum doubles the data and records which thread called it and when.
/// </summary>
public class OverlappedBucketerTests
{
    private sealed class DoublingCollective(Func<int, bool>? fail = null) : ICollective
    {
        public ConcurrentQueue<(int Length, int Thread)> Calls { get; } = new();
        public int Rank => 0;
        public int WorldSize => 2;
        public string Backend => "doubling";
        public string HostName => "test";
        public void AllReduceSum(Span<float> data)
        {
            if (fail?.Invoke(Calls.Count) == true) throw new InvalidOperationException("link down");
            Calls.Enqueue((data.Length, Environment.CurrentManagedThreadId));
            for (int i = 0; i < data.Length; i++) data[i] *= 2;
        }
        public void AllReduceMean(Span<float> data) => throw new NotSupportedException();
        public void Barrier() => throw new NotSupportedException();
        public void Broadcast(Span<float> data, int root) => throw new NotSupportedException();
        public void Broadcast(Span<byte> data, int root) => throw new NotSupportedException();
        public void AllReduce(Span<double> data, ReduceOp op = ReduceOp.Sum) => throw new NotSupportedException();
        public void ReduceScatterSum(ReadOnlySpan<float> send, Span<float> receive) => throw new NotSupportedException();
        public void AllGather(ReadOnlySpan<float> send, Span<float> receive) => throw new NotSupportedException();
        public void Abort(string reason, int errorCode = 1) => throw new NotSupportedException();
        public void Dispose() { }
    }

    private static float[][] RandomBuffers(Random rng, int[] lengths) =>
        lengths.Select(n => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray()).ToArray();

    [Fact]
    public void OverlappedSumEqualsTheBlockingSumBitForBit()
    {
        var rng = new Random(Random.Shared.Next());
        int[] lengths = [3, 4, 2, 10, 25, 1, 1, 9, 5, 7];
        var a = RandomBuffers(rng, lengths);
        var b = a.Select(x => (float[])x.Clone()).ToArray();
        new GradientBucketer(new DoublingCollective(), a, bucketElements: 10).AllReduceSum();

        var fake = new DoublingCollective();
        var bucketer = new GradientBucketer(fake, b, bucketElements: 10);
        bucketer.BeginOverlappedSum();
        Assert.True(bucketer.IsOverlapping);
        foreach (int i in new[] { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0 }) bucketer.MarkReady(i); // the order a backward marks them
        bucketer.EndOverlappedSum();
        Assert.False(bucketer.IsOverlapping);

        for (int i = 0; i < a.Length; i++) Assert.Equal(a[i], b[i]);
        Assert.Equal(bucketer.Buckets.Count, fake.Calls.Count); // each bucket once
        Assert.DoesNotContain(fake.Calls, c => c.Thread == Environment.CurrentManagedThreadId); // on the communication thread
    }

    [Fact]
    public void ABucketIsSummedWhileTheCallerIsStillWorking()
    {
        var rng = new Random(Random.Shared.Next());
        var buffers = RandomBuffers(rng, [4, 4, 4, 4]);
        var fake = new DoublingCollective();
        var bucketer = new GradientBucketer(fake, buffers, bucketElements: 8); // buckets {0, 1} and {2, 3}
        Assert.Equal(2, bucketer.Buckets.Count);
        bucketer.BeginOverlappedSum();
        bucketer.MarkReady(3);
        bucketer.MarkReady(2);
        // the caller has not finished (buffers 0 and 1 are still being computed), yet bucket {2, 3} gets summed
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (fake.Calls.IsEmpty && DateTime.UtcNow < deadline) Thread.Sleep(1);
        Assert.Single(fake.Calls);
        Assert.Equal(8, fake.Calls.First().Length);
        bucketer.EndOverlappedSum(); // marks 0 and 1, sums their bucket, waits
        Assert.Equal(2, fake.Calls.Count);
    }

    [Fact]
    public void AFailureOnTheCommunicationThreadComesBackFromEnd()
    {
        var buffers = RandomBuffers(new Random(3), [4, 4, 4, 4]);
        var bucketer = new GradientBucketer(new DoublingCollective(fail: n => n == 1), buffers, bucketElements: 4);
        bucketer.BeginOverlappedSum();
        var e = Assert.Throws<CollectiveException>(() => bucketer.EndOverlappedSum());
        Assert.Contains("link down", e.Message);
        Assert.False(bucketer.IsOverlapping);
        // the bucketer is usable again
        bucketer.BeginOverlappedSum();
        Assert.Throws<CollectiveException>(() => bucketer.EndOverlappedSum()); // the fake keeps failing its 2nd call on
    }

    [Fact]
    public void MisuseIsRefused()
    {
        var bucketer = new GradientBucketer(new DoublingCollective(), RandomBuffers(new Random(1), [2, 3]), bucketElements: 4);
        Assert.Throws<InvalidOperationException>(() => bucketer.MarkReady(0));
        Assert.Throws<InvalidOperationException>(() => bucketer.EndOverlappedSum());
        bucketer.BeginOverlappedSum();
        Assert.Throws<InvalidOperationException>(() => bucketer.BeginOverlappedSum());
        Assert.Throws<ArgumentOutOfRangeException>(() => bucketer.MarkReady(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => bucketer.MarkReady(-1));
        bucketer.EndOverlappedSum();
    }

    [Fact]
    public void InAWorldOfOneNothingIsReduced()
    {
        var buffers = RandomBuffers(new Random(2), [3, 5]);
        var before = buffers.Select(b => (float[])b.Clone()).ToArray();
        var bucketer = new GradientBucketer(new SingleProcessCollective(), buffers);
        bucketer.BeginOverlappedSum();
        bucketer.MarkReady(1);
        bucketer.EndOverlappedSum();
        for (int i = 0; i < buffers.Length; i++) Assert.Equal(before[i], buffers[i]);
    }
}
