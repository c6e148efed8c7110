using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Demo;

/// <summary>
/// The demo world's base "instruction-tuned" model: a tiny Llama-family decoder over the byte tokenizer, instruction-tuned
/// by the engine itself (plain SFT) on <see cref="DemoWorld.PretrainItem(Random, bool)"/>'s stream. <c>raft pretrain</c> runs this; the
/// repository ships its result under <c>models/demo-base</c> so that <c>raft demo</c> starts at once.
/// </summary>
public static class DemoBase
{
    /// <summary>The base model's shape: hidden 128, 4 layers, 4 heads (2 KV), SwiGLU 384, tied embeddings, 160 positions.</summary>
    public static ModelConfig Config { get; } = ByteLlama(hidden: 128, intermediate: 384, layers: 4, heads: 4, kvHeads: 2, positions: 160);

    /// <summary>The default instruction-tuning budget.</summary>
    public static TrainOptions DefaultOptions { get; } = PretrainOptions(steps: 6000, learningRate: 3e-3, minLearningRate: 1e-4, warmup: 100, seed: 1);

    /// <summary>
    /// A Llama-family decoder over the built-in byte tokenizer (the demo worlds' bases): tied embeddings, RMSNorm ε 1e-5,
    /// model type <c>raft</c>.
    /// </summary>
    public static ModelConfig ByteLlama(int hidden, int intermediate, int layers, int heads, int kvHeads, int positions) => new()
    {
        ModelType = "raft",
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads,
        VocabSize = ByteTokenizer.Instance.VocabSize,
        MaxPositionEmbeddings = positions,
        TieWordEmbeddings = true,
        RmsNormEps = 1e-5,
        BosTokenId = ByteTokenizer.Instance.BosId,
        Architectures = ["LlamaForCausalLM"],
    };

    /// <summary>The demo bases' instruction-tuning recipe: plain SFT, batch 32, AdamW with weight decay 0.01, clipping at 1, warm-up and cosine decay.</summary>
    public static TrainOptions PretrainOptions(int steps, double learningRate, double minLearningRate, int warmup, int seed, int checkpointEvery = 0) => new()
    {
        Method = TrainMethod.Sft,
        Steps = steps,
        BatchSize = 32,
        LearningRate = learningRate,
        MinLearningRate = minLearningRate,
        WarmupSteps = warmup,
        WeightDecay = 0.01,
        ClipNorm = 1.0,
        Seed = seed,
        CheckpointEvery = checkpointEvery,
    };

    /// <summary>The second phase of the recipe: copying from a reference when the prompt holds the same digits shuffled.</summary>
    public static TrainOptions CopyPhaseOptions { get; } = PretrainOptions(steps: 2000, learningRate: 1e-3, minLearningRate: 5e-5, warmup: 50, seed: 2);

    /// <summary>The instruction-tuning examples of a run: steps × batch distinct draws of the world's stream.</summary>
    public static IReadOnlyList<TrainExample> Stream(int count, int seed, bool copyPhase = false)
    {
        var rng = new Random(seed);
        var list = new List<TrainExample>(count);
        for (int i = 0; i < count; i++)
        {
            var item = DemoWorld.PretrainItem(rng, copyPhase);
            list.Add(new TrainExample(item.Prompt, item.Answer));
        }
        return list;
    }

    /// <summary>
    /// Trains the base model from random weights in two phases and returns it: <paramref name="options"/> on the general
    /// stream (run directory <c>&lt;run&gt;/general</c>), then <paramref name="copyPhase"/> (default <see cref="CopyPhaseOptions"/>)
    /// on the copy-phase stream (<c>&lt;run&gt;/copy</c>). Each phase can be resumed. <paramref name="afterStep"/> is the
    /// trainers' <see cref="Trainer.AfterStep"/>; <paramref name="cancellation"/> stops a phase between steps
    /// (<see cref="OperationCanceledException"/>, every checkpoint written kept).
    /// </summary>
    public static LlamaModel Pretrain(TrainOptions options, string? runDirectory = null, Action<string>? log = null,
        Action<int, int, StepMetrics>? progress = null, bool resume = false, TrainOptions? copyPhase = null,
        Action<StepMetrics, LlamaModel>? afterStep = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var model = LlamaModel.CreateRandom(Config, options.Seed);
        var data = Stream(options.Steps * options.BatchSize, options.Seed);
        var trainer = new Trainer(model, ByteTokenizer.Instance, ChatTemplate.Raft, data, options with { Method = TrainMethod.Sft })
        {
            Log = log, Progress = progress, AfterStep = afterStep,
        };
        trainer.Run(runDirectory is null ? null : Path.Combine(runDirectory, "general"), resume, cancellation);
        ContinueWithCopyPhase(model, (copyPhase ?? CopyPhaseOptions) with { Threads = options.Threads },
            runDirectory is null ? null : Path.Combine(runDirectory, "copy"), log, progress, resume, afterStep, cancellation);
        return model;
    }

    /// <summary>Runs the copy phase on <paramref name="model"/> in place.</summary>
    public static void ContinueWithCopyPhase(LlamaModel model, TrainOptions options, string? runDirectory = null, Action<string>? log = null,
        Action<int, int, StepMetrics>? progress = null, bool resume = false, Action<StepMetrics, LlamaModel>? afterStep = null,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        var data = Stream(options.Steps * options.BatchSize, options.Seed, copyPhase: true);
        new Trainer(model, ByteTokenizer.Instance, ChatTemplate.Raft, data, options with { Method = TrainMethod.Sft })
        {
            Log = log, Progress = progress, AfterStep = afterStep,
        }.Run(runDirectory, resume, cancellation);
    }
}
