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

    /// <summary>What decodes: the engine on fp32 or BF16 weights, and with <c>--peers</c> ONNX Runtime on the fp32 ONNX export and llama.cpp on the F16 GGUF export.</summary>
    public static readonly List<string> Systems = ["fp32", "bf16"];

    /// <summary>BenchmarkDotNet's source of <see cref="Weights"/> (a property: it does not read fields).</summary>
    public static IEnumerable<string> SystemValues => Systems;

    [ParamsSource(nameof(SystemValues))] public string Weights { get; set; } = "fp32";
    [Params(1, 8)] public int Batch { get; set; }

    private LlamaModel _model = null!;
    private OrtDecoder? _ort;
    private LlamaCppDecoder? _llama;
    private KvCache _cache = null!;
    private float[] _logits = [];
    private int[] _tokens = [];
    private int[] _prompt = [];

    [GlobalSetup]
    public void Setup()
    {
        var config = DecodeModels.Config();
        var rng = new Random(7);
        _prompt = Enumerable.Range(0, Batch * Prompt).Select(_ => rng.Next(config.VocabSize)).ToArray();
        _tokens = Enumerable.Range(0, Batch).Select(_ => rng.Next(config.VocabSize)).ToArray();
        switch (Weights)
        {
            case "ort-fp32":
                _ort = new OrtDecoder(PeerModels.OnnxDir, config, Batch, Threads);
                _ort.Step(_prompt, Prompt);
                break;
            case "llama.cpp-f16":
                _llama = new LlamaCppDecoder(PeerModels.GgufF16, Batch, Capacity, Threads);
                _llama.Step(_prompt, Prompt);
                break;
            default:
                _model = Model(SafeTensorDTypes.ParseWeightsDType(Weights, "Weights"));
                _cache = _model.CreateKvCache(Batch, Capacity);
                _logits = new float[Batch * _model.Config.VocabSize];
                _model.Prefill(_cache, _prompt, Prompt, _logits);
                break;
        }
    }

    [IterationSetup]
    public void Refill()
    {
        if (_ort != null) { if (_ort.PastLength >= Capacity - 1) { _ort.Reset(); _ort.Step(_prompt, Prompt); } return; }
        if (_llama != null) { if (_llama.Position >= Capacity - 1) { _llama.Reset(); _llama.Step(_prompt, Prompt); } return; }
        if (_cache.Length < Capacity - 1) return;
        _cache.Reset();
        _model.Prefill(_cache, _prompt, Prompt, _logits);
    }

    [Benchmark]
    public void DecodeStep()
    {
        if (_ort != null) _ort.Step(_tokens, 1);
        else if (_llama != null) _llama.Step(_tokens, 1);
        else _model.DecodeStep(_cache, _tokens, _logits);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cache = null!;
        _ort?.Dispose(); _ort = null;
        _llama?.Dispose(); _llama = null;
    }
}
