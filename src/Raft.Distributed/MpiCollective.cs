namespace Raft.Distributed;

/// <summary>
/// Collectives over MPI_COMM_WORLD through a thin interop with Open MPI's libmpi.so.40 (Debian's openmpi-bin and
/// libopenmpi-dev). Creating it initializes MPI (MPI_Init_thread, asking for MPI_THREAD_MULTIPLE so that the
/// collective timeout's watchdog thread may call MPI_Abort) unless the process already did; disposing it calls
/// MPI_Finalize if it initialized. MPI can be initialized once per process: create one instance and keep it.
/// </summary>
/// <remarks>
/// The communicator's error handler is MPI_ERRORS_RETURN, so every failure comes back as a code and is raised as an
/// <see cref="MpiException"/> naming the call and MPI's error string. Buffers longer than
/// <see cref="CollectiveOptions.MaxElementsPerCall"/> are split into several calls (MPI counts are C ints).
/// </remarks>
public sealed unsafe class MpiCollective : ICollective
{
    private static int s_state; // 0: never created, 1: live, 2: finalized
    private readonly MpiApi _mpi;
    private readonly bool _ownsInit;
    private readonly int _maxPerCall;
    private readonly CollectiveWatchdog? _watchdog;
    private bool _disposed;

    /// <summary>Initializes MPI (when not yet initialized) and reads rank, world size and host.</summary>
    /// <param name="options">Timeout and message-size settings; null for <see cref="CollectiveOptions.FromEnvironment"/>.</param>
    /// <exception cref="CollectiveUnavailableException">libmpi.so.40 cannot be loaded (the message names the apt packages).</exception>
    /// <exception cref="InvalidOperationException">An MpiCollective already exists or MPI was finalized in this process.</exception>
    /// <exception cref="MpiException">An MPI call failed.</exception>
    public MpiCollective(CollectiveOptions? options = null)
    {
        options ??= CollectiveOptions.FromEnvironment();
        options.Validate();
        _mpi = MpiApi.Instance;
        if (Interlocked.CompareExchange(ref s_state, 1, 0) != 0)
            throw new InvalidOperationException("MPI is initialized once per process: an MpiCollective was already created here (keep and share one instance).");
        _maxPerCall = options.MaxElementsPerCall;

        int flag = 0;
        _mpi.Check(_mpi.MPI_Initialized(&flag), "MPI_Initialized");
        int provided = MpiApi.ThreadMultiple;
        if (flag == 0)
        {
            _mpi.Check(_mpi.MPI_Init_thread(null, null, MpiApi.ThreadMultiple, &provided), "MPI_Init_thread");
            _ownsInit = true;
        }
        ThreadLevel = provided;
        _mpi.Check(_mpi.MPI_Comm_set_errhandler(_mpi.CommWorld, _mpi.ErrorsReturn), "MPI_Comm_set_errhandler");
        int rank = 0, size = 0;
        _mpi.Check(_mpi.MPI_Comm_rank(_mpi.CommWorld, &rank), "MPI_Comm_rank");
        _mpi.Check(_mpi.MPI_Comm_size(_mpi.CommWorld, &size), "MPI_Comm_size");
        Rank = rank;
        WorldSize = size;
        HostName = _mpi.ProcessorName();
        LibraryPath = _mpi.LoadedFrom;
        if (options.TimeoutSeconds > 0)
            _watchdog = new CollectiveWatchdog(options.TimeoutSeconds, Describe, message =>
            {
                _mpi.MPI_Abort(_mpi.CommWorld, TimeoutExitCode);
                Environment.FailFast("raft: MPI_Abort returned after the collective timeout: " + message);
            });
    }

    /// <summary>The error code given to MPI_Abort when the collective timeout fires (62, ETIME; mpirun then exits non-zero).</summary>
    public const int TimeoutExitCode = 62;

    /// <summary>Whether libmpi.so.40 can be loaded here (no MPI call is made).</summary>
    public static bool IsLibraryAvailable => MpiApi.IsAvailable;

    /// <summary>Why libmpi.so.40 cannot be loaded (empty when it can).</summary>
    public static string LibraryUnavailableReason => MpiApi.UnavailableReason;

    /// <inheritdoc/>
    public int Rank { get; }

    /// <inheritdoc/>
    public int WorldSize { get; }

    /// <inheritdoc/>
    public string Backend => "mpi";

    /// <inheritdoc/>
    public string HostName { get; }

    /// <summary>The thread support level MPI_Init_thread provided (0 single … 3 multiple).</summary>
    public int ThreadLevel { get; }

    /// <summary>The path or name libmpi was loaded from.</summary>
    public string LibraryPath { get; }

    private string Describe() => $"rank {Rank} of {WorldSize} on {HostName}";

