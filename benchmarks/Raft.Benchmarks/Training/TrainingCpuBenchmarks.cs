using BenchmarkDotNet.Attributes;

namespace Raft.Benchmarks.Training;

/// <summary>
/// One training step (forward + cross-entropy + backward + AdamW update) of the same Llama model on the same
/// batch: the engine's <see cref="Raft.Model.LlamaModel"/> against libtorch eager (TorchSharp, the baseline).
/// Each method's GlobalSetup builds only its own trainer (from the same seeded weights and tokens);
/// GlobalCleanup frees it. The weights move with every step (that is what a step does); the work does not.
/// </summary>
[Config(typeof(TrainingBenchConfig))]
[BenchmarkCategory("Training")]
public class TrainingCpuBenchmarks
{
    /// <summary>The model: "demo" or "larger" (see <see cref="TrainingShapes"/>).</summary>
    [ParamsSource(nameof(ModelValues))]
    public string Model { get; set; } = "demo";

    /// <summary>Values of <see cref="Model"/>.</summary>
    public static IEnumerable<string> ModelValues() => TrainingShapes.CaseNames;

    private EngineTrainer? _engine;
    private TorchLlama? _torch;

    /// <summary>Setup of <see cref="Engine"/>.</summary>
    [GlobalSetup(Target = nameof(Engine))]
    public void SetupEngine() => _engine = new EngineTrainer(new TrainingProblem(TrainingShapes.Get(Model)));

    /// <summary>Setup of <see cref="TorchSharp"/>.</summary>
    [GlobalSetup(Target = nameof(TorchSharp))]
    public void SetupTorch() => _torch = new TorchLlama(new TrainingProblem(TrainingShapes.Get(Model)));

    /// <summary>Frees the trainer, so the next case starts from an empty heap.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _torch?.Dispose(); _torch = null;
        _engine = null;
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
    }

    /// <summary>The engine: LlamaModel forward/backward, CpuKernels.CrossEntropy in place, AdamW.</summary>
    [Benchmark]
    public double Engine() => _engine!.Step();

    /// <summary>libtorch eager: forward, F.cross_entropy, backward, torch.optim.AdamW.</summary>
    [Benchmark(Baseline = true)]
    public double TorchSharp() => _torch!.Step();
}
