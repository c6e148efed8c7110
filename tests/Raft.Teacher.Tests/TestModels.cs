using Raft.Model;

namespace Raft.Teacher.Tests;

internal static class TestModels
{
    /// <summary>2 layers, 4 query heads over 2 KV heads, hidden 16, head_dim 4, intermediate 24, vocab 11.</summary>
    public static ModelConfig Tiny(bool tied, bool bias, int vocab = 11) => new()
    {
        ModelType = bias ? "qwen2" : "llama",
        HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = vocab, RmsNormEps = 1e-6, RopeTheta = 10000, TieWordEmbeddings = tied, AttentionBias = bias,
        MaxPositionEmbeddings = 64,
    };

    /// <summary>Fresh random parameters of order one: matrices ~ N(0, 0.3), norm weights 1 ± 0.2, biases ~ N(0, 0.1).</summary>
    public static TensorSet RandomParameters(ModelConfig c, int seed)
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
                    : shape.Length == 1 ? 0.1 * g : 0.3 * g);
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

    public static int[] RandomTokens(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
    }

    /// <summary>max |a − b| / max |b|, b the reference; both must be finite and of the same length.</summary>
    public static double MaxRelError(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(b.Length, a.Length);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.True(float.IsFinite(a[i]) && float.IsFinite(b[i]), $"value {i}: {a[i]} vs {b[i]}");
            maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
            maxRef = Math.Max(maxRef, Math.Abs(b[i]));
        }
        Assert.True(maxRef > 0.1, $"reference logits are degenerate (max |b| = {maxRef})");
        return maxDiff / maxRef;
    }

    /// <summary>A fresh temporary directory, deleted on dispose.</summary>
    public sealed class TempDir : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "raft-teacher-" + Guid.NewGuid().ToString("N"));
        public TempDir() => Directory.CreateDirectory(Path);
        public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
    }

    public static TeacherOptions Cpu(List<string>? log = null) => new() { Provider = Raft.Kernels.ComputeDevice.Cpu, IntraOpThreads = 2, Log = l => log?.Add(l) };
}
