namespace Raft.Model.Tests;

internal static class TestModels
{
    /// <summary>A tiny Llama config: d=8, f=12, 2 layers, 2 heads, 1 kv head, vocab 11.</summary>
    public static ModelConfig Tiny(bool tied = false, string type = "llama") => new()
    {
        ModelType = type, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 2, NumAttentionHeads = 2,
        NumKeyValueHeads = 1, VocabSize = 11, TieWordEmbeddings = tied, MaxPositionEmbeddings = 64,
    };

    /// <summary>Random weights (fixed seed) with the config's names and shapes.</summary>
    public static TensorSet RandomWeights(ModelConfig c, int seed = 1)
    {
        var rng = new Random(seed);
        var set = new TensorSet();
        foreach (var (name, shape) in c.TensorShapes())
        {
            var t = Tensor.Zeros(name, shape);
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)(rng.NextDouble() * 2 - 1);
            set.Add(t);
        }
        return set;
    }

    public static void AssertBitEqual(TensorSet expected, TensorSet actual)
    {
        Assert.Equal(expected.Tensors.Select(t => t.Name), actual.Tensors.Select(t => t.Name));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected.Tensors[i].Shape, actual.Tensors[i].Shape);
            var a = expected.Tensors[i].Data;
            var b = actual.Tensors[i].Data;
            for (int j = 0; j < a.Length; j++)
                if (BitConverter.SingleToUInt32Bits(a[j]) != BitConverter.SingleToUInt32Bits(b[j]))
                    Assert.Fail($"{expected.Tensors[i].Name}[{j}]: expected {a[j]:R}, got {b[j]:R}");
        }
    }
}
