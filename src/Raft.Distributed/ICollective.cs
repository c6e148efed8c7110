namespace Raft.Distributed;

/// <summary>The reduction applied by <see cref="ICollective.AllReduce(Span{double}, ReduceOp)"/>.</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum over the ranks.</summary>
    Sum,
    /// <summary>Element-wise maximum over the ranks.</summary>
    Max,
    /// <summary>Element-wise minimum over the ranks.</summary>
    Min,
}

/// <summary>
/// The collectives a data-parallel run needs, over host memory, for a fixed group of <see cref="WorldSize"/>
/// processes. Every rank must call the same collectives in the same order with the same lengths (the usual MPI
/// contract); a mismatch is an error of the caller and may hang or fail inside the backend, which is what the
/// optional collective timeout of <see cref="CollectiveOptions.TimeoutSeconds"/> is for.
/// </summary>
/// <remarks>
/// Buffers are reduced in place where the signature takes one <see cref="Span{T}"/>. Lengths are checked at the
/// entry points and a wrong one raises <see cref="ArgumentException"/> naming the argument and the value, before
/// any communication. Implementations are not thread-safe: call them from one thread at a time.
/// </remarks>
public interface ICollective : IDisposable
{
    /// <summary>This process's rank, 0 ≤ Rank &lt; <see cref="WorldSize"/>.</summary>
    int Rank { get; }

    /// <summary>The number of processes in the group (≥ 1).</summary>
    int WorldSize { get; }

    /// <summary>The backend's name: "none" (single process), "mpi" or "nccl".</summary>
    string Backend { get; }

    /// <summary>The host this rank runs on (as the backend names it; for MPI, MPI_Get_processor_name).</summary>
    string HostName { get; }

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();

    /// <summary>Copies <paramref name="root"/>'s <paramref name="data"/> into every rank's <paramref name="data"/> (same length on every rank).</summary>
    void Broadcast(Span<float> data, int root);

    /// <summary>Copies <paramref name="root"/>'s bytes into every rank's <paramref name="data"/> (ids, configuration, seeds).</summary>
    void Broadcast(Span<byte> data, int root);

    /// <summary>In place: every rank's <paramref name="data"/> becomes the element-wise sum over the ranks.</summary>
    void AllReduceSum(Span<float> data);

    /// <summary>In place: every rank's <paramref name="data"/> becomes the element-wise mean over the ranks (the sum divided by <see cref="WorldSize"/>).</summary>
    void AllReduceMean(Span<float> data);

    /// <summary>In place, in double precision (metrics, loss sums, counts, norms): the element-wise <paramref name="op"/> over the ranks.</summary>
    void AllReduce(Span<double> data, ReduceOp op = ReduceOp.Sum);

    /// <summary>
    /// Sums <paramref name="send"/> over the ranks and leaves chunk r of the sum on rank r:
    /// <c>receive[i] = Σ_ranks send[Rank·c + i]</c> with <c>c = receive.Length</c>, and
    /// <c>send.Length</c> must be exactly <c>c · WorldSize</c> (equal chunks).
    /// </summary>
    /// <remarks>
    /// Padding rule for a vector of length L that WorldSize does not divide: use chunks of
    /// <see cref="Collectives.ChunkLength(long, int)"/> = ⌈L / WorldSize⌉ elements, pass a send buffer of
    /// <c>chunk · WorldSize</c> elements whose tail beyond L is zero, and ignore the part of the last ranks'
    /// chunks that falls beyond L. The same padded layout, given to <see cref="AllGather"/>, restores the full vector.
    /// <paramref name="send"/> and <paramref name="receive"/> must not overlap.
    /// </remarks>
    void ReduceScatterSum(ReadOnlySpan<float> send, Span<float> receive);

    /// <summary>
    /// Concatenates every rank's <paramref name="send"/> in rank order into every rank's <paramref name="receive"/>:
    /// <c>receive[r·n + i] = send_r[i]</c> with <c>n = send.Length</c> (the same on every rank), and
    /// <c>receive.Length</c> must be exactly <c>n · WorldSize</c>. The buffers must not overlap.
    /// </summary>
    void AllGather(ReadOnlySpan<float> send, Span<float> receive);

    /// <summary>
    /// Ends the whole job now: writes <paramref name="reason"/> (prefixed with the rank and host) to standard error and
    /// terminates every rank with <paramref name="errorCode"/> (MPI_Abort under MPI; the process exits otherwise).
    /// Does not return.
    /// </summary>
    void Abort(string reason, int errorCode = 1);
}
