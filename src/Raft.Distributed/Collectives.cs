namespace Raft.Distributed;

/// <summary>Chooses and creates a collective backend, and small helpers shared by its users.</summary>
public static class Collectives
{
    /// <summary>The backend names <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["auto", "none", "mpi", "nccl"];

    /// <summary>
    /// Creates a backend. <paramref name="kind"/>:
    /// <list type="bullet">
    /// <item><c>auto</c> (default): MPI when the environment shows an MPI launch (<see cref="DetectLauncher()"/>) and
    /// libmpi.so.40 loads, else a single process (with a warning on standard error when a launch was seen but the
    /// library is missing);</item>
    /// <item><c>none</c>: <see cref="SingleProcessCollective"/>;</item>
    /// <item><c>mpi</c>: <see cref="MpiCollective"/> (without a launcher, a singleton world of 1);</item>
    /// <item><c>nccl</c>: <see cref="NcclCollective"/> bootstrapped over MPI (or a single process when there is no launch).</item>
    /// </list>
    /// </summary>
    /// <param name="kind">auto, none, mpi or nccl (case-insensitive).</param>
    /// <param name="options">Timeout and message settings; null for <see cref="CollectiveOptions.FromEnvironment"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="kind"/> is not one of <see cref="Kinds"/>.</exception>
    /// <exception cref="CollectiveUnavailableException">The backend asked for cannot run here; the message says what is missing.</exception>
    public static ICollective Create(string kind = "auto", CollectiveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(kind);
        options ??= CollectiveOptions.FromEnvironment();
        options.Validate();
        switch (kind.Trim().ToLowerInvariant())
        {
            case "none":
                return new SingleProcessCollective();
            case "mpi":
                return new MpiCollective(options);
            case "nccl":
                NcclCollective.EnsureAvailable();
                ICollective bootstrap = DetectLauncher() is not null || MpiApi.IsAvailable
                    ? new MpiCollective(options)
                    : new SingleProcessCollective();
                try
                {
                    return new NcclCollective(bootstrap, ownsBootstrap: true);
                }
                catch
                {
                    bootstrap.Dispose();
                    throw;
                }
            case "auto":
                var launcher = DetectLauncher();
                if (launcher is null) return new SingleProcessCollective();
                if (MpiApi.IsAvailable) return new MpiCollective(options);
                Console.Error.WriteLine($"raft: warning: started by {launcher}, but {MpiApi.UnavailableReason} Running as a single process.");
                return new SingleProcessCollective();
            default:
                throw new ArgumentException($"Unknown collective '{kind}': expected one of {string.Join(", ", Kinds)}.", nameof(kind));
        }
    }

    /// <summary>
    /// The MPI launcher this process was started by, described with the variable that shows it, or null when none:
    /// Open MPI's mpirun (OMPI_COMM_WORLD_SIZE), PMIx (PMIX_RANK: Open MPI, <c>srun --mpi=pmix</c>), PMI-1/2
    /// (PMI_SIZE: MPICH's hydra, <c>srun --mpi=pmi2</c>), or Slurm's srun with a PMI plugin (SLURM_NTASKS with PMI_FD or PMIX_NAMESPACE).
    /// </summary>
    public static string? DetectLauncher() => DetectLauncher(Environment.GetEnvironmentVariable);

    internal static string? DetectLauncher(Func<string, string?> env)
    {
        static bool Set(string? value) => !string.IsNullOrWhiteSpace(value);
        if (Set(env("OMPI_COMM_WORLD_SIZE"))) return $"Open MPI's mpirun (OMPI_COMM_WORLD_SIZE={env("OMPI_COMM_WORLD_SIZE")})";
        if (Set(env("PMIX_RANK"))) return $"a PMIx launcher (PMIX_RANK={env("PMIX_RANK")})";
        if (Set(env("PMI_SIZE"))) return $"a PMI launcher (PMI_SIZE={env("PMI_SIZE")})";
        if (Set(env("SLURM_NTASKS")) && (Set(env("PMI_FD")) || Set(env("PMIX_NAMESPACE"))))
            return $"Slurm's srun with PMI (SLURM_NTASKS={env("SLURM_NTASKS")})";
        return null;
    }

    /// <summary>
    /// ⌈<paramref name="length"/> / <paramref name="worldSize"/>⌉: the chunk of the padding rule of
    /// <see cref="ICollective.ReduceScatterSum"/> (send buffers hold chunk × world size elements, zero past the end).
    /// </summary>
    public static long ChunkLength(long length, int worldSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        return (length + worldSize - 1) / worldSize;
    }

    /// <summary>
    /// Gives every rank every rank's bytes (of any length, which may differ between ranks): element r of the result is
    /// rank r's <paramref name="mine"/>. The lengths are exchanged first (an all-reduce), then each rank's bytes are
    /// broadcast from it in rank order. For results a few ranks produce once (sharded refinement), not for hot loops.
    /// </summary>
    /// <param name="collective">The process group; every rank must call this at the same point.</param>
    /// <param name="mine">This rank's bytes.</param>
    public static byte[][] AllGatherBytes(ICollective collective, ReadOnlySpan<byte> mine)
    {
        ArgumentNullException.ThrowIfNull(collective);
        int world = collective.WorldSize;
        var result = new byte[world][];
        if (world == 1)
        {
            result[0] = mine.ToArray();
            return result;
        }
        var lengths = new double[world];
        lengths[collective.Rank] = mine.Length;
        collective.AllReduce(lengths, ReduceOp.Sum);
        for (int r = 0; r < world; r++)
        {
            var buffer = r == collective.Rank ? mine.ToArray() : new byte[checked((int)lengths[r])];
            if (buffer.Length > 0) collective.Broadcast(buffer.AsSpan(), r);
            result[r] = buffer;
        }
        return result;
    }

    /// <summary>
    /// The contiguous block of <paramref name="count"/> items that rank <paramref name="rank"/> of
    /// <paramref name="worldSize"/> takes: the first <c>count mod worldSize</c> ranks take one more item than the others,
    /// and the blocks follow each other in rank order.
    /// </summary>
    public static (int Start, int Count) Shard(int count, int rank, int worldSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, worldSize);
        int baseCount = count / worldSize, extra = count % worldSize;
        int start = rank * baseCount + Math.Min(rank, extra);
        return (start, baseCount + (rank < extra ? 1 : 0));
    }

    /// <summary>
    /// Makes an unhandled exception on any thread end the whole job through <paramref name="collective"/>'s
    /// <see cref="ICollective.Abort"/> (MPI_Abort), with a message naming the rank, the host and the exception, instead
    /// of leaving the other ranks waiting in their next collective.
    /// </summary>
    public static void AbortJobOnUnhandledException(ICollective collective)
    {
        ArgumentNullException.ThrowIfNull(collective);
        AppDomain.CurrentDomain.UnhandledException += (_, e) =>
            collective.Abort($"unhandled {(e.ExceptionObject as Exception)?.GetType().Name ?? "exception"}: {(e.ExceptionObject as Exception)?.Message ?? e.ExceptionObject?.ToString()}");
    }
}
