using Raft.Benchmarks.Distill;
using Raft.Kernels;
using Raft.Model;
using Raft.Teacher;

namespace Raft.Benchmarks.Teacher;

/// <summary>
/// Shapes of the teacher suite. Full size: a Llama of hidden 256, 4 layers (4 heads over 2 KV heads, head_dim 64,
/// intermediate 688), vocabulary 32,000 so that the logits dominate; 4 contexts of 128 tokens, each followed by a
/// rollout of 64 tokens; top-K 64 at τ = 2. <see cref="DistillShapes.Small"/> (<c>--small</c>) swaps in a toy model.
/// </summary>
public static class TeacherShapes
{
    /// <summary>Whether the toy shapes are in use (<see cref="DistillShapes.Small"/>).</summary>
    public static bool Small => DistillShapes.Small;

    /// <summary>The model.</summary>
    public static ModelConfig Config => DistillShapes.Small
        ? new ModelConfig
        {
            ModelType = "llama", HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            VocabSize = 1000, RmsNormEps = 1e-6, RopeTheta = 10000, MaxPositionEmbeddings = 64,
        }
        : new ModelConfig
        {
            ModelType = "llama", HiddenSize = 256, IntermediateSize = 688, NumHiddenLayers = 4, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            VocabSize = 32_000, RmsNormEps = 1e-6, RopeTheta = 10000, MaxPositionEmbeddings = 512,
        };

    /// <summary>Sequences scored together.</summary>
    public static int Batch => 4;
    /// <summary>Context tokens per sequence.</summary>
    public static int ContextLength => DistillShapes.Small ? 16 : 128;
    /// <summary>Rollout tokens per sequence (the scored positions).</summary>
    public static int RolloutLength => DistillShapes.Small ? 8 : 64;
    /// <summary>Teacher top-K.</summary>
    public static int K => DistillShapes.Small ? 8 : 64;
    /// <summary>Teacher temperature.</summary>
    public const float Temperature = 2f;
    /// <summary>Positions per chunk of the chunked scorer (its memory budget is Batch × this × V × 4 bytes).</summary>
    public const int ChunkPositions = 16;
    /// <summary>Scored positions per call: Batch × RolloutLength.</summary>
    public static int ScoredPositions => Batch * RolloutLength;
    /// <summary>The chunked scorer's logits budget.</summary>
    public static long ChunkedBudgetBytes => (long)Batch * ChunkPositions * Config.VocabSize * sizeof(float);
    /// <summary>A budget that holds the whole batch in one chunk.</summary>
    public const long UnchunkedBudgetBytes = long.MaxValue / 4;

    /// <summary>One line describing the shapes.</summary>
    public static string Describe()
    {
        var c = Config;
        return $"teacher: hidden {c.HiddenSize}, {c.NumHiddenLayers} layers, {c.NumAttentionHeads} heads / {c.KvHeads} kv, head_dim {c.HeadDim}, intermediate {c.IntermediateSize}, V {c.VocabSize}; "
            + $"batch {Batch} × (context {ContextLength} + rollout {RolloutLength}), K {K}, τ {Temperature}; chunked: {ChunkPositions} positions a chunk ({ChunkedBudgetBytes / 1048576.0:0.0} MiB of logits)";
    }
}

/// <summary>
/// The teacher suite's inputs: seeded random weights exported to ONNX in a temporary directory (deleted on dispose),
/// seeded contexts and rollouts. Everything every method needs is built here, so both sides see the same model and tokens.
/// </summary>
public sealed class TeacherProblem : IDisposable
{
    /// <summary>Builds the weights, exports them, draws the tokens.</summary>
    public TeacherProblem()
    {
        Config = TeacherShapes.Config;
        Weights = LlamaModel.CreateRandom(Config, seed: 20250).Parameters;
        Directory.CreateDirectory(ModelDirectory);
        OnnxExporter.Export(Config, Weights, ModelDirectory);
        var rng = new Random(4242);
        Contexts = [.. Enumerable.Range(0, TeacherShapes.Batch).Select(_ => Enumerable.Range(0, TeacherShapes.ContextLength).Select(_ => rng.Next(Config.VocabSize)).ToArray())];
        Rollouts = [.. Enumerable.Range(0, TeacherShapes.Batch).Select(_ => Enumerable.Range(0, TeacherShapes.RolloutLength).Select(_ => rng.Next(Config.VocabSize)).ToArray())];
    }

