using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using Perfolizer.Horology;
using BenchmarkDotNet.Reports;
using Raft.Benchmarks.Training;

namespace Raft.Benchmarks.RealShape;

/// <summary>
/// The SFT step (forward + cross-entropy + backward + AdamW) at Qwen2.5-0.5B's shape, batch 4 × 256: the engine as
/// <c>raft sft</c> runs it (fp32, <c>--precision bf16</c>, fp32 with <c>--gradient-checkpointing</c>) against libtorch
/// eager fp32 (TorchSharp, the baseline) on the same seeded weights and tokens. Each method's GlobalSetup builds only
/// its own trainer; GlobalCleanup frees it.
/// </summary>
[Config(typeof(RealShapeBenchConfig))]
[BenchmarkCategory("RealShape")]
public class RealShapeSftBenchmarks
{
    private TrainingProblem? _problem;
    private IStepper? _stepper;

    private void Setup(string method)
    {
        _problem = new TrainingProblem(RealShapeCase.Case);
        _stepper = RealShapeCase.Create(method, _problem);
        _problem = null; // the trainer holds its own copy
        GC.Collect();
    }

    /// <summary>Setup.</summary>
    [GlobalSetup(Target = nameof(EngineFp32))] public void SetupFp32() => Setup(nameof(EngineFp32));
    /// <summary>Setup.</summary>
    [GlobalSetup(Target = nameof(EngineBf16))] public void SetupBf16() => Setup(nameof(EngineBf16));
    /// <summary>Setup.</summary>
    [GlobalSetup(Target = nameof(EngineFp32Checkpointing))] public void SetupCkpt() => Setup(nameof(EngineFp32Checkpointing));
    /// <summary>Setup.</summary>
    [GlobalSetup(Target = nameof(TorchSharp))] public void SetupTorch() => Setup(nameof(TorchSharp));

    /// <summary>Frees the trainer.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _stepper?.Dispose(); _stepper = null;
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
    }

    /// <summary>The engine, fp32 (raft sft's default).</summary>
    [Benchmark] public double EngineFp32() => _stepper!.Step();
    /// <summary>The engine, bf16 compute copies over fp32 masters.</summary>
    [Benchmark] public double EngineBf16() => _stepper!.Step();
    /// <summary>The engine, fp32 with activation checkpointing.</summary>
    [Benchmark] public double EngineFp32Checkpointing() => _stepper!.Step();
    /// <summary>libtorch eager fp32.</summary>
    [Benchmark(Baseline = true)] public double TorchSharp() => _stepper!.Step();
}

/// <summary>In-process, one step per iteration, 1 warm-up + 3 measured steps (a step lasts ~10–60 s here).</summary>
public sealed class RealShapeBenchConfig : ManualConfig
{
    /// <summary>Warm-up and measured iterations.</summary>
    public const int WarmupCount = 1, IterationCount = 3;

    /// <summary>Creates the config.</summary>
    public RealShapeBenchConfig()
    {
        AddJob(BenchJobs.OneCallPerIteration("RealShape", WarmupCount, IterationCount));
        AddDiagnoser(MemoryDiagnoser.Default);
        SummaryStyle = SummaryStyle.Default.WithTimeUnit(TimeUnit.Second);
    }
}
