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
        foreach (var bucket in _buckets)
        {
            if (bucket.BufferCount == 1)
            {
                if (mean) _collective.AllReduceMean(_buffers[bucket.FirstBuffer]);
                else _collective.AllReduceSum(_buffers[bucket.FirstBuffer]);
                continue;
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
}
