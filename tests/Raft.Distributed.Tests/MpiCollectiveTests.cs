namespace Raft.Distributed.Tests;

/// <summary>
/// The MPI backend under 2 real ranks: each scenario of Raft.Distributed.MpiHost runs under
/// <c>mpirun --allow-run-as-root --oversubscribe -np 2</c> and prints one PASS/FAIL line per check.
/// </summary>
public class MpiCollectiveTests
{
    private const int Ranks = 2;

    private static void AssertAllPass(int exitCode, string output)
    {
        Assert.True(exitCode == 0, $"mpirun exited with {exitCode}:\n{output}");
        Assert.DoesNotContain("FAIL ", output);
        for (int rank = 0; rank < Ranks; rank++)
            Assert.Contains($"rank {rank}: ALL PASS", output);
    }

    [MpiFact]
    public void EveryCollectiveMatchesTheLocallyComputedResult()
    {
        var (exitCode, output) = MpiEnvironment.Run(Ranks, "collectives");
        AssertAllPass(exitCode, output);
        foreach (var check in new[] { "AllReduceSum n=65537", "AllReduceMean n=1001", "AllReduce(double, Max) n=7", "Broadcast(float, root 1) n=1",
                                      "Broadcast(byte, root 0) n=65537", "ReduceScatterSum n=1001 chunk=501", "AllGather n=65537", "GradientBucketer n=1001 [2]" })
            for (int rank = 0; rank < Ranks; rank++)
                Assert.Contains($"PASS rank {rank} {check}", output);
    }

    [MpiFact]
    public void CallsSplitAboveTheElementLimitGiveTheSameResults()
    {
        // MaxElementsPerCall = 100: every buffer above 100 elements goes through the chunked paths (the ones that
        // take over above int.MaxValue elements in real use).
        var (exitCode, output) = MpiEnvironment.Run(Ranks, "collectives --max-per-call 100");
        AssertAllPass(exitCode, output);
        Assert.Contains("PASS rank 1 ReduceScatterSum n=65537 chunk=32769", output);
    }

    [MpiFact]
    public void AnMpiErrorCodeBecomesATypedExceptionNamingTheCall()
    {
        var (exitCode, output) = MpiEnvironment.Run(Ranks, "errors");
        AssertAllPass(exitCode, output);
        Assert.Contains("MPI_Bcast failed with MPI error", output);
    }

    [MpiFact]
    public void ARankThatThrowsEndsTheJobWithAnErrorNamingTheRank()
    {
        var (exitCode, output) = MpiEnvironment.Run(Ranks, "throw");
        Assert.True(exitCode != 0, $"the job should fail:\n{output}");
        Assert.Contains("rank 1 of 2", output);
        Assert.Contains("deliberate failure on rank 1", output);
        Assert.DoesNotContain("reached after a peer failed", output);
    }

    [MpiFact]
    public void TheCollectiveTimeoutAbortsAStuckJob()
    {
        // Rank 1 sleeps 20 s before a barrier; rank 0's watchdog (2 s) aborts the job long before.
        var (exitCode, output) = MpiEnvironment.Run(Ranks, "timeout --timeout 2");
        Assert.True(exitCode != 0, $"the job should fail:\n{output}");
        Assert.Contains("rank 0 of 2", output);
        Assert.Contains("collective MPI_Barrier did not complete within 2 s", output);
        Assert.DoesNotContain("reached after the timeout", output);
    }
}
