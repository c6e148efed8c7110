// Raft.Pipeline.MpiHost: runs one data-parallel pipeline scenario at this rank and prints PASS/FAIL lines; started by
// tests/Raft.Pipeline.Tests under `mpirun -np N dotnet Raft.Pipeline.MpiHost.dll <scenario> --dir DIR`.
//
//   sft    3 SFT steps, N ranks × batch 2 against 1 process × batch 2N (same weights, same metrics); checkpoints
//          written by rank 0 only
//   raft   the same for RAFT (rollouts seeded by their global index, an engine teacher)
//   refine a sharded refine writes the same bytes as a single process
//   zero-sft, zero-raft
//          ZeRO-1 (shard_optimizer): sharded and unsharded N-rank runs against 1 process × batch 2N; without clipping
//          sharded == unsharded bit for bit (weights and checkpoint files); a sharded resume equals the uninterrupted run
//
//   frozen  trainable = "mlp" with and without shard_optimizer: frozen tensors keep their bits, the rest matches 1 process
//   overlap
//          the all-reduce overlapped with the backward (small buckets) ends with the same bits as after the backward
//
//   accumulate
//          gradient_accumulation_steps 2 on N ranks × batch 1 (plain and ZeRO-1) against 1 process × batch 2N
//
//   eval   evaluation during training (eval_every 1): rank 0 alone evaluates, the weights are those of the run without it
//
// Exit code 0 when every check passed; 1 otherwise.
using Raft.Distributed;
using Raft.Pipeline.MpiHost;

var scenario = args.Length > 0 ? args[0] : "sft";
int at = Array.IndexOf(args, "--dir");
string dir = at >= 0 && at + 1 < args.Length ? args[at + 1] : Path.Combine(Path.GetTempPath(), "raft-pipeline-mpihost");

using var mpi = new MpiCollective(new CollectiveOptions { TimeoutSeconds = 100 });
Collectives.AbortJobOnUnhandledException(mpi);
var host = new Scenarios(mpi, dir);
Console.WriteLine($"rank {mpi.Rank} of {mpi.WorldSize} on {mpi.HostName}: {scenario}");
int failures = scenario switch
{
    "sft" => host.Equivalence(raft: false),
    "raft" => host.Equivalence(raft: true),
    "refine" => host.Refine(),
    "zero-sft" => host.Zero(raft: false),
    "zero-raft" => host.Zero(raft: true),
    "overlap" => host.Overlap(),
    "frozen" => host.Frozen(),
    "lora" => host.Lora(),
    "accumulate" => host.Accumulation(),
    "eval" => host.Eval(),
    _ => throw new ArgumentException($"unknown scenario '{scenario}'"),
};
mpi.Barrier();
Console.WriteLine(failures == 0 ? $"rank {mpi.Rank}: ALL PASS" : $"rank {mpi.Rank}: {failures} FAILED");
return failures == 0 ? 0 : 1;
