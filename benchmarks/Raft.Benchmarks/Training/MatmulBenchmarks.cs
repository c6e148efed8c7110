using BenchmarkDotNet.Attributes;
using Raft.Benchmarks.Distill;
using TorchSharp;
using static TorchSharp.torch;

namespace Raft.Benchmarks.Training;

/// <summary>
/// The engine's linear-layer kernel, y[n, m] = x[n, k] · W[m, k]ᵀ (Raft.Model.Ops.Matmul.Forward, nn.Linear
/// layout, no bias), on square sizes n = k = m, with 1 thread and with every core, against
/// <c>torch.matmul(x, W.t())</c> (libtorch CPU, <c>torch.set_num_threads</c> = the same thread count; its output
/// is allocated and freed per call, as eager PyTorch does). Inputs are seeded uniform [-1, 1).
/// </summary>
[Config(typeof(MatmulBenchConfig))]
[BenchmarkCategory("Matmul")]
public class MatmulBenchmarks
{
    /// <summary>n = k = m.</summary>
    [ParamsSource(nameof(SizeValues))]
    public int Size { get; set; }

    /// <summary>Threads used by either library.</summary>
    [ParamsSource(nameof(ThreadValues))]
    public int Threads { get; set; }

    /// <summary>Values of <see cref="Size"/>.</summary>
    public static IEnumerable<int> SizeValues() => TrainingShapes.MatmulSizes;
    /// <summary>Values of <see cref="Threads"/>: 1 and every core.</summary>
    public static IEnumerable<int> ThreadValues() => Environment.ProcessorCount > 1 ? [1, Environment.ProcessorCount] : [1];

    private float[] _x = [], _w = [], _y = [];
    private Tensor? _tx, _twt;

    private void Fill()
    {
        var rng = new Random(42);
        _x = new float[Size * Size];
        _w = new float[Size * Size];
        for (int i = 0; i < _x.Length; i++) _x[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < _w.Length; i++) _w[i] = (float)(rng.NextDouble() * 2 - 1);
    }

    /// <summary>Setup of <see cref="Engine"/>.</summary>
    [GlobalSetup(Target = nameof(Engine))]
    public void SetupEngine()
    {
        Fill();
        _y = new float[Size * Size];
    }

    /// <summary>Setup of <see cref="TorchSharp"/>.</summary>
    [GlobalSetup(Target = nameof(TorchSharp))]
    public void SetupTorch()
    {
        Fill();
        TorchNativeFix.Apply();
        torch.set_num_threads(Threads);
        _tx = torch.tensor(_x, [Size, Size]);
        using var w = torch.tensor(_w, [Size, Size]);
        _twt = w.t(); // a transposed view, as nn.Linear passes it
    }

    /// <summary>Frees the buffers and tensors; restores libtorch's thread count.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        if (_tx is not null) torch.set_num_threads(Environment.ProcessorCount);
        _tx?.Dispose(); _twt?.Dispose(); _tx = null; _twt = null;
        _x = _w = _y = [];
    }

    /// <summary>Raft.Model.Ops.Matmul.Forward with <see cref="Threads"/> threads.</summary>
    [Benchmark]
    public float Engine()
    {
        Raft.Model.Ops.Matmul.Forward(_x, _w, default, _y, Size, Size, Size, Threads);
        return _y[0];
    }

    /// <summary>torch.matmul(x, W.t()).</summary>
    [Benchmark(Baseline = true)]
    public long TorchSharp()
    {
        using var y = torch.matmul(_tx!, _twt!);
        return y.shape[0];
    }
}
