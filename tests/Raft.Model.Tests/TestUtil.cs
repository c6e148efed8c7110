namespace Raft.Model.Tests;

internal static class TestUtil
{
    /// <summary>The tiny config of the issue: 2 layers, 4 query heads over 2 KV heads, hidden 16, head_dim 4, intermediate 24, vocab 11.</summary>
    public static ModelConfig Tiny(bool tied, bool bias) => new()
    {
        ModelType = bias ? "qwen2" : "llama",
        HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = 11, RmsNormEps = 1e-6, RopeTheta = 10000, TieWordEmbeddings = tied, AttentionBias = bias,
    };

    /// <summary>A wider config that exercises the SIMD paths (head_dim 16, hidden 64).</summary>
    public static ModelConfig Medium(bool tied, bool bias) => new()
    {
        ModelType = bias ? "qwen2" : "llama",
        HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = 50, RmsNormEps = 1e-5, RopeTheta = 10000, TieWordEmbeddings = tied, AttentionBias = bias,
    };

    public static IEnumerable<object[]> TiedBias() =>
        [[false, false], [true, false], [false, true], [true, true]];

    public static double[] RandomDoubles(int n, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        var a = new double[n];
        for (int i = 0; i < n; i++) a[i] = scale * Gauss.Next(rng);
        return a;
    }

    public static float[] RandomFloats(int n, int seed, double scale = 1)
        => Array.ConvertAll(RandomDoubles(n, seed, scale), v => (float)v);
}
