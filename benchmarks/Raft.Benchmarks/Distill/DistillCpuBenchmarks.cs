using BenchmarkDotNet.Attributes;
using Raft.Kernels;

namespace Raft.Benchmarks.Distill;

/// <summary>
/// Fused forward-KL distillation loss with gradient on the CPU: the engine kernel against a plain scalar
/// loop, ONNX Runtime, libtorch, and a memory copy of the same bytes (the bandwidth ceiling). One class so
/// that every (V, K) group sits side by side, ratios against <see cref="TorchSharp"/>.
/// Each method's GlobalSetup builds only what that method needs, and GlobalCleanup frees it: the suite runs
/// in-process (see <see cref="DistillBenchConfig"/>), one case after another.
/// </summary>
[Config(typeof(DistillBenchConfig))]
[BenchmarkCategory("Distill")]
public class DistillCpuBenchmarks
{
    /// <summary>Vocabulary size.</summary>
    [ParamsSource(nameof(VValues))]
    public int V { get; set; }

    /// <summary>Teacher top-K.</summary>
    [ParamsSource(nameof(KValues))]
    public int K { get; set; }

    /// <summary>Values of <see cref="V"/>.</summary>
    public static IEnumerable<int> VValues() => DistillShapes.Vocabs;
    /// <summary>Values of <see cref="K"/>.</summary>
    public static IEnumerable<int> KValues() => DistillShapes.TopKs;

    private DistillProblem? _p;
    private ILossKernels? _fused;
    private float[]? _copyTarget;
    private OnnxDistill? _ort;
    private TorchDistill? _torch;

    private DistillProblem P => _p!;

    private void SetupProblem() => _p = new DistillProblem(DistillShapes.Rows, V, K, DistillShapes.Temperature);

    /// <summary>Setup of <see cref="Fused"/>.</summary>
    [GlobalSetup(Target = nameof(Fused))]
    public void SetupFused()
    {
        SetupProblem();
        _fused = FusedKernel.Create();
        Console.WriteLine($"// Fused = {_fused.GetType().FullName} ({_fused.Name})");
        if (_fused is ReferenceKernels)
            Console.WriteLine("// WARNING: Fused is the double-precision reference: CpuKernels is not an ILossKernels yet (see FusedKernel.cs).");
    }

    /// <summary>Setup of <see cref="Scalar"/>.</summary>
    [GlobalSetup(Target = nameof(Scalar))]
    public void SetupScalar() => SetupProblem();

    /// <summary>Setup of <see cref="OnnxRuntime"/>: builds the graph and the session once.</summary>
    [GlobalSetup(Target = nameof(OnnxRuntime))]
    public void SetupOnnx()
    {
        SetupProblem();
        _ort = new OnnxDistill(P);
    }

    /// <summary>Setup of <see cref="TorchSharp"/>.</summary>
    [GlobalSetup(Target = nameof(TorchSharp))]
    public void SetupTorch()
    {
        SetupProblem();
        _torch = new TorchDistill(P);
    }

    /// <summary>Setup of <see cref="Copy"/>: a second, already touched buffer.</summary>
    [GlobalSetup(Target = nameof(Copy))]
    public void SetupCopy()
    {
        SetupProblem();
        _copyTarget = P.NewTouchedBuffer();
    }

    /// <summary>Frees every buffer, session and tensor, so the next case starts from an empty heap.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _ort?.Dispose(); _ort = null;
        _torch?.Dispose(); _torch = null;
        _p = null; _copyTarget = null; _fused = null;
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
    }

    /// <summary>The engine's fast CPU kernel, gradient written in place over the student logits.</summary>
    [Benchmark]
    public double Fused() => FusedKernel.Run(_fused!, P, P.Student);

    /// <summary>Plain single-threaded float loops, gradient in place.</summary>
    [Benchmark]
    public double Scalar() => ScalarDistill.Run(P.Student, P.Rows, P.Vocab, P.Indices, P.Probs, P.TopK, P.Temperature, P.Student);

    /// <summary>The ONNX graph on ONNX Runtime's CPU provider, bound to preallocated buffers.</summary>
    [Benchmark]
    public double OnnxRuntime() => _ort!.Run();

    /// <summary>libtorch eager forward and backward.</summary>
    [Benchmark(Baseline = true)]
    public double TorchSharp() => _torch!.Run();

    /// <summary>
    /// Copies the student logits into another buffer: the same bytes read and written as a fused call, the
    /// bandwidth ceiling. <see cref="Span{T}.CopyTo"/> on <see cref="Environment.ProcessorCount"/> contiguous
    /// chunks in parallel (one thread cannot saturate memory bandwidth on most servers).
    /// </summary>
    [Benchmark]
    public int Copy()
    {
        float[] src = P.Student, dst = _copyTarget!;
        int chunks = Environment.ProcessorCount;
        long chunk = (src.Length + chunks - 1L) / chunks;
        Parallel.For(0, chunks, c =>
        {
            int start = (int)(c * chunk), length = (int)Math.Min(chunk, src.Length - start);
            if (length > 0) src.AsSpan(start, length).CopyTo(dst.AsSpan(start, length));
        });
        return dst.Length;
    }
}
