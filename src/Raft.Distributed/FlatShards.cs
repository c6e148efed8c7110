namespace Raft.Distributed;

/// <summary>
/// ZeRO's layout over a fixed list of float buffers (a model's parameters, or its gradients, in one order): their
/// concatenation, of <see cref="TotalLength"/> elements, is cut into <see cref="ICollective.WorldSize"/> contiguous
/// chunks of <see cref="ChunkLength"/> = ⌈total / N⌉ elements, and rank r owns chunk r (the last ranks' chunks are
/// shorter, or empty, where the total ends). Model-agnostic: it only sees <c>float[]</c>s.
/// </summary>
/// <remarks>
/// The three collectives a sharded optimizer needs are done in rounds of at most <see cref="PieceElements"/> elements
/// of each chunk, so that the staging memory is bounded (about N · piece floats) and no flat copy of all the buffers
/// is ever made: <see cref="ReduceScatterSum"/> (the gradients' sum, this rank's chunk only), <see cref="AllGather"/>
/// (each rank's updated chunk into every rank's buffers) and <see cref="GatherToRoot"/> (every chunk to one rank, for
/// a checkpoint). Every rank must create it over buffers of the same lengths and call the same methods in the same order.
/// </remarks>
public sealed class FlatShards
{
    private readonly ICollective _collective;
    private readonly long[] _offsets; // _offsets[i] = start of buffer i in the concatenation; _offsets[^1] = total
    private float[]? _send, _receive;

    /// <summary>Plans the layout for buffers of <paramref name="lengths"/> over <paramref name="collective"/>'s ranks.</summary>
    /// <param name="collective">The process group.</param>
    /// <param name="lengths">The buffers' lengths, in their concatenation order.</param>
    /// <param name="pieceElements">Elements of a chunk moved per round (≥ 1); 0 for about 25 MiB of staging per round in all.</param>
    public FlatShards(ICollective collective, IReadOnlyList<int> lengths, int pieceElements = 0)
    {
        ArgumentNullException.ThrowIfNull(collective);
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentOutOfRangeException.ThrowIfNegative(pieceElements);
        _collective = collective;
        _offsets = new long[lengths.Count + 1];
        for (int i = 0; i < lengths.Count; i++)
        {
            if (lengths[i] < 0) throw new ArgumentException($"lengths[{i}] = {lengths[i]}: must be ≥ 0.", nameof(lengths));
            _offsets[i + 1] = _offsets[i] + lengths[i];
        }
        TotalLength = _offsets[^1];
        int n = collective.WorldSize;
        ChunkLength = Collectives.ChunkLength(TotalLength, n);
        long piece = pieceElements > 0 ? pieceElements : Math.Max(1, GradientBucketer.DefaultBucketElements / n);
        PieceElements = (int)Math.Max(1, Math.Min(piece, ChunkLength));
        (Start, Length) = Range(collective.Rank);
    }

    /// <summary>Elements in all the buffers together.</summary>
    public long TotalLength { get; }

    /// <summary>⌈<see cref="TotalLength"/> / N⌉: the chunk of every rank but the last ones.</summary>
    public long ChunkLength { get; }

    /// <summary>Elements of each chunk moved per collective call.</summary>
    public int PieceElements { get; }

    /// <summary>Where this rank's chunk starts in the concatenation.</summary>
    public long Start { get; }

    /// <summary>This rank's chunk length (0 when the total ends before it).</summary>
    public long Length { get; }

