using Raft.Benchmarks.Distill;
using Raft.Model;

namespace Raft.Benchmarks.Training;

/// <summary>One benchmarked model: its architecture and the batch of a training step.</summary>
/// <param name="Name">Short name, the benchmark parameter ("demo", "larger").</param>
/// <param name="Config">The architecture.</param>
/// <param name="Batch">Sequences per step.</param>
/// <param name="SeqLen">Tokens per sequence.</param>
public sealed record TrainingCase(string Name, ModelConfig Config, int Batch, int SeqLen)
{
    /// <summary>Tokens per step (B·T).</summary>
    public int Tokens => Batch * SeqLen;

    /// <summary>Parameter count.</summary>
    public long ParameterCount => Config.TensorShapes().Sum(s => s.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>"hidden 256, 4 layers, 4 heads (2 KV), F 688, V 259, tied, B 16 × T 128".</summary>
    public string Describe() =>
        $"hidden {Config.HiddenSize}, {Config.NumHiddenLayers} layers, {Config.NumAttentionHeads} heads ({Config.KvHeads} KV), " +
        $"intermediate {Config.IntermediateSize}, vocab {Config.VocabSize:N0}, {(Config.TieWordEmbeddings ? "tied" : "untied")} embeddings, " +
        $"{ParameterCount / 1e6:0.00} M parameters; batch {Batch} × seq {SeqLen} = {Tokens} tokens/step";
}

/// <summary>
/// Shapes of the training and Matmul suites. <see cref="Small"/> (command-line <c>--small</c>, or
/// <c>RAFT_BENCH_SMALL=1</c>, shared with the distillation suite) swaps in tiny models for smoke tests;
/// <see cref="LargerBatchOverride"/> (<c>--larger-batch N</c>) lowers the larger model's batch when memory or time forces it.
/// </summary>
public static class TrainingShapes
{
    /// <summary>Smoke-test shapes instead of the real ones (follows the distillation suite's flag).</summary>
    public static bool Small => DistillShapes.Small;

    /// <summary>When &gt; 0, the larger model's batch instead of 4.</summary>
    public static int LargerBatchOverride { get; set; }

    /// <summary>True for the real suite's shapes.</summary>
    public static bool IsFullSize => !Small && LargerBatchOverride <= 0;

    /// <summary>AdamW hyper-parameters of both implementations (learning rate constant).</summary>
    public const double LearningRate = 1e-4, Beta1 = 0.9, Beta2 = 0.95, Epsilon = 1e-8, WeightDecay = 0.1;

    /// <summary>The engine's optimizer with these hyper-parameters (constant learning rate), over <paramref name="parameters"/>.</summary>
    public static AdamW CreateAdamW(TensorSet parameters) => new(parameters,
        new AdamWOptions { Beta1 = Beta1, Beta2 = Beta2, Epsilon = Epsilon, WeightDecay = WeightDecay },
        LearningRateSchedule.Constant(LearningRate));

    /// <summary>Seeds of the weights and of the tokens.</summary>
    public const int WeightSeed = 1234, TokenSeed = 5678;

    private static ModelConfig Llama(int hidden, int layers, int heads, int kvHeads, int inter, int vocab, bool tied) => new()
    {
        ModelType = "llama", HiddenSize = hidden, NumHiddenLayers = layers, NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads, IntermediateSize = inter, VocabSize = vocab, TieWordEmbeddings = tied,
        RmsNormEps = 1e-5, RopeTheta = 10000.0, MaxPositionEmbeddings = 2048,
    };

    /// <summary>The demo model: hidden 256, 4 layers, 4 heads (2 KV), intermediate 688, 259 byte-level tokens, tied, B 16 × T 128.</summary>
    public static TrainingCase Demo => Small
        ? new("demo", Llama(64, 2, 4, 2, 172, 259, tied: true), 2, 32)
        : new("demo", Llama(256, 4, 4, 2, 688, 259, tied: true), 16, 128);

    /// <summary>The larger model: hidden 512, 8 layers, 8 heads (4 KV), intermediate 1376, vocab 32,000, untied, B 4 × T 128.</summary>
    public static TrainingCase Larger => Small
        ? new("larger", Llama(64, 2, 4, 2, 172, 1000, tied: false), LargerBatchOverride > 0 ? LargerBatchOverride : 2, 32)
        : new("larger", Llama(512, 8, 8, 4, 1376, 32_000, tied: false), LargerBatchOverride > 0 ? LargerBatchOverride : 4, 128);

    /// <summary>The benchmark parameter values.</summary>
    public static string[] CaseNames => ["demo", "larger"];

    /// <summary>The case named <paramref name="name"/>.</summary>
    public static TrainingCase Get(string name) => name switch
    {
        "demo" => Demo,
        "larger" => Larger,
        _ => throw new ArgumentException($"unknown training case '{name}' (demo or larger).", nameof(name)),
    };

    /// <summary>Square Matmul sizes n = k = m: 512 (~2–5 ms a call here) and 1536 (~30–150 ms).</summary>
    public static int[] MatmulSizes => Small ? [64, 128] : [512, 1536];
}

/// <summary>
/// The inputs of one training case, identical for every implementation and process: the initial weights
/// (<see cref="LlamaModel.CreateRandom"/> with a fixed seed: normal(0, 0.02) matrices, unit norms) and B
/// sequences of T + 1 seeded random tokens; a step reads tokens [0, T) of each and predicts tokens [1, T].
/// </summary>
public sealed class TrainingProblem
{
    /// <summary>Creates the inputs of <paramref name="c"/>.</summary>
    public TrainingProblem(TrainingCase c)
    {
        Case = c;
        InitialWeights = LlamaModel.CreateRandom(c.Config, TrainingShapes.WeightSeed).Parameters;
        var rng = new Random(TrainingShapes.TokenSeed);
        Inputs = new int[c.Tokens];
        Targets = new int[c.Tokens];
        for (int b = 0; b < c.Batch; b++)
        {
            int prev = rng.Next(c.Config.VocabSize);
            for (int t = 0; t < c.SeqLen; t++)
            {
                int next = rng.Next(c.Config.VocabSize);
                Inputs[b * c.SeqLen + t] = prev;
                Targets[b * c.SeqLen + t] = next;
                prev = next;
            }
        }
    }

    /// <summary>The case.</summary>
    public TrainingCase Case { get; }
    /// <summary>The weights every implementation starts from (never modified: trainers copy them).</summary>
    public TensorSet InitialWeights { get; }
    /// <summary>Input tokens [B·T].</summary>
    public int[] Inputs { get; }
    /// <summary>Next-token targets [B·T].</summary>
    public int[] Targets { get; }
}
