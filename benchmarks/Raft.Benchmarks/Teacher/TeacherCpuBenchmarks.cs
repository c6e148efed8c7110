using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Perfolizer.Horology;
using Raft.Benchmarks.Training;
using Raft.Kernels;
using Raft.Teacher;

namespace Raft.Benchmarks.Teacher;

/// <summary>
/// Teacher scoring on the CPU: the answer-conditioned top-K of every rollout position of a batch (see
/// <see cref="TeacherShapes"/>), by the ONNX teacher (<see cref="TeacherScorer"/>: ONNX Runtime CPU provider
/// through the KV cache, then <see cref="CpuKernels.TopKSoftmax"/>) in one chunk and in chunks of
/// <see cref="TeacherShapes.ChunkPositions"/> positions, against the engine's own forward
/// (<see cref="EngineTeacher"/>, the baseline) on the same exported weights and tokens.
/// </summary>
[Config(typeof(TeacherBenchConfig))]
[BenchmarkCategory("Teacher")]
public class TeacherCpuBenchmarks
{
    private TeacherProblem? _p;
    private TeacherSession? _session;
    private TeacherScorer? _scorer;
    private EngineTeacher? _engine;

    /// <summary>Setup of the ONNX methods: export, session, scorer.</summary>
    [GlobalSetup(Targets = [nameof(OnnxScorer), nameof(OnnxScorerChunked)])]
    public void SetupOnnx()
    {
        _p = new TeacherProblem();
        _session = _p.OpenCpu();
        _scorer = new TeacherScorer(_session, new CpuKernels(Environment.ProcessorCount));
    }

    /// <summary>Setup of <see cref="Engine"/>.</summary>
    [GlobalSetup(Target = nameof(Engine))]
    public void SetupEngine()
    {
        _p = new TeacherProblem();
        _engine = new EngineTeacher(_p);
    }

    /// <summary>Frees everything, so the next case starts from an empty heap.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _session?.Dispose(); _session = null; _scorer = null; _engine = null;
        _p?.Dispose(); _p = null;
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
    }

    /// <summary>ONNX teacher, the whole batch in one chunk.</summary>
    [Benchmark]
    public object OnnxScorer() => _scorer!.ScoreBatch(_p!.Contexts, _p.Rollouts, new Raft.Kernels.DistillSettings(TeacherShapes.K, TeacherShapes.Temperature), TeacherShapes.UnchunkedBudgetBytes);

    /// <summary>ONNX teacher in chunks of <see cref="TeacherShapes.ChunkPositions"/> positions.</summary>
    [Benchmark]
    public object OnnxScorerChunked() => _scorer!.ScoreBatch(_p!.Contexts, _p.Rollouts, new Raft.Kernels.DistillSettings(TeacherShapes.K, TeacherShapes.Temperature), TeacherShapes.ChunkedBudgetBytes);

    /// <summary>The engine: LlamaModel.Forward (full logits) + CpuKernels.TopKSoftmax.</summary>
    [Benchmark(Baseline = true)]
    public object Engine() => _engine!.Score();
}

/// <summary>
/// Job of <see cref="TeacherCpuBenchmarks"/>: in-process (see <see cref="BenchJobs"/>), one call per iteration,
/// 1 warm-up + 5 measured; positions/s and the fresh-process peak RSS delta as extra columns.
/// </summary>
public sealed class TeacherBenchConfig : ManualConfig
{
    /// <summary>Warm-up and measured iterations per case.</summary>
    public const int WarmupCount = 1, IterationCount = 5;

    /// <summary>Creates the config.</summary>
    public TeacherBenchConfig()
    {
        AddJob(BenchJobs.OneCallPerIteration("Teacher", WarmupCount, IterationCount));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(new TrainingColumn("Teacher.PositionsPerSecond", "positions/s", "scored rollout positions (batch·R) / mean time, top-K included",
                (s, c) => TrainingMetrics.MeanNs(s, c) is double ns ? TeacherShapes.ScoredPositions / (ns * 1e-9) : null, "N0"),
            new TrainingColumn("Teacher.PeakRss", "peak RSS Δ (MiB)", "VmHWM − VmRSS around one scoring call, fresh process ('teacher' mode only)",
                (s, c) => TeacherMemory.Results.TryGetValue(TrainingMetrics.Method(c), out var r) ? r.DeltaBytes / 1048576.0 : null, "0"));
        SummaryStyle = SummaryStyle.Default.WithTimeUnit(TimeUnit.Millisecond);
    }
}
