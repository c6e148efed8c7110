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
    public static ModelConfig Config { get; } = new()
    {
        ModelType = "raft",
        HiddenSize = 128,
        IntermediateSize = 384,
        NumHiddenLayers = 4,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        VocabSize = ByteTokenizer.Instance.VocabSize,
        MaxPositionEmbeddings = 160,
        TieWordEmbeddings = true,
        RmsNormEps = 1e-5,
        BosTokenId = ByteTokenizer.Instance.BosId,
        Architectures = ["LlamaForCausalLM"],
    };

    /// <summary>The default instruction-tuning budget.</summary>
    public static TrainOptions DefaultOptions { get; } = new()
    {
        Method = TrainMethod.Sft,
        Steps = 6000,
        BatchSize = 32,
        LearningRate = 3e-3,
        MinLearningRate = 1e-4,
        WarmupSteps = 100,
        WeightDecay = 0.01,
        ClipNorm = 1.0,
        Seed = 1,
    };

    /// <summary>The second phase of the recipe: copying from a reference when the prompt holds the same digits shuffled.</summary>
    public static TrainOptions CopyPhaseOptions { get; } = new()
    {
        Method = TrainMethod.Sft,
        Steps = 2000,
        BatchSize = 32,
        LearningRate = 1e-3,
        MinLearningRate = 5e-5,
        WarmupSteps = 50,
        WeightDecay = 0.01,
        ClipNorm = 1.0,
        Seed = 2,
    };

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
    /// on the copy-phase stream (<c>&lt;run&gt;/copy</c>). Each phase can be resumed.
    /// </summary>
    public static LlamaModel Pretrain(TrainOptions options, string? runDirectory = null, Action<string>? log = null,
        Action<int, int, StepMetrics>? progress = null, bool resume = false, TrainOptions? copyPhase = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var model = LlamaModel.CreateRandom(Config, options.Seed);
        var data = Stream(options.Steps * options.BatchSize, options.Seed);
        var trainer = new Trainer(model, ByteTokenizer.Instance, ChatTemplate.Raft, data, options with { Method = TrainMethod.Sft })
        {
            Log = log, Progress = progress,
        };
        trainer.Run(runDirectory is null ? null : Path.Combine(runDirectory, "general"), resume);
        ContinueWithCopyPhase(model, (copyPhase ?? CopyPhaseOptions) with { Threads = options.Threads },
            runDirectory is null ? null : Path.Combine(runDirectory, "copy"), log, progress, resume);
        return model;
    }

    /// <summary>Runs the copy phase on <paramref name="model"/> in place.</summary>
    public static void ContinueWithCopyPhase(LlamaModel model, TrainOptions options, string? runDirectory = null, Action<string>? log = null,
        Action<int, int, StepMetrics>? progress = null, bool resume = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        var data = Stream(options.Steps * options.BatchSize, options.Seed, copyPhase: true);
        new Trainer(model, ByteTokenizer.Instance, ChatTemplate.Raft, data, options with { Method = TrainMethod.Sft })
        {
            Log = log, Progress = progress,
        }.Run(runDirectory, resume);
    }
}
