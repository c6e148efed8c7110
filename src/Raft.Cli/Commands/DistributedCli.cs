using System.CommandLine;
using Raft.Distributed;

namespace Raft.Cli.Commands;

/// <summary>The <c>--collective</c> option and the per-rank setup shared by <c>raft train</c>, <c>raft sft</c> and <c>raft refine</c>.</summary>
internal static class DistributedCli
{
    /// <summary>A new <c>--collective</c> option (default auto: MPI under mpirun/srun, else one process).</summary>
    public static Option<string> CollectiveOption() => new("--collective")
    {
        Description = "Process group: auto (MPI when started by mpirun or srun, else one process), none, mpi, or nccl (GPU collectives bootstrapped over MPI).",
        DefaultValueFactory = _ => "auto",
        HelpName = "auto|none|mpi|nccl",
    };

    /// <summary>
    /// Creates the collective of <paramref name="kind"/>; in a world of more than one rank, logs this rank once to
    /// <paramref name="stderr"/> and makes an unhandled exception on any thread abort the whole job.
    /// </summary>
    public static ICollective Open(string kind, TextWriter stderr)
    {
        ICollective world;
        try { world = Collectives.Create(kind); }
        catch (ArgumentException e) { throw new UsageException($"--collective {kind}: {e.Message}"); }
        catch (CollectiveUnavailableException e) { throw new UsageException($"--collective {kind}: {e.Message}"); }
        if (world.WorldSize > 1 || world.Backend != "none")
            stderr.WriteLine($"rank {world.Rank}/{world.WorldSize} on {world.HostName}, collective {world.Backend}");
        if (world.WorldSize > 1) Collectives.AbortJobOnUnhandledException(world);
        return world;
    }

    /// <summary>
    /// Runs <paramref name="body"/>; with several ranks, an exception ends the whole job (MPI_Abort) with a message naming
    /// this rank and host rather than leaving the other ranks waiting in their next collective.
    /// </summary>
    public static int Guard(ICollective world, Func<int> body)
    {
        if (world.WorldSize == 1) return body();
        try { return body(); }
        catch (Exception e)
        {
            world.Abort($"{e.GetType().Name}: {e.Message}", e is UsageException ? ExitCodes.Usage : ExitCodes.Failure);
            throw;
        }
    }
}
