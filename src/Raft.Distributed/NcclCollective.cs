namespace Raft.Distributed;

/// <summary>
/// NCCL collectives over GPU memory (libnccl.so.2), for gradients that live on the device. Rank 0 makes the
/// ncclUniqueId and a bootstrap collective (MPI under mpirun) broadcasts it; rank and world size are the
/// bootstrap's. The <see cref="ICollective"/> members over host spans go through the bootstrap (host memory is not
/// NCCL's business); the device overloads here go through NCCL.
/// </summary>
/// <remarks>
/// The device calls are asynchronous on the given CUDA stream (IntPtr.Zero is the legacy default stream): synchronize
/// the stream before reading the result on the host. Pointers are CUdeviceptr values of the current CUDA context.
/// Each rank must use its own GPU, current before construction (NCCL takes the CUDA runtime's current device; with
/// several GPUs per node, start each rank with CUDA_VISIBLE_DEVICES set from its local rank, e.g.
/// OMPI_COMM_WORLD_LOCAL_RANK). The collective timeout watches the bootstrap's host calls only; the device calls
/// return as soon as they are enqueued.
/// </remarks>
public sealed unsafe class NcclCollective : ICollective
{
    private readonly NcclApi _nccl;
    private readonly ICollective _bootstrap;
    private readonly bool _ownsBootstrap;
    private IntPtr _comm;

    /// <summary>Creates the NCCL communicator over the ranks of <paramref name="bootstrap"/>.</summary>
    /// <param name="bootstrap">The host collective used to share the unique id (an <see cref="MpiCollective"/>, or a single process).</param>
    /// <param name="ownsBootstrap">Whether <see cref="Dispose"/> also disposes the bootstrap.</param>
    /// <exception cref="CollectiveUnavailableException">libnccl.so.2 does not load, or no GPU is present.</exception>
    /// <exception cref="NcclException">ncclGetUniqueId or ncclCommInitRank failed.</exception>
    public NcclCollective(ICollective bootstrap, bool ownsBootstrap = true)
    {
        ArgumentNullException.ThrowIfNull(bootstrap);
        EnsureAvailable();
        _nccl = NcclApi.Instance;
        _bootstrap = bootstrap;
        _ownsBootstrap = ownsBootstrap;

        NcclUniqueId id = default;
        if (bootstrap.Rank == 0) _nccl.Check(_nccl.ncclGetUniqueId(&id), "ncclGetUniqueId");
        bootstrap.Broadcast(new Span<byte>(id.Bytes, NcclUniqueId.Size), 0);
        IntPtr comm;
        _nccl.Check(_nccl.ncclCommInitRank(&comm, bootstrap.WorldSize, id, bootstrap.Rank), "ncclCommInitRank");
        _comm = comm;
    }

    /// <summary>Whether libnccl.so.2 loads and a GPU is present (checked without creating a communicator).</summary>
    public static bool IsAvailable => NcclApi.IsAvailable && CudaPresence.DeviceCount > 0;

    /// <summary>Why the NCCL backend cannot run here (empty when it can).</summary>
    public static string UnavailableReason =>
        !NcclApi.IsAvailable ? NcclApi.UnavailableReason
        : CudaPresence.DeviceCount == 0 ? $"libnccl.so.2 loads but there is no GPU: {CudaPresence.Reason}."
        : "";

    /// <summary>Throws <see cref="CollectiveUnavailableException"/> with <see cref="UnavailableReason"/> when NCCL cannot run here.</summary>
    public static void EnsureAvailable()
    {
        if (!IsAvailable) throw new CollectiveUnavailableException("nccl", UnavailableReason);
    }

    /// <inheritdoc/>
    public int Rank => _bootstrap.Rank;

    /// <inheritdoc/>
    public int WorldSize => _bootstrap.WorldSize;

    /// <inheritdoc/>
    public string Backend => "nccl";

    /// <inheritdoc/>
    public string HostName => _bootstrap.HostName;

    /// <summary>The host collective used for bootstrap and for host buffers.</summary>
    public ICollective Bootstrap => _bootstrap;

    private IntPtr Comm
    {
        get
        {
            ObjectDisposedException.ThrowIf(_comm == IntPtr.Zero, this);
            return _comm;
        }
    }

