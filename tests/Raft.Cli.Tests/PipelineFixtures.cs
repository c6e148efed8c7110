using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Teacher;

namespace Raft.Cli.Tests;

/// <summary>Tiny "raft" checkpoints (byte tokenizer), ONNX exports and JSONL files for the pipeline commands.</summary>
internal static class PipelineFixtures
{
    public static ModelConfig Config(int vocab = 0, int maxPositions = 256) => new()
    {
        ModelType = "raft",
        HiddenSize = 16,
        IntermediateSize = 32,
        NumHiddenLayers = 1,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        VocabSize = vocab > 0 ? vocab : ByteTokenizer.Instance.VocabSize,
        MaxPositionEmbeddings = maxPositions,
        TieWordEmbeddings = true,
        RmsNormEps = 1e-5,
        BosTokenId = ByteTokenizer.Instance.BosId,
        Architectures = ["LlamaForCausalLM"],
    };

    /// <summary>Saves a random tiny checkpoint (weights of order 0.3 so its outputs are not near-uniform) and returns its folder.</summary>
    public static string Checkpoint(string dir, int seed = 1, int vocab = 0)
    {
        var model = LlamaModel.CreateRandom(Config(vocab), seed);
        foreach (var t in model.Parameters.Tensors)
            if (t.Shape.Length == 2)
                for (int i = 0; i < t.Length; i++) t.Data[i] *= 15f;
        Raft.Model.Checkpoint.Save(dir, model.Config, model.Parameters);
        return dir;
    }

    /// <summary>Exports the checkpoint at <paramref name="checkpoint"/> as ONNX into <paramref name="dir"/>.</summary>
    public static string Onnx(string checkpoint, string dir)
    {
        var (config, weights) = Raft.Model.Checkpoint.Load(checkpoint);
        OnnxExporter.Export(config, weights, dir);
        return dir;
    }

    public static string Data(string path, int count = 4)
    {
        var lines = Enumerable.Range(0, count).Select(i =>
            $"{{\"prompt\": \"Flip {i + 1}{i + 3}.\", \"answer\": \"ok so ~~ {i + 3}{i + 1} ~~ that's it\"}}");
        File.WriteAllLines(path, lines);
        return path;
    }

    public static float[] Weights(string checkpoint) =>
        Raft.Model.Checkpoint.Load(checkpoint).Weights.Tensors.SelectMany(t => t.Data).ToArray();
}
