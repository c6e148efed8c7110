using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline.Tests;

/// <summary>Tiny byte-tokenizer models, data and options shared by the trainer, teacher and refiner tests.</summary>
internal static class TinyModels
{
    /// <summary>A "raft" model over the byte tokenizer: hidden 32, 1 layer, 4 heads over 2 KV heads.</summary>
    public static ModelConfig Config(int layers = 1, int hidden = 32, int maxPositions = 96) => new()
    {
        ModelType = "raft",
        HiddenSize = hidden,
        IntermediateSize = hidden * 2,
        NumHiddenLayers = layers,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        VocabSize = ByteTokenizer.Instance.VocabSize,
        MaxPositionEmbeddings = maxPositions,
        TieWordEmbeddings = true,
        RmsNormEps = 1e-5,
        BosTokenId = ByteTokenizer.Instance.BosId,
        Architectures = ["LlamaForCausalLM"],
    };

    public static LlamaModel Model(int seed = 1, int layers = 1) => LlamaModel.CreateRandom(Config(layers), seed);

    /// <summary>An independent copy (its own tensors) of <paramref name="model"/>.</summary>
    public static LlamaModel Copy(LlamaModel model) => new(model.Config, model.Parameters.Clone()) { Threads = 1 };

    /// <summary>A frozen copy of <paramref name="model"/> as a teacher.</summary>
    public static EngineTeacher Teacher(LlamaModel model) => new(Copy(model), new CpuKernels(1), "engine (frozen copy)");

    /// <summary>Eight short prompt/answer pairs in one style.</summary>
    public static TrainExample[] Data { get; } =
    [
        new("What is 2+3?", "The answer is 5."),
        new("What is 4+4?", "The answer is 8."),
        new("What is 1+6?", "The answer is 7."),
        new("What is 3+3?", "The answer is 6."),
        new("What comes after 8?", "The answer is 9."),
        new("What comes after 3?", "The answer is 4."),
        new("Flip 12.", "The answer is 21."),
        new("Flip 34.", "The answer is 43."),
    ];

    public static TrainOptions Sft(int steps) => new()
    {
        Method = TrainMethod.Sft, Steps = steps, BatchSize = 4, LearningRate = 1e-2, MinLearningRate = 1e-3,
        WarmupSteps = 2, Threads = 1, Seed = 3, ClipNorm = 1.0,
    };

    public static TrainOptions Raft(int steps) => Sft(steps) with
    {
        Method = TrainMethod.Raft, TopK = 8, RolloutMaxTokens = 6, RolloutTemperature = 1.0f, RolloutsPerPrompt = 1,
        EmaDecay = 0.5,
    };

    public static Trainer Trainer(LlamaModel student, TrainOptions options, ITeacher? teacher = null, IReadOnlyList<TrainExample>? data = null,
        Action<StepMetrics, LlamaModel>? afterStep = null, Action<string>? log = null, Action<int, int, StepMetrics>? progress = null) =>
        new(student, ByteTokenizer.Instance, ChatTemplate.Raft, data ?? Data, options, teacher, new CpuKernels(1))
        {
            AfterStep = afterStep, Log = log, Progress = progress,
        };

    public static float[] Flatten(TensorSet set) => set.Tensors.SelectMany(t => t.Data).ToArray();

    /// <summary>Every tensor of <paramref name="actual"/> equals <paramref name="expected"/>'s bit for bit.</summary>
    public static void AssertBitwiseEqual(TensorSet expected, TensorSet actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        foreach (var e in expected.Tensors)
        {
            var a = actual[e.Name];
            Assert.Equal(e.Length, a.Length);
            for (int i = 0; i < e.Length; i++)
                if (BitConverter.SingleToInt32Bits(e.Data[i]) != BitConverter.SingleToInt32Bits(a.Data[i]))
                    Assert.Fail($"{e.Name}[{i}]: expected {e.Data[i]:R}, got {a.Data[i]:R}");
        }
    }

    public static double MaxAbsDiff(TensorSet a, TensorSet b)
    {
        double max = 0;
        foreach (var t in a.Tensors)
        {
            var u = b[t.Name];
            for (int i = 0; i < t.Length; i++) max = Math.Max(max, Math.Abs(t.Data[i] - u.Data[i]));
        }
        return max;
    }
}
