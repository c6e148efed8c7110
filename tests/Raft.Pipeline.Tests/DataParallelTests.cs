namespace Raft.Pipeline.Tests;

/// <summary>
/// Data-parallel training and refinement under 2 real MPI ranks: each scenario of Raft.Pipeline.MpiHost runs the
/// 1-process reference itself and prints one PASS/FAIL line per check.
/// </summary>
public class DataParallelTests
{
    private const int Ranks = 2;

    private static string Run(string scenario)
    {
        using var dir = new TempDir();
        var (exitCode, output) = MpiEnvironment.Run(Ranks, [scenario, "--dir", dir.Path]);
        Assert.True(exitCode == 0, $"mpirun exited with {exitCode}:\n{output}");
        Assert.DoesNotContain("FAIL ", output);
        for (int rank = 0; rank < Ranks; rank++) Assert.Contains($"rank {rank}: ALL PASS", output);
        return output;
    }

    [MpiFact]
    public void Sft_on_2_ranks_with_batch_b_equals_1_process_with_batch_2b()
    {
        var output = Run("sft");
        for (int rank = 0; rank < Ranks; rank++) Assert.Contains($"PASS rank {rank} sft weights after 3 steps", output);
        Assert.Contains("PASS rank 0 sft final checkpoint holds the trained weights", output);
    }

    [MpiFact]
    public void Raft_on_2_ranks_with_batch_b_equals_1_process_with_batch_2b()
    {
        var output = Run("raft");
        for (int rank = 0; rank < Ranks; rank++)
        {
            Assert.Contains($"PASS rank {rank} raft weights after 3 steps", output);
            Assert.Contains($"PASS rank {rank} raft step 3 metrics are the global batch's", output);
        }
    }

    [MpiFact]
    public void Evaluation_during_training_runs_on_rank_0_and_leaves_every_ranks_weights_unchanged()
    {
        var output = Run("eval");
        foreach (string kind in new[] { "sft", "raft" })
        {
            for (int rank = 0; rank < Ranks; rank++)
            {
                Assert.Contains($"PASS rank {rank} eval-{kind}-same-bits", output);
                Assert.Contains($"PASS rank {rank} eval-{kind}-rank-0-only", output);
            }
            Assert.Contains($"PASS rank 0 eval-{kind}-lines", output);
        }
    }

    [MpiFact]
    public void Refine_on_2_ranks_writes_the_same_bytes_as_1_process()
    {
        var output = Run("refine");
        Assert.Contains("PASS rank 0 refine 2-rank file is byte-identical to 1 process", output);
    }

    [MpiFact]
    public void Overlapped_allreduce_gives_the_same_bits_as_the_allreduce_after_backward()
    {
        var output = Run("overlap");
        foreach (string check in new[] { "overlap-sft-same-bits", "overlap-sft-trained", "overlap-raft-same-bits", "overlap-raft-trained" })
            Assert.Contains($"PASS rank 0 {check}", output);
        Assert.DoesNotContain("FAIL", output);
    }

    [MpiFact]
    public void Zero1_sft_sharded_and_unsharded_match_1_process_and_write_the_same_checkpoints()
    {
        var output = Run("zero-sft");
        AssertZero(output, "zero-sft");
    }

    [MpiFact]
    public void Zero1_raft_sharded_and_unsharded_match_1_process_and_write_the_same_checkpoints()
    {
        var output = Run("zero-raft");
        AssertZero(output, "zero-raft");
    }

    [MpiFact]
    public void Lora_adapters_under_data_parallelism_zero1_and_overlap_match_1_process_and_the_base_keeps_its_bits()
    {
        var output = Run("lora");
        for (int rank = 0; rank < Ranks; rank++)
            foreach (var method in new[] { "sft", "raft" })
                foreach (var kind in new[] { "unsharded", "sharded", "overlapped" })
                {
                    Assert.Contains($"PASS rank {rank} lora-{method} {kind} base keeps its bits", output);
                    Assert.Contains($"PASS rank {rank} lora-{method} {kind} adapters match 1 process", output);
                    Assert.Contains($"PASS rank {rank} lora-{method} {kind} adapters trained", output);
                }
    }

    [MpiFact]
    public void Frozen_tensors_keep_their_bits_under_data_parallelism_and_zero1()
    {
        var output = Run("frozen");
        for (int rank = 0; rank < Ranks; rank++)
            foreach (var method in new[] { "sft", "raft" })
                foreach (var kind in new[] { "sharded", "unsharded" })
                {
                    Assert.Contains($"PASS rank {rank} frozen-{method} {kind} frozen tensors keep their bits", output);
                    Assert.Contains($"PASS rank {rank} frozen-{method} {kind} weights match 1 process", output);
                    Assert.Contains($"PASS rank {rank} frozen-{method} {kind} mlp weights moved", output);
                }
    }

    [MpiFact]
    public void Gradient_accumulation_on_2_ranks_equals_1_process_with_the_whole_batch()
    {
        var output = Run("accumulate");
        foreach (string name in new[] { "sft", "sft zero1", "raft", "raft zero1" })
            for (int rank = 0; rank < Ranks; rank++)
            {
                Assert.Contains($"PASS rank {rank} {name} accumulated weights after 3 steps", output);
                Assert.Contains($"PASS rank {rank} {name} accumulated metrics are the global batch's", output);
            }
    }

    private static void AssertZero(string output, string name)
    {
        for (int rank = 0; rank < Ranks; rank++)
        {
            Assert.Contains($"PASS rank {rank} {name} sharded weights after 3 steps", output);
            Assert.Contains($"PASS rank {rank} {name} without clipping sharded and unsharded weights are bit-identical", output);
            Assert.Contains($"PASS rank {rank} {name} sharded run resumed from step 2 is bit-identical to the uninterrupted one", output);
        }
        Assert.Contains($"PASS rank 0 {name} final/optimizer.safetensors of the sharded run is the unsharded run's file", output);
        Assert.Contains($"PASS rank 0 {name} the sharded checkpoint's optimizer loads with every moment", output);
    }
}
