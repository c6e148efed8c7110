namespace Raft.Distributed;

/// <summary>
/// Averages a fixed list of float buffers (gradients, or anything else) over the ranks, packed into buckets of about
/// <see cref="BucketElements"/> elements so that many small buffers cost a few large all-reduces instead of one
/// small, latency-bound call each. Model-agnostic: it only sees <c>float[]</c>s.
/// </summary>
/// <remarks>
/// <para>Buckets follow the order of the list: consecutive buffers are packed into one staging array while they fit;
/// a buffer of <see cref="BucketElements"/> elements or more is a bucket of its own and is reduced in place, without a
/// copy. Give the buffers in the order the backward pass completes them (for a decoder, last layer first), as
/// PyTorch's DDP does, so that the first bucket is the first one ready.</para>
/// <para>Overlap with backward (not done here yet): the backward pass would call a <c>MarkReady(bufferIndex)</c> when a
/// gradient is final; when the last buffer of a bucket is ready, that bucket's reduction starts as a non-blocking
/// collective (MPI_Iallreduce, or ncclAllReduce on a communication stream) while backward computes the next layers,
/// and <see cref="AllReduceMean"/> becomes the wait for the outstanding buckets and the copy back. The bucket layout
/// computed here is the one that scheme needs.</para>
/// </remarks>
public sealed class GradientBucketer
{
    /// <summary>25 MiB of floats, PyTorch DDP's default bucket size.</summary>
    public const int DefaultBucketElements = 25 * 1024 * 1024 / sizeof(float);

    private readonly ICollective _collective;
    private readonly float[][] _buffers;
    private readonly Bucket[] _buckets;
    private float[]? _staging;

    /// <summary>One bucket: buffers <see cref="FirstBuffer"/> .. <see cref="FirstBuffer"/> + <see cref="BufferCount"/> − 1 of the list.</summary>
    /// <param name="FirstBuffer">Index of the bucket's first buffer in the list.</param>
    /// <param name="BufferCount">How many consecutive buffers it holds.</param>
    /// <param name="Elements">Their total length.</param>
    public readonly record struct Bucket(int FirstBuffer, int BufferCount, long Elements);

    /// <summary>Plans the buckets for <paramref name="buffers"/> (their lengths must not change afterwards).</summary>
    /// <param name="collective">The backend that reduces the buckets.</param>
    /// <param name="buffers">The buffers, in the order their values become final.</param>
    /// <param name="bucketElements">Target bucket size in elements (≥ 1).</param>
    public GradientBucketer(ICollective collective, IReadOnlyList<float[]> buffers, int bucketElements = DefaultBucketElements)
    {
        ArgumentNullException.ThrowIfNull(collective);
        ArgumentNullException.ThrowIfNull(buffers);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketElements, 1);
        _collective = collective;
        _buffers = new float[buffers.Count][];
        for (int i = 0; i < buffers.Count; i++)
            _buffers[i] = buffers[i] ?? throw new ArgumentException($"buffers[{i}] is null.", nameof(buffers));
        BucketElements = bucketElements;