    /// <summary>In place on the device: <paramref name="count"/> floats at <paramref name="data"/> become their sum over the ranks.</summary>
    public void AllReduceSum(IntPtr data, long count, IntPtr stream) => AllReduceDevice(data, count, NcclApi.OpSum, stream);

    /// <summary>In place on the device: <paramref name="count"/> floats at <paramref name="data"/> become their mean over the ranks (ncclAvg).</summary>
    public void AllReduceMean(IntPtr data, long count, IntPtr stream) => AllReduceDevice(data, count, NcclApi.OpAvg, stream);

    private void AllReduceDevice(IntPtr data, long count, int op, IntPtr stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        _nccl.Check(_nccl.ncclAllReduce((void*)data, (void*)data, (nuint)count, NcclApi.Float32, op, Comm, stream), "ncclAllReduce");
    }

    /// <summary>On the device: copies <paramref name="root"/>'s <paramref name="count"/> floats at <paramref name="data"/> to every rank.</summary>
    public void Broadcast(IntPtr data, long count, int root, IntPtr stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        CollectiveChecks.Root(root, WorldSize);
        _nccl.Check(_nccl.ncclBroadcast((void*)data, (void*)data, (nuint)count, NcclApi.Float32, root, Comm, stream), "ncclBroadcast");
    }

    /// <summary>
    /// On the device: <paramref name="send"/> holds <c>receiveCount · WorldSize</c> floats; rank r receives chunk r of
    /// their sum over the ranks (<paramref name="receiveCount"/> floats). Same padding rule as
    /// <see cref="ReduceScatterSum(ReadOnlySpan{float}, Span{float})"/>.
    /// </summary>
    public void ReduceScatterSum(IntPtr send, IntPtr receive, long receiveCount, IntPtr stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(receiveCount);
        _nccl.Check(_nccl.ncclReduceScatter((void*)send, (void*)receive, (nuint)receiveCount, NcclApi.Float32, NcclApi.OpSum, Comm, stream), "ncclReduceScatter");
    }

    /// <summary>On the device: every rank's <paramref name="sendCount"/> floats, concatenated in rank order into <paramref name="receive"/>.</summary>
    public void AllGather(IntPtr send, IntPtr receive, long sendCount, IntPtr stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sendCount);
        _nccl.Check(_nccl.ncclAllGather((void*)send, (void*)receive, (nuint)sendCount, NcclApi.Float32, Comm, stream), "ncclAllGather");
    }

    /// <inheritdoc/>
    public void Barrier() => _bootstrap.Barrier();

    /// <inheritdoc/>
    public void Broadcast(Span<float> data, int root) => _bootstrap.Broadcast(data, root);

    /// <inheritdoc/>
    public void Broadcast(Span<byte> data, int root) => _bootstrap.Broadcast(data, root);

    /// <inheritdoc/>
    public void AllReduceSum(Span<float> data) => _bootstrap.AllReduceSum(data);

    /// <inheritdoc/>
    public void AllReduceMean(Span<float> data) => _bootstrap.AllReduceMean(data);

    /// <inheritdoc/>
    public void AllReduce(Span<double> data, ReduceOp op = ReduceOp.Sum) => _bootstrap.AllReduce(data, op);

    /// <inheritdoc/>
    public void ReduceScatterSum(ReadOnlySpan<float> send, Span<float> receive) => _bootstrap.ReduceScatterSum(send, receive);

    /// <inheritdoc/>
    public void AllGather(ReadOnlySpan<float> send, Span<float> receive) => _bootstrap.AllGather(send, receive);

    /// <inheritdoc/>
    public void Abort(string reason, int errorCode = 1) => _bootstrap.Abort(reason, errorCode);

    /// <summary>Destroys the NCCL communicator (and the bootstrap when owned).</summary>
    public void Dispose()
    {
        if (_comm != IntPtr.Zero)
        {
            var comm = _comm;
            _comm = IntPtr.Zero;
            _nccl.Check(_nccl.ncclCommDestroy(comm), "ncclCommDestroy");
        }
        if (_ownsBootstrap) _bootstrap.Dispose();
    }
}
