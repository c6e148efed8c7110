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

    /// <summary>Parameters with fresh random values of order one (never zeros): matrices ~ N(0, scale), norm weights 1 ± 0.2, biases ~ N(0, 0.1).</summary>
    public static TensorSet RandomParameters(ModelConfig c, int seed, double scale = 0.3)
    {
        var rng = new Random(seed);
        var set = new TensorSet();
        foreach (var (name, shape) in c.TensorShapes())
        {
            var t = Tensor.Zeros(name, shape);
            for (int i = 0; i < t.Length; i++)
            {
                double g = Gauss(rng);
                t.Data[i] = (float)(name.EndsWith("norm.weight", StringComparison.Ordinal) ? 1 + 0.2 * g
                    : shape.Length == 1 ? 0.1 * g : scale * g);
            }
            set.Add(t);
        }
        return set;
    }

    public static double Gauss(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    public static double[] RandomDoubles(int n, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        var a = new double[n];
        for (int i = 0; i < n; i++) a[i] = scale * Gauss(rng);
        return a;
    }

    public static float[] RandomFloats(int n, int seed, double scale = 1)
        => Array.ConvertAll(RandomDoubles(n, seed, scale), v => (float)v);

    public static int[] RandomTokens(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
    }

    /// <summary>max |a − b| / max |b| (b the reference).</summary>
    public static double MaxRelError(ReadOnlySpan<float> a, ReadOnlySpan<double> b)
    {
        Assert.Equal(b.Length, a.Length);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.True(float.IsFinite(a[i]), $"value {i} is {a[i]}");
            maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
            maxRef = Math.Max(maxRef, Math.Abs(b[i]));
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }

    public static double MaxRelError(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var d = new double[b.Length];
        for (int i = 0; i < d.Length; i++) d[i] = b[i];
        return MaxRelError(a, d);
    }
}
