// Raft.Distributed.MpiHost: runs one MPI test scenario at this rank and prints PASS/FAIL lines; started by
// tests/Raft.Distributed.Tests under `mpirun -np N dotnet Raft.Distributed.MpiHost.dll <scenario> [options]`.
//
//   collectives [--max-per-call N]   every collective on deterministic per-rank random data (lengths 1, 7, 1001,
//                                    65537), checked against the result computed locally from every rank's data
//   errors                           an MPI error code becomes an MpiException naming the call and MPI's text
//   throw                            rank 1 throws; the unhandled-exception hook aborts the job (MPI_Abort)
//   timeout [--timeout S]            rank 1 sleeps past the collective timeout before a barrier; the watchdog aborts
//
// Exit code 0 when every check passed; 1 otherwise.
using System.Globalization;
using Raft.Distributed;

var scenario = args.Length > 0 ? args[0] : "collectives";
int maxPerCall = OptionInt("--max-per-call", int.MaxValue);
double timeout = OptionDouble("--timeout", 0);

using var mpi = new MpiCollective(new CollectiveOptions { MaxElementsPerCall = maxPerCall, TimeoutSeconds = timeout });
var host = new MpiHost(mpi);
Console.WriteLine($"rank {mpi.Rank} of {mpi.WorldSize} on {mpi.HostName}: {scenario} (thread level {mpi.ThreadLevel}, {mpi.LibraryPath})");
int failures = scenario switch
{
    "collectives" => host.Collectives(),
    "errors" => host.Errors(),
    "throw" => host.Throw(),
    "timeout" => host.Timeout(),
    _ => throw new ArgumentException($"unknown scenario '{scenario}'"),
};
mpi.Barrier();
Console.WriteLine(failures == 0 ? $"rank {mpi.Rank}: ALL PASS" : $"rank {mpi.Rank}: {failures} FAILED");
return failures == 0 ? 0 : 1;

int OptionInt(string name, int fallback)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}

double OptionDouble(string name, double fallback)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? double.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}
