using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Raft.Benchmarks;

/// <summary>
/// The jobs the suites share. In-process toolchain: BenchmarkDotNet's default toolchain would generate and build
/// a project per run (rebuilding the engine into its own bin/obj and copying libtorch), and every call measured
/// here lasts milliseconds to seconds, far above the in-process harness's noise.
/// </summary>
internal static class BenchJobs
{
    /// <summary>A job for long calls: one invocation per iteration, no unrolling, the given warm-ups and iterations.</summary>
    public static Job OneCallPerIteration(string id, int warmupCount, int iterationCount) => InProcess(id)
        .WithWarmupCount(warmupCount)
        .WithIterationCount(iterationCount)
        .WithInvocationCount(1)
        .WithUnrollFactor(1);

    /// <summary>An in-process job, one launch.</summary>
    public static Job InProcess(string id) => Job.Default
        .WithToolchain(new InProcessEmitToolchain(TimeSpan.FromMinutes(30), logOutput: true))
        .WithLaunchCount(1)
        .WithId(id);
}
