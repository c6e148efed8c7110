using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Demo.V2;

/// <summary>
/// The v2 world's base model (docs/demo.md): a Llama-family decoder of about 4.8 M parameters over the byte tokenizer,
/// instruction-tuned by plain SFT on <see cref="Item"/>'s stream: general questions in the house style (40 %), general
/// questions with 1–3 format instructions (20 %), rewriting a general or made-up question's reference written in a
/// foreign notation (20 %) and answering with a reference in context (20 %). It never sees a domain prompt.
/// </summary>
public static class DemoV2Base
{
    /// <summary>Hidden 256, 6 layers, 8 query heads and 4 KV heads, SwiGLU 768, tied embeddings, 320 positions.</summary>
    public static ModelConfig Config { get; } = DemoBase.ByteLlama(hidden: 256, intermediate: 768, layers: 6, heads: 8, kvHeads: 4, positions: 320);

    /// <summary>The instruction-tuning budget: 12,000 steps of 32, AdamW 2e-3 → 1e-4 (200 warm-up steps), a resumable checkpoint every 100 steps.</summary>
    public static TrainOptions DefaultOptions { get; } =
        DemoBase.PretrainOptions(steps: 12000, learningRate: 2e-3, minLearningRate: 1e-4, warmup: 200, seed: 1, checkpointEvery: 100);

    /// <summary>One item of the instruction-tuning stream.</summary>
    public static TrainExample Item(Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        double u = rng.NextDouble();
        if (u < 0.40)
        {
            var g = DemoV2World.General(rng);
            return new TrainExample(g.Prompt, g.House);
        }
        if (u < 0.60)
        {
            var f = DemoV2Formats.Draw(rng, 1, 3);
            return new TrainExample(f.Prompt, f.Answer);
        }
        var q = rng.Next(2) == 0 ? DemoV2World.General(rng) : DemoV2World.Unknown(rng);
        string reference = rng.Next(5) == 0 ? q.House : DemoV2World.Foreign(rng, q);
        return u < 0.80
            ? new TrainExample(PromptTemplates.Rewrite(q.Prompt, reference), q.House)
            : new TrainExample(PromptTemplates.AnswerConditioned(q.Prompt, reference), q.House);
    }

    /// <summary>The first <paramref name="count"/> items of the stream of <paramref name="seed"/>.</summary>
    public static IReadOnlyList<TrainExample> Stream(int count, int seed)
    {
        var rng = new Random(seed);
        var list = new List<TrainExample>(count);
        for (int i = 0; i < count; i++) list.Add(Item(rng));
        return list;
    }

    /// <summary>
    /// Trains the base from random weights (<paramref name="config"/>, default <see cref="Config"/>) with
    /// <paramref name="options"/> in <paramref name="runDirectory"/> (resumable: checkpoints every
    /// <see cref="TrainOptions.CheckpointEvery"/> steps; <paramref name="resume"/> continues from the newest, bit for bit).
    /// <paramref name="afterStep"/> is the trainer's <see cref="Trainer.AfterStep"/>; <paramref name="cancellation"/> stops
    /// it between steps (<see cref="OperationCanceledException"/>, every checkpoint written kept).
    /// </summary>
    public static LlamaModel Pretrain(TrainOptions options, string? runDirectory = null, Action<string>? log = null,
        Action<int, int, StepMetrics>? progress = null, bool resume = false, ModelConfig? config = null,
        Action<StepMetrics, LlamaModel>? afterStep = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var model = LlamaModel.CreateRandom(config ?? Config, options.Seed);
        var data = Stream(options.Steps * options.BatchSize, options.Seed);
        new Trainer(model, ByteTokenizer.Instance, ChatTemplate.Raft, data, options with { Method = TrainMethod.Sft })
        {
            Log = log, Progress = progress, AfterStep = afterStep,
        }.Run(runDirectory, resume, cancellation);
        return model;
    }
}