        var buckets = new List<Bucket>();
        int first = 0;
        long filled = 0;
        for (int i = 0; i < _buffers.Length; i++)
        {
            int length = _buffers[i].Length;
            if (length >= bucketElements)
            {
                if (i > first) buckets.Add(new Bucket(first, i - first, filled));
                buckets.Add(new Bucket(i, 1, length));
                first = i + 1;
                filled = 0;
                continue;
            }
            if (filled + length > bucketElements)
            {
                buckets.Add(new Bucket(first, i - first, filled));
                first = i;
                filled = 0;
            }
            filled += length;
        }
        if (_buffers.Length > first) buckets.Add(new Bucket(first, _buffers.Length - first, filled));
        _buckets = [.. buckets];
    }

    /// <summary>The target bucket size in elements.</summary>
    public int BucketElements { get; }

    /// <summary>The planned buckets, in reduction order.</summary>
    public IReadOnlyList<Bucket> Buckets => _buckets;

    /// <summary>Replaces every buffer by its element-wise mean over the ranks, bucket by bucket (a no-op in a world of 1).</summary>
    public void AllReduceMean() => Reduce(mean: true);

    /// <summary>
    /// Replaces every buffer by its element-wise sum over the ranks, bucket by bucket (a no-op in a world of 1): for
    /// gradients whose losses were already divided by the global normalizer, the sum is the global-batch gradient.
    /// </summary>
    public void AllReduceSum() => Reduce(mean: false);

    private void Reduce(bool mean)
    {
        if (_collective.WorldSize == 1) return;
        foreach (var bucket in _buckets) ReduceBucket(bucket, mean);
    }

    // ------------------------------------------------------------------ overlapped with the backward

    private int[]? _bucketOf;          // buffer → its bucket
    private int[]? _pending;           // per bucket: buffers not yet ready
    private bool[]? _marked;
    private System.Collections.Concurrent.BlockingCollection<int>? _queue;
    private Thread? _worker;
    private Exception? _workerError;

    /// <summary>Whether an overlapped sum is under way (between <see cref="BeginOverlappedSum"/> and <see cref="EndOverlappedSum"/>).</summary>
    public bool IsOverlapping => _queue is not null;

    /// <summary>
    /// Starts an overlapped <see cref="AllReduceSum"/>: a communication thread sums each bucket over the ranks as soon as
    /// <see cref="MarkReady"/> has been called for all of its buffers, while the caller goes on computing the others.
    /// Every rank must mark the buffers in the same order (a backward pass does), so that the ranks issue the
    /// collectives in the same order; the sums are the same as <see cref="AllReduceSum"/>'s, bit for bit. The caller
    /// makes no other call on the collective until <see cref="EndOverlappedSum"/> returns. In a world of 1, nothing to do.
    /// </summary>
    public void BeginOverlappedSum()
    {
        if (_queue is not null) throw new InvalidOperationException("an overlapped sum is already under way.");
        if (_bucketOf is null)
        {
            _bucketOf = new int[_buffers.Length];
            for (int b = 0; b < _buckets.Length; b++)
                for (int i = _buckets[b].FirstBuffer; i < _buckets[b].FirstBuffer + _buckets[b].BufferCount; i++) _bucketOf[i] = b;
            _pending = new int[_buckets.Length];
            _marked = new bool[_buffers.Length];
        }
        for (int b = 0; b < _buckets.Length; b++) _pending![b] = _buckets[b].BufferCount;
        Array.Clear(_marked!);
        _workerError = null;
        _queue = new System.Collections.Concurrent.BlockingCollection<int>();
        if (_collective.WorldSize == 1) return;
        var queue = _queue;
        _worker = new Thread(() =>
        {
            try
            {
                foreach (int b in queue.GetConsumingEnumerable()) ReduceBucket(_buckets[b], mean: false);
            }
            catch (Exception e)
            {
                _workerError = e;
                // drain, so that EndOverlappedSum does not wait on buckets that will never be reduced
                foreach (int _ in queue.GetConsumingEnumerable()) { }
            }
        }) { IsBackground = true, Name = "raft-allreduce" };
        _worker.Start();
    }

    /// <summary>Buffer <paramref name="index"/> (as given to the constructor) holds its final value: its bucket may be reduced once all its buffers are.</summary>
    /// <exception cref="InvalidOperationException">No overlapped sum is under way.</exception>
    /// <exception cref="ArgumentOutOfRangeException">No such buffer.</exception>
    public void MarkReady(int index)
    {
        var queue = _queue ?? throw new InvalidOperationException("MarkReady outside BeginOverlappedSum / EndOverlappedSum.");
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _buffers.Length);
        if (_marked![index]) return;
        _marked[index] = true;
        int b = _bucketOf![index];
        if (--_pending![b] == 0) queue.Add(b);
    }

    /// <summary>Marks every buffer not yet marked, waits until every bucket is summed, and rethrows a failure of the communication thread.</summary>
    public void EndOverlappedSum()
    {
        var queue = _queue ?? throw new InvalidOperationException("EndOverlappedSum without BeginOverlappedSum.");
        try
        {
            for (int i = 0; i < _buffers.Length; i++) MarkReady(i);
            queue.CompleteAdding();
            _worker?.Join();
        }
        finally
        {
            queue.Dispose();
            _queue = null;
            _worker = null;
        }
        if (_workerError is { } e)
            throw new CollectiveException($"the overlapped all-reduce failed: {e.Message}", e);
    }

    private void ReduceBucket(Bucket bucket, bool mean)
    {
        if (bucket.BufferCount == 1)
        {
            if (mean) _collective.AllReduceMean(_buffers[bucket.FirstBuffer]);
            else _collective.AllReduceSum(_buffers[bucket.FirstBuffer]);
            return;
        }
        var staging = _staging ??= new float[BucketElements];
        var packed = staging.AsSpan(0, (int)bucket.Elements);
        int at = 0;
        for (int i = bucket.FirstBuffer; i < bucket.FirstBuffer + bucket.BufferCount; i++)
        {
            _buffers[i].CopyTo(packed[at..]);
            at += _buffers[i].Length;
        }
        if (mean) _collective.AllReduceMean(packed);
        else _collective.AllReduceSum(packed);
        at = 0;
        for (int i = bucket.FirstBuffer; i < bucket.FirstBuffer + bucket.BufferCount; i++)
        {
            packed.Slice(at, _buffers[i].Length).CopyTo(_buffers[i]);
            at += _buffers[i].Length;
        }
    }
}