    /// <summary>The chunk rank <paramref name="rank"/> owns: [Start, Start + Length) of the concatenation.</summary>
    public (long Start, long Length) Range(int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, _collective.WorldSize);
        long start = Math.Min(rank * ChunkLength, TotalLength);
        return (start, Math.Min(ChunkLength, TotalLength - start));
    }

    /// <summary>
    /// Sums <paramref name="buffers"/> over the ranks and leaves this rank's chunk of the sum in <paramref name="chunk"/>
    /// (of <see cref="Length"/> elements); the buffers are not changed.
    /// </summary>
    public void ReduceScatterSum(IReadOnlyList<float[]> buffers, Span<float> chunk)
    {
        CheckBuffers(buffers);
        if (chunk.Length != Length) throw new ArgumentException($"chunk.Length is {chunk.Length}; this rank's chunk has {Length} elements.", nameof(chunk));
        int n = _collective.WorldSize;
        for (long at = 0; at < ChunkLength; at += PieceElements)
        {
            int piece = (int)Math.Min(PieceElements, ChunkLength - at);
            var send = Staging(ref _send, (long)piece * n);
            for (int r = 0; r < n; r++) Read(buffers, r * ChunkLength + at, send.Slice(r * piece, piece));
            var receive = Staging(ref _receive, piece);
            _collective.ReduceScatterSum(send, receive);
            long keep = Math.Min(piece, Length - at);
            if (keep > 0) receive[..(int)keep].CopyTo(chunk[(int)at..]);
        }
    }

    /// <summary>
    /// Copies every rank's chunk of its <paramref name="buffers"/> into every rank's <paramref name="buffers"/>: after
    /// each rank updated its own chunk, all ranks hold the same buffers.
    /// </summary>
    public void AllGather(IReadOnlyList<float[]> buffers)
    {
        CheckBuffers(buffers);
        int n = _collective.WorldSize;
        if (n == 1) return;
        for (long at = 0; at < ChunkLength; at += PieceElements)
        {
            int piece = (int)Math.Min(PieceElements, ChunkLength - at);
            var send = Staging(ref _send, piece);
            Read(buffers, Start + at, send, limit: Start + Length);
            var receive = Staging(ref _receive, (long)piece * n);
            _collective.AllGather(send, receive);
            for (int r = 0; r < n; r++)
            {
                var (start, length) = Range(r);
                int count = (int)Math.Clamp(length - at, 0, piece);
                if (count > 0) Write(buffers, start + at, receive.Slice(r * piece, count));
            }
        }
    }

    /// <summary>
    /// Sends every rank's <paramref name="chunk"/> (its <see cref="Length"/> elements) to <paramref name="root"/>, which
    /// writes each at its place in <paramref name="rootBuffers"/> (required there, ignored elsewhere): the full state
    /// of a sharded optimizer on one rank, for a checkpoint. The other ranks only need a piece of staging.
    /// </summary>
    public void GatherToRoot(ReadOnlySpan<float> chunk, IReadOnlyList<float[]>? rootBuffers, int root = 0)
    {
        CollectiveChecks.Root(root, _collective.WorldSize);
        if (chunk.Length != Length) throw new ArgumentException($"chunk.Length is {chunk.Length}; this rank's chunk has {Length} elements.", nameof(chunk));
        bool isRoot = _collective.Rank == root;
        if (isRoot)
        {
            if (rootBuffers is null) throw new ArgumentNullException(nameof(rootBuffers), "the root rank needs the buffers to write the chunks into.");
            CheckBuffers(rootBuffers);
            Write(rootBuffers, Start, chunk);
        }
        for (int r = 0; r < _collective.WorldSize; r++)
        {
            if (r == root) continue;
            var (start, length) = Range(r);
            for (long at = 0; at < length; at += PieceElements)
            {
                int piece = (int)Math.Min(PieceElements, length - at);
                var buffer = Staging(ref _send, piece);
                if (r == _collective.Rank) chunk.Slice((int)at, piece).CopyTo(buffer);
                _collective.Broadcast(buffer, r);
                if (isRoot) Write(rootBuffers!, start + at, buffer);
            }
        }
    }

    /// <summary>
    /// Copies elements [<paramref name="start"/>, start + destination.Length) of the concatenation into
    /// <paramref name="destination"/>, with zeros for the positions at or past <paramref name="limit"/> (default: the end).
    /// </summary>
    public void Read(IReadOnlyList<float[]> buffers, long start, Span<float> destination, long limit = -1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        long end = limit < 0 ? TotalLength : Math.Min(limit, TotalLength);
        int available = (int)Math.Clamp(end - start, 0, destination.Length);
        destination[available..].Clear();
        foreach (var (b, offset, at, count) in Segments(start, available))
            buffers[b].AsSpan(offset, count).CopyTo(destination.Slice(at, count));
    }

    /// <summary>Copies <paramref name="source"/> into elements [<paramref name="start"/>, start + source.Length) of the concatenation (which must hold them).</summary>
    public void Write(IReadOnlyList<float[]> buffers, long start, ReadOnlySpan<float> source)
    {
        if (start < 0 || start + source.Length > TotalLength)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"[{start}, {start + source.Length}) is outside the {TotalLength} elements.");
        foreach (var (b, offset, at, count) in Segments(start, source.Length))
            source.Slice(at, count).CopyTo(buffers[b].AsSpan(offset, count));
    }

    // (buffer, offset in it, offset in the range, count) for each buffer that the range [start, start + count) touches.
    private List<(int Buffer, int Offset, int At, int Count)> Segments(long start, int count)
    {
        var segments = new List<(int, int, int, int)>();
        if (count <= 0) return segments;
        int b = Array.BinarySearch(_offsets, start);
        if (b < 0) b = ~b - 1;
        int done = 0;
        while (done < count)
        {
            while (start + done >= _offsets[b + 1]) b++; // also steps over empty buffers
            int offset = (int)(start + done - _offsets[b]);
            int n = (int)Math.Min(count - done, _offsets[b + 1] - (start + done));
            segments.Add((b, offset, done, n));
            done += n;
        }
        return segments;
    }

    private void CheckBuffers(IReadOnlyList<float[]> buffers)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        if (buffers.Count != _offsets.Length - 1)
            throw new ArgumentException($"{buffers.Count} buffers given; the layout was planned for {_offsets.Length - 1}.", nameof(buffers));
        for (int i = 0; i < buffers.Count; i++)
            if (buffers[i] is null || buffers[i].Length != _offsets[i + 1] - _offsets[i])
                throw new ArgumentException($"buffers[{i}] has {buffers[i]?.Length.ToString() ?? "null"} elements; the layout was planned for {_offsets[i + 1] - _offsets[i]}.", nameof(buffers));
    }

    private static Span<float> Staging(ref float[]? buffer, long length)
    {
        if (buffer is null || buffer.Length < length) buffer = new float[length];
        return buffer.AsSpan(0, (int)length);
    }
}