    /// <summary>The architecture.</summary>
    public ModelConfig Config { get; }
    /// <summary>The weights (Hugging Face names).</summary>
    public TensorSet Weights { get; }
    /// <summary>Where the ONNX model lies.</summary>
    public string ModelDirectory { get; } = Path.Combine(Path.GetTempPath(), "raft-bench-teacher-" + Guid.NewGuid().ToString("N"));
    /// <summary>Contexts [Batch][ContextLength].</summary>
    public int[][] Contexts { get; }
    /// <summary>Rollouts [Batch][RolloutLength].</summary>
    public int[][] Rollouts { get; }

    /// <summary>Opens the exported model on the CPU provider, intra-op threads = cores.</summary>
    public TeacherSession OpenCpu() => TeacherSession.Open(ModelDirectory, new TeacherOptions
    {
        Provider = ComputeDevice.Cpu, IntraOpThreads = Environment.ProcessorCount, Log = _ => { },
    });

    /// <inheritdoc />
    public void Dispose()
    {
        try { Directory.Delete(ModelDirectory, true); } catch (IOException) { }
    }
}

/// <summary>
/// The engine's own teacher forward: <see cref="LlamaModel.Forward(ReadOnlySpan{int}, int, int, ModelActivations?, ReadOnlySpan{int})"/>
/// over context ++ rollout[..R−1] for the whole batch (full logits [B·(C+R−1), V], one call, no cache), then
/// <see cref="CpuKernels.TopKSoftmax"/> over the R rows of each sequence that predict the rollout.
/// </summary>
public sealed class EngineTeacher
{
    private readonly LlamaModel _model;
    private readonly CpuKernels _kernels = new(Environment.ProcessorCount);
    private readonly int[] _tokens;
    private readonly int _seq;

    /// <summary>Builds the model over the problem's weights and the fed tokens.</summary>
    public EngineTeacher(TeacherProblem p)
    {
        _model = new LlamaModel(p.Config, p.Weights) { Threads = Environment.ProcessorCount };
        int c = TeacherShapes.ContextLength, r = TeacherShapes.RolloutLength;
        _seq = c + r - 1;
        _tokens = new int[TeacherShapes.Batch * _seq];
        for (int b = 0; b < TeacherShapes.Batch; b++)
        {
            for (int i = 0; i < c; i++) _tokens[b * _seq + i] = p.Contexts[b][i];
            for (int i = 0; i < r - 1; i++) _tokens[b * _seq + c + i] = p.Rollouts[b][i];
        }
    }

    /// <summary>Top-K indices and probabilities [Batch][R·K].</summary>
    public (int[] Indices, float[] Probs)[] Score()
    {
        int v = _model.Config.VocabSize, c = TeacherShapes.ContextLength, r = TeacherShapes.RolloutLength, k = TeacherShapes.K;
        float[] logits = _model.Forward(_tokens, TeacherShapes.Batch, _seq);
        var result = new (int[], float[])[TeacherShapes.Batch];
        for (int b = 0; b < TeacherShapes.Batch; b++)
        {
            var idx = new int[r * k];
            var probs = new float[r * k];
            _kernels.TopKSoftmax(logits.AsSpan((b * _seq + c - 1) * v, r * v), r, v, k, TeacherShapes.Temperature, idx, probs);
            result[b] = (idx, probs);
        }
        return result;
    }
}
