using Raft.Benchmarks.Distill;
using Raft.Benchmarks.Training;
using Raft.Model;

namespace Raft.Benchmarks.RealShape;

/// <summary>
/// The SFT step at Qwen2.5-0.5B-Instruct's shape (issue #16 item 6): hidden 896, 24 layers, 14 heads (2 KV),
/// intermediate 4864, vocabulary 151,936, tied embeddings, RoPE θ = 1,000,000, batch 4 × 256 tokens. The Llama form of
/// the shape (no q/k/v bias: the libtorch mirror computes the plain Llama decoder; the biases are 0.01 % of the FLOPs).
/// <c>--small</c> swaps in a tiny model with the same structure for smoke runs.
/// </summary>
public static class RealShapeCase
{
    /// <summary>The methods, in report order: the engine as <c>raft sft</c> runs it (fp32, bf16 compute, fp32 with
    /// gradient checkpointing) and the libtorch baseline.</summary>
    public static readonly string[] Methods = ["EngineFp32", "EngineBf16", "EngineFp32Checkpointing", "TorchSharp"];

    /// <summary>The case.</summary>
    public static TrainingCase Case => DistillShapes.Small
        ? new("qwen05-small", Config(128, 2, 4, 2, 344, 5000), 2, 64)
        : new("qwen2.5-0.5b", Config(896, 24, 14, 2, 4864, 151_936), 4, 256);

    private static ModelConfig Config(int hidden, int layers, int heads, int kv, int inter, int vocab) => new()
    {
        ModelType = "llama", HiddenSize = hidden, NumHiddenLayers = layers, NumAttentionHeads = heads,
        NumKeyValueHeads = kv, IntermediateSize = inter, VocabSize = vocab, TieWordEmbeddings = true,
        RmsNormEps = 1e-6, RopeTheta = 1_000_000.0, MaxPositionEmbeddings = 32_768,
    };

    /// <summary>A trainer of <paramref name="method"/> over the problem's weights (copied).</summary>
    public static IStepper Create(string method, TrainingProblem p) => method switch
    {
        "EngineFp32" => new EngineSftStep(p, SafeTensorDType.F32, checkpointing: false),
        "EngineBf16" => new EngineSftStep(p, SafeTensorDType.BF16, checkpointing: false),
        "EngineFp32Checkpointing" => new EngineSftStep(p, SafeTensorDType.F32, checkpointing: true),
        "TorchSharp" => new TorchStepper(new TorchLlama(p)),
        _ => throw new ArgumentException($"unknown method '{method}' ({string.Join(", ", Methods)}).", nameof(method)),
    };
}

/// <summary>One training step at a time; returns the loss before the update.</summary>
public interface IStepper : IDisposable
{
    /// <summary>Forward, loss, backward and the optimizer update.</summary>
    double Step();
}

internal sealed class TorchStepper(TorchLlama t) : IStepper
{
    public double Step() => t.Step();
    public void Dispose() => t.Dispose();
}
