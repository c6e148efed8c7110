using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Raft.Model;

namespace Raft.DecodeBench;

/// <summary>One batched decode step (B next tokens → logits [B, V], KV cache grows by one) of the engine, fp32 vs BF16 weights.</summary>
[Config(typeof(DecodeConfig))]
public class DecodeBenchmarks
{
    public const int Prompt = 16, Capacity = 256;

    private sealed class DecodeConfig : ManualConfig
    {
        public DecodeConfig()
        {
            AddJob(Job.Default.WithToolchain(new InProcessEmitToolchain(TimeSpan.FromMinutes(30), logOutput: true))
                .WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(15).WithInvocationCount(1).WithUnrollFactor(1).WithId("decode"));
            WithOptions(ConfigOptions.DisableOptimizationsValidator);
        }
    }

    private static readonly Dictionary<SafeTensorDType, LlamaModel> Models = [];
    public static int Threads;

    internal static LlamaModel Model(SafeTensorDType dtype)
    {
        if (!Models.TryGetValue(dtype, out var m)) Models[dtype] = m = DecodeModels.Build(dtype, Threads);
        return m;
    }

    [Params("fp32", "bf16")] public string Weights { get; set; } = "fp32";
    [Params(1, 8)] public int Batch { get; set; }

    private LlamaModel _model = null!;
    private KvCache _cache = null!;
    private float[] _logits = [];
    private int[] _tokens = [];
    private int[] _prompt = [];

    [GlobalSetup]
    public void Setup()
    {
        _model = Model(SafeTensorDTypes.ParseWeightsDType(Weights, "Weights"));
        _cache = _model.CreateKvCache(Batch, Capacity);
        _logits = new float[Batch * _model.Config.VocabSize];
        var rng = new Random(7);
        _prompt = Enumerable.Range(0, Batch * Prompt).Select(_ => rng.Next(_model.Config.VocabSize)).ToArray();
        _tokens = Enumerable.Range(0, Batch).Select(_ => rng.Next(_model.Config.VocabSize)).ToArray();
        _model.Prefill(_cache, _prompt, Prompt, _logits);
    }

    [IterationSetup]
    public void Refill()
    {
        if (_cache.Length < Capacity - 1) return;
        _cache.Reset();
        _model.Prefill(_cache, _prompt, Prompt, _logits);
    }

    [Benchmark]
    public void DecodeStep() => _model.DecodeStep(_cache, _tokens, _logits);

    [GlobalCleanup]
    public void Cleanup() => _cache = null!;
}
