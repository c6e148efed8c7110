using System.Text.Json;
using System.Text.RegularExpressions;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// <c>raft sft</c> and <c>raft train</c> started by <c>mpirun -np 2</c> (the real binary, one process per rank): the
/// run is distributed, every rank says its rank and host once, only rank 0 writes the run directory, and the final
/// weights are those of one process with the doubled batch. Skipped without mpirun unless RAFT_REQUIRE_MPI=1.
/// </summary>
public class DistributedCliTests : CliHarness
{
    private const int Ranks = 2;
    private const int TimeoutSeconds = 240;

    private static string RaftDll => Path.Combine(AppContext.BaseDirectory, "raft.dll");

    /// <summary>mpirun -np 2 dotnet raft.dll <paramref name="args"/>.</summary>
    private static (int Code, string Output) MpiRaft(string[] args, IReadOnlyDictionary<string, string>? environment = null) =>
        MpiLauncher.Run(RaftDll, Ranks, args, TimeoutSeconds, environment);

    /// <summary>The flat weights of a checkpoint, in the config's tensor order.</summary>
    private static float[] Weights(string checkpoint) => PipelineFixtures.Weights(checkpoint);

    /// <summary>‖a − b‖ / ‖a‖.</summary>
    internal static double RelativeDifference(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)a[i] - b[i];
            diff += d * d;
            norm += (double)a[i] * a[i];
        }
        Assert.True(norm > 0, "the reference weights are all zero");
        return Math.Sqrt(diff / norm);
    }

    /// <summary>Each rank's "rank R/2 on HOST, collective mpi" line appears exactly once.</summary>
    internal static void AssertEachRankLoggedOnce(string output)
    {
        for (int rank = 0; rank < Ranks; rank++)
        {
            var lines = Regex.Matches(output, $@"(?m)^rank {rank}/{Ranks} on \S+, collective mpi\s*$");
            Assert.True(lines.Count == 1, $"rank {rank} logged its rank and host {lines.Count} times:\n{output}");
        }
    }

    private static void AssertNoStagingLeft(string run)
    {
        var staging = Directory.GetFileSystemEntries(run, "*staging*", SearchOption.AllDirectories);
        Assert.True(staging.Length == 0, "staging left behind: " + string.Join(", ", staging));
    }

    [MpiFact]
    public void Sft_under_mpirun_matches_one_process_with_the_doubled_batch_and_only_rank_0_writes()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"), seed: 4);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"), 8);
        string[] common = ["--threads", "1", "--steps", "3", "--warmup-steps", "1", "--learning-rate", "0.01", "--checkpoint-every", "1"];
        // Each rank gets its own --out (rank 0: run-0, rank 1: run-1), so that anything rank 1 wrote would be seen.
        string runBase = PathOf("run");
        var (code, output) = MpiLauncher.RunCommand(Ranks,
        [
            "bash", "-c", "exec \"$@\" --out \"$RAFT_TEST_RUN-$OMPI_COMM_WORLD_RANK\"", "raft",
            MpiLauncher.DotnetExecutable, RaftDll, "sft", "--model", ckpt, "--data", data, "--batch-size", "2", "--collective", "mpi", .. common,
        ], TimeoutSeconds, new Dictionary<string, string> { ["RAFT_TEST_RUN"] = runBase });
        Assert.True(code == 0, $"mpirun exited with {code}:\n{output}");
        AssertEachRankLoggedOnce(output);
        Assert.Contains("per rank × 2 ranks (mpi)", output);
        // The command's JSON line comes from rank 0 only.
        Assert.Single(output.Split('\n'), l => l.StartsWith("{\"method\":\"sft\"", StringComparison.Ordinal));

        string run0 = runBase + "-0", run1 = runBase + "-1";
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run0, Trainer.MetricsFile)).Length);
        Assert.True(File.Exists(Path.Combine(run0, Trainer.ConfigFile)));
        Assert.Equal(2, Directory.GetDirectories(Path.Combine(run0, Trainer.CheckpointsDir)).Length);
        AssertNoStagingLeft(run0);
        var written = Directory.Exists(run1) ? Directory.GetFiles(run1, "*", SearchOption.AllDirectories) : [];
        Assert.True(written.Length == 0, "rank 1 wrote " + string.Join(", ", written));

        // One process with the doubled batch, in-process.
        var single = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("single"), "--batch-size", "4", "--collective", "none", .. common]);
        Assert.True(single.Code == 0, single.ToString());
        var reference = Weights(Path.Combine(PathOf("single"), Trainer.FinalDir));
        double rel = RelativeDifference(reference, Weights(Path.Combine(run0, Trainer.FinalDir)));
        Assert.True(rel < 1e-5, $"2 ranks × batch 2 vs 1 process × batch 4: relative difference {rel:E2}");
        Assert.True(RelativeDifference(Weights(ckpt), reference) > 1e-4, "training did not move the weights");
        // The metrics describe the global batch: the same tokens and (within fp32 reduction order) loss per step.
        var m1 = File.ReadAllLines(Path.Combine(PathOf("single"), Trainer.MetricsFile)).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        var m2 = File.ReadAllLines(Path.Combine(run0, Trainer.MetricsFile)).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(m1[i].GetProperty("tokens").GetInt64(), m2[i].GetProperty("tokens").GetInt64());
            Assert.Equal(m1[i].GetProperty("loss").GetDouble(), m2[i].GetProperty("loss").GetDouble(), 1e-5);
        }
    }

    [MpiFact]
    public void Raft_train_under_mpirun_matches_one_process_with_the_doubled_batch()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"), seed: 5);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"), 6);
        string[] common = ["--teacher", ckpt, "--threads", "1", "--steps", "3", "--warmup-steps", "1", "--learning-rate", "0.01",
            "--top-k", "4", "--rollout-max-tokens", "4", "--rollouts-per-prompt", "2", "--teacher-provider", "cpu"];
        string run = PathOf("run");
        var (code, output) = MpiRaft(["train", "--model", ckpt, "--data", data, "--out", run, "--batch-size", "2", .. common]);
        Assert.True(code == 0, $"mpirun exited with {code}:\n{output}");
        AssertEachRankLoggedOnce(output); // --collective auto picked MPI under mpirun
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length); // not 6: rank 0 alone appended
        AssertNoStagingLeft(run);
        Assert.DoesNotContain("warning", output);

        var single = Raft(["train", "--model", ckpt, "--data", data, "--out", PathOf("single"), "--batch-size", "4", .. common]);
        Assert.True(single.Code == 0, single.ToString());
        var reference = Weights(Path.Combine(PathOf("single"), Trainer.FinalDir));
        double rel = RelativeDifference(reference, Weights(Path.Combine(run, Trainer.FinalDir)));
        Assert.True(rel < 1e-5, $"RAFT 2 ranks × batch 2 vs 1 process × batch 4: relative difference {rel:E2}");
        Assert.True(RelativeDifference(Weights(ckpt), reference) > 1e-4, "training did not move the weights");
        var last1 = JsonDocument.Parse(File.ReadAllLines(Path.Combine(PathOf("single"), Trainer.MetricsFile))[^1]).RootElement;
        var last2 = JsonDocument.Parse(File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile))[^1]).RootElement;
        Assert.Equal(last1.GetProperty("rollout_len").GetDouble(), last2.GetProperty("rollout_len").GetDouble(), 1e-9);
        Assert.Equal(last1.GetProperty("kd_loss").GetDouble(), last2.GetProperty("kd_loss").GetDouble(), 1e-5);
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyDirectory(d, Path.Combine(to, Path.GetFileName(d)));
    }

    /// <summary>A copy of a finished run as it was after its step-2 checkpoint: no final model, the metrics of 4 steps (truncated on resume).</summary>
    private string Interrupted(string run, string name)
    {
        string copy = PathOf(name);
        CopyDirectory(run, copy);
        Directory.Delete(Path.Combine(copy, Trainer.FinalDir), recursive: true);
        Assert.Equal("step-0000002", Path.GetFileName(Trainer.LatestCheckpoint(copy)));
        return copy;
    }

    [MpiFact]
    public void A_2_rank_run_resumed_on_2_ranks_equals_the_uninterrupted_one_and_its_checkpoint_resumes_in_one_process()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"), seed: 6);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"), 6);
        string[] common = ["--model", ckpt, "--data", data, "--teacher", ckpt, "--threads", "1", "--steps", "4", "--checkpoint-every", "2",
            "--warmup-steps", "1", "--learning-rate", "0.01", "--top-k", "4", "--rollout-max-tokens", "4", "--teacher-provider", "cpu"];
        string whole = PathOf("whole");
        var (code, output) = MpiRaft(["train", "--out", whole, "--batch-size", "2", .. common]);
        Assert.True(code == 0, $"mpirun exited with {code}:\n{output}");
        var expected = Weights(Path.Combine(whole, Trainer.FinalDir));
        var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(whole, Trainer.FinalDir, Trainer.StateFile))).RootElement;
        Assert.Equal(2, state.GetProperty("world_size").GetInt32());

        // Resumed on 2 ranks from the step-2 checkpoint: the same bits as the uninterrupted run.
        string resumed = Interrupted(whole, "resumed");
        (code, output) = MpiRaft(["train", "--out", resumed, "--batch-size", "2", "--resume", .. common]);
        Assert.True(code == 0, $"mpirun --resume exited with {code}:\n{output}");
        Assert.Single(Regex.Matches(output, "resumed from .*step-0000002 at step 2"));
        Assert.Equal(expected, Weights(Path.Combine(resumed, Trainer.FinalDir)));
        Assert.Equal(4, File.ReadAllLines(Path.Combine(resumed, Trainer.MetricsFile)).Length);

        // The checkpoint of 2 ranks loads in one process: weights, the full optimizer state and the trainer state.
        string step2 = Path.Combine(whole, Trainer.CheckpointsDir, "step-0000002");
        var (config, weights) = Checkpoint.Load(step2);
        var optimizer = AdamW.LoadState(step2, weights);
        Assert.Equal(2, optimizer.StepCount);
        Assert.Contains(optimizer.SecondMoment.Tensors, t => t.Data.Any(x => x != 0));
        Assert.Equal(config.HiddenSize, PipelineFixtures.Config().HiddenSize);

        // One process resumes it with the same global batch (2 × 2 = 4) and ends where 2 ranks ended, within fp32
        // reduction order; a different global batch is refused, naming both.
        string single = Interrupted(whole, "single");
        var wrong = Raft(["train", "--out", single, "--batch-size", "2", "--resume", .. common]);
        Assert.True(wrong.Code == 2, wrong.ToString());
        Assert.Contains("global batch of 4 (batch_size 2 × 2 rank(s) × 1 accumulation step(s))", wrong.Stderr);
        Assert.Contains("use batch_size 4", wrong.Stderr);
        Assert.False(Directory.Exists(Path.Combine(single, Trainer.FinalDir)));
        var ok = Raft(["train", "--out", single, "--batch-size", "4", "--resume", .. common]);
        Assert.True(ok.Code == 0, ok.ToString());
        Assert.Contains("resumed from", ok.Stderr);
        double rel = RelativeDifference(expected, Weights(Path.Combine(single, Trainer.FinalDir)));
        Assert.True(rel < 1e-5, $"resumed in 1 process × batch 4 vs 2 ranks × batch 2: relative difference {rel:E2}");
    }

    [MpiFact]
    public void A_killed_rank_ends_the_job_with_an_error_naming_it_and_the_last_checkpoint_resumes()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"), seed: 7);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"), 6);
        string[] common = ["--model", ckpt, "--data", data, "--teacher", ckpt, "--threads", "1", "--steps", "4", "--checkpoint-every", "2", "--batch-size", "2",
            "--warmup-steps", "1", "--learning-rate", "0.01", "--top-k", "4", "--rollout-max-tokens", "4", "--teacher-provider", "cpu"];
        string run = PathOf("run");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (code, output) = MpiRaft(["train", "--out", run, .. common], new Dictionary<string, string> { ["RAFT_TEST_FAULT"] = "kill:1:3" });
        double seconds = clock.Elapsed.TotalSeconds;
        Assert.True(code != 0, $"mpirun exited with 0 although rank 1 was killed:\n{output}");
        Assert.True(seconds < 90, $"the job took {seconds:F0} s to end after a rank was killed");
        Assert.Contains("RAFT_TEST_FAULT: rank 1 kills itself (SIGKILL) after step 3", output);
        // mpirun's own abort names the rank and the host (the one rank 1 logged at start).
        string host = Regex.Match(output, @"(?m)^rank 1/2 on (\S+), collective mpi").Groups[1].Value;
        Assert.True(host.Length > 0, output);
        Assert.Matches($@"process rank 1 with PID \d+ on node {Regex.Escape(host)} exited on signal 9", output);
        AssertLastGoodCheckpoint(run, "step-0000002", 2);

        // The run resumes from that checkpoint on 2 ranks and ends where an uninterrupted 2-rank run ends, bit for bit.
        (code, output) = MpiRaft(["train", "--out", run, "--resume", .. common]);
        Assert.True(code == 0, $"mpirun --resume exited with {code}:\n{output}");
        string whole = PathOf("whole");
        (code, output) = MpiRaft(["train", "--out", whole, .. common]);
        Assert.True(code == 0, $"mpirun exited with {code}:\n{output}");
        Assert.Equal(Weights(Path.Combine(whole, Trainer.FinalDir)), Weights(Path.Combine(run, Trainer.FinalDir)));
    }

    [MpiFact]
    public void A_hung_rank_ends_the_job_through_the_collective_timeout()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"), seed: 8);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"), 6);
        string run = PathOf("run");
        const int timeout = 15; // well above a tiny step, even on a loaded 2-core machine
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (code, output) = MpiRaft(["sft", "--model", ckpt, "--data", data, "--out", run, "--threads", "1", "--steps", "4", "--checkpoint-every", "1",
            "--batch-size", "2", "--warmup-steps", "1"],
            new Dictionary<string, string> { ["RAFT_TEST_FAULT"] = "hang:1:2", ["RAFT_COLLECTIVE_TIMEOUT"] = timeout.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        double seconds = clock.Elapsed.TotalSeconds;
        Assert.True(code != 0, $"mpirun exited with 0 although rank 1 hung:\n{output}");
        Assert.True(seconds < timeout + 90, $"the job took {seconds:F0} s to end after a rank hung");
        Assert.Contains("RAFT_TEST_FAULT: rank 1 hangs after step 2", output);
        // Rank 0 waits for rank 1 after writing the step-2 checkpoint; its watchdog names itself, its host and the call.
        Assert.Matches($@"rank 0 of 2 on \S+: collective MPI_\w+ did not complete within {timeout} s", output);
        AssertLastGoodCheckpoint(run, "step-0000002", 2);
    }

    /// <summary>The newest checkpoint is <paramref name="name"/>, complete and loadable (weights, optimizer, trainer state); no final model, no staging.</summary>
    private static void AssertLastGoodCheckpoint(string run, string name, int step)
    {
        string? latest = Trainer.LatestCheckpoint(run);
        Assert.Equal(name, Path.GetFileName(latest));
        var (_, weights) = Checkpoint.Load(latest!);
        Assert.Equal(step, AdamW.LoadState(latest!, weights).StepCount);
        Assert.Equal(step, JsonDocument.Parse(File.ReadAllText(Path.Combine(latest!, Trainer.StateFile))).RootElement.GetProperty("step").GetInt32());
        Assert.False(Directory.Exists(Path.Combine(run, Trainer.FinalDir)));
        AssertNoStagingLeft(run);
    }

    [MpiFact]
    public void Sft_with_the_optimizer_sharded_over_2_ranks_matches_one_process_with_the_doubled_batch()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"), seed: 9);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"), 8);
        string config = PathOf("zero.json");
        File.WriteAllText(config, "{\"shard_optimizer\": true, \"checkpoint_every\": 2}"); // the config key
        string[] common = ["--model", ckpt, "--data", data, "--threads", "1", "--steps", "3", "--warmup-steps", "1", "--learning-rate", "0.01"];
        string run = PathOf("run");
        var (code, output) = MpiRaft(["sft", "--out", run, "--batch-size", "2", "--config", config, .. common]);
        Assert.True(code == 0, $"mpirun exited with {code}:\n{output}");
        Assert.Contains("optimizer state sharded over the ranks (ZeRO-1", output);
        Assert.Contains("\"shard_optimizer\": true", File.ReadAllText(Path.Combine(run, Trainer.ConfigFile)));
        AssertLastCheckpointHoldsTheFullOptimizer(run);

        var single = Raft(["sft", "--out", PathOf("single"), "--batch-size", "4", "--shard-optimizer", .. common]); // the bare flag
        Assert.True(single.Code == 0, single.ToString());
        Assert.Contains("shard_optimizer has no effect in a single process", single.Stderr);
        double rel = RelativeDifference(Weights(Path.Combine(PathOf("single"), Trainer.FinalDir)), Weights(Path.Combine(run, Trainer.FinalDir)));
        Assert.True(rel < 1e-5, $"ZeRO-1 2 ranks × batch 2 vs 1 process × batch 4: relative difference {rel:E2}");
    }

    private static void AssertLastCheckpointHoldsTheFullOptimizer(string run)
    {
        string final = Path.Combine(run, Trainer.FinalDir);
        var (_, weights) = Checkpoint.Load(final);
        var optimizer = AdamW.LoadState(final, weights);
        Assert.Equal(3, optimizer.StepCount);
        // Every tensor's moments came back to rank 0, not only rank 0's chunk.
        Assert.All(optimizer.SecondMoment.Tensors, t => Assert.Contains(t.Data, v => v != 0));
    }
}
