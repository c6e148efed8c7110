using Raft.Model;

namespace Raft.Tests.Shared;

/// <summary>Random model parameters and token ids for the tests that build a model (linked source, one copy).</summary>
internal static class RandomData
{
    /// <summary>
    /// Parameters with fresh random values of order one (never zeros), from <c>new Random(seed)</c>: see
    /// <see cref="RandomParameters(ModelConfig, Random, double)"/>.
    /// </summary>
    public static TensorSet RandomParameters(ModelConfig c, int seed, double scale = 0.3) =>
        RandomParameters(c, new Random(seed), scale);

    /// <summary>
    /// Parameters drawn from <paramref name="rng"/> in the config's tensor order, one <see cref="Gauss.Next(Random)"/>
    /// g per element: norm weights 1 + 0.2·g, other vectors (biases) 0.1·g, matrices <paramref name="scale"/>·g.
    /// </summary>
    public static TensorSet RandomParameters(ModelConfig c, Random rng, double scale = 0.3)
    {
        var set = new TensorSet();
        foreach (var (name, shape) in c.TensorShapes())
        {
            var t = Tensor.Zeros(name, shape);
            for (int i = 0; i < t.Length; i++)
            {
                double g = Gauss.Next(rng);
                t.Data[i] = (float)(name.EndsWith("norm.weight", StringComparison.Ordinal) ? 1 + 0.2 * g
                    : shape.Length == 1 ? 0.1 * g : scale * g);
            }
            set.Add(t);
        }
        return set;
    }

    /// <summary><paramref name="n"/> token ids uniform in [0, <paramref name="vocab"/>) from <c>new Random(seed)</c>.</summary>
    public static int[] RandomTokens(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
    }
}