    private CollectiveWatchdog.Scope Watch(string call)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _watchdog is null ? default : _watchdog.Enter(call);
    }

    /// <inheritdoc/>
    public void Barrier()
    {
        using var _ = Watch("MPI_Barrier");
        _mpi.Check(_mpi.MPI_Barrier(_mpi.CommWorld), "MPI_Barrier");
    }

    /// <inheritdoc/>
    public void Broadcast(Span<float> data, int root)
    {
        CollectiveChecks.Root(root, WorldSize);
        fixed (float* p = data) Bcast(p, data.Length, sizeof(float), _mpi.Float, root);
    }

    /// <inheritdoc/>
    public void Broadcast(Span<byte> data, int root)
    {
        CollectiveChecks.Root(root, WorldSize);
        fixed (byte* p = data) Bcast(p, data.Length, 1, _mpi.Byte, root);
    }

    private void Bcast(void* data, long count, int elementSize, IntPtr type, int root)
    {
        using var _ = Watch("MPI_Bcast");
        for (long at = 0; at < count; at += _maxPerCall)
        {
            int n = (int)Math.Min(_maxPerCall, count - at);
            _mpi.Check(_mpi.MPI_Bcast((byte*)data + at * elementSize, n, type, root, _mpi.CommWorld), "MPI_Bcast");
        }
    }

    /// <inheritdoc/>
    public void AllReduceSum(Span<float> data)
    {
        fixed (float* p = data) AllReduceInPlace(p, data.Length, sizeof(float), _mpi.Float, _mpi.OpSum);
    }

    /// <summary>
    /// In place over host memory that is not a managed span (for example a pinned or native gradient arena):
    /// <paramref name="count"/> floats at <paramref name="data"/> become their sum over the ranks. Counts above
    /// <see cref="int.MaxValue"/> are split into several MPI calls.
    /// </summary>
    public void AllReduceSum(IntPtr data, long count)
    {
        if (data == IntPtr.Zero && count > 0) throw new ArgumentNullException(nameof(data));
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        AllReduceInPlace((void*)data, count, sizeof(float), _mpi.Float, _mpi.OpSum);
    }

    /// <inheritdoc/>
    public void AllReduceMean(Span<float> data)
    {
        AllReduceSum(data);
        if (WorldSize > 1) Scale.InPlace(data, 1f / WorldSize);
    }

    /// <inheritdoc/>
    public void AllReduce(Span<double> data, ReduceOp op = ReduceOp.Sum)
    {
        var mpiOp = _mpi.Op(op);
        fixed (double* p = data) AllReduceInPlace(p, data.Length, sizeof(double), _mpi.Double, mpiOp);
    }

    private void AllReduceInPlace(void* data, long count, int elementSize, IntPtr type, IntPtr op)
    {
        using var _ = Watch("MPI_Allreduce");
        for (long at = 0; at < count; at += _maxPerCall)
        {
            int n = (int)Math.Min(_maxPerCall, count - at);
            _mpi.Check(_mpi.MPI_Allreduce((void*)MpiApi.InPlace, (byte*)data + at * elementSize, n, type, op, _mpi.CommWorld), "MPI_Allreduce");
        }
    }

    /// <inheritdoc/>
    public void ReduceScatterSum(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.ReduceScatter(send.Length, receive.Length, WorldSize, send.Overlaps(receive));
        using var _ = Watch("MPI_Reduce_scatter_block");
        int chunk = receive.Length;
        fixed (float* s = send)
        fixed (float* r = receive)
        {
            if (chunk <= _maxPerCall)
            {
                _mpi.Check(_mpi.MPI_Reduce_scatter_block(s, r, chunk, _mpi.Float, _mpi.OpSum, _mpi.CommWorld), "MPI_Reduce_scatter_block");
                return;
            }
            // Piece by piece: piece [at, at+n) of every rank's chunk is packed contiguously, reduce-scattered, and
            // lands at [at, at+n) of this rank's receive buffer.
            var packed = new float[(long)_maxPerCall * WorldSize];
            fixed (float* pk = packed)
            {
                for (int at = 0; at < chunk; at += _maxPerCall)
                {
                    int n = Math.Min(_maxPerCall, chunk - at);
                    for (int rank = 0; rank < WorldSize; rank++)
                        send.Slice(rank * chunk + at, n).CopyTo(packed.AsSpan(rank * n, n));
                    _mpi.Check(_mpi.MPI_Reduce_scatter_block(pk, r + at, n, _mpi.Float, _mpi.OpSum, _mpi.CommWorld), "MPI_Reduce_scatter_block");
                }
            }
        }
    }

    /// <inheritdoc/>
    public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.AllGather(send.Length, receive.Length, WorldSize, send.Overlaps(receive));
        using var _ = Watch("MPI_Allgather");
        int n0 = send.Length;
        fixed (float* s = send)
        fixed (float* r = receive)
        {
            if (n0 <= _maxPerCall)
            {
                _mpi.Check(_mpi.MPI_Allgather(s, n0, _mpi.Float, r, n0, _mpi.Float, _mpi.CommWorld), "MPI_Allgather");
                return;
            }
            var packed = new float[(long)_maxPerCall * WorldSize];
            fixed (float* pk = packed)
            {
                for (int at = 0; at < n0; at += _maxPerCall)
                {
                    int n = Math.Min(_maxPerCall, n0 - at);
                    _mpi.Check(_mpi.MPI_Allgather(s + at, n, _mpi.Float, pk, n, _mpi.Float, _mpi.CommWorld), "MPI_Allgather");
                    for (int rank = 0; rank < WorldSize; rank++)
                        packed.AsSpan(rank * n, n).CopyTo(receive.Slice(rank * n0 + at, n));
                }
            }
        }
    }

    /// <inheritdoc/>
    public void Abort(string reason, int errorCode = 1)
    {
        Console.Error.WriteLine($"raft: {Describe()}: aborting the job: {reason}");
        Console.Error.Flush();
        _mpi.MPI_Abort(_mpi.CommWorld, errorCode == 0 ? 1 : errorCode);
        Environment.FailFast($"raft: {Describe()}: MPI_Abort returned; {reason}");
    }

    /// <summary>Stops the watchdog and calls MPI_Finalize when this instance initialized MPI.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        try
        {
            if (_ownsInit)
            {
                using (Watch("MPI_Finalize"))
                    _mpi.Check(_mpi.MPI_Finalize(), "MPI_Finalize");
            }
        }
        finally
        {
            _disposed = true;
            _watchdog?.Dispose();
            Volatile.Write(ref s_state, 2);
        }
    }
}
