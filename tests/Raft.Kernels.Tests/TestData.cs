namespace Raft.Kernels.Tests;

/// <summary>Fresh random inputs for kernel tests (never zeros; a new seed per run unless one is given).</summary>
internal static class TestData
{
    private static int _seed = Environment.TickCount;

    /// <summary>A seed that differs per call and per run; printed by failing assertions through the case name.</summary>
    public static int NextSeed() => Interlocked.Increment(ref _seed);

    /// <summary>[rows, vocab] logits ~ offset + scale·N(0, 1).</summary>
    public static float[] Logits(Random rng, int rows, int vocab, float scale = 3f, float offset = 0f)
    {
        var a = new float[rows * vocab];
        for (int i = 0; i < a.Length; i++) a[i] = offset + scale * (float)Gauss.Next(rng);
        return a;
    }

    /// <summary>Row weights in (0.1, 2) with every third row masked (weight 0).</summary>
    public static float[] Weights(Random rng, int rows)
    {
        var w = new float[rows];
        for (int r = 0; r < rows; r++) w[r] = r % 3 == 1 ? 0f : 0.1f + 1.9f * (float)rng.NextDouble();
        return w;
    }

    /// <summary>Teacher top-K from the reference, for distillation inputs.</summary>
    public static (int[] idx, float[] p) TeacherTopK(Random rng, int rows, int vocab, int k, float tau, float offset = 0f)
    {
        var t = Logits(rng, rows, vocab, 3f, offset);
        var idx = new int[rows * k];
        var p = new float[rows * k];
        ReferenceKernels.Instance.TopKSoftmax(t, rows, vocab, k, tau, idx, p);
        return (idx, p);
    }

    public static void AssertClose(double expected, double actual, double rel, string what)
    {
        double err = Math.Abs(expected - actual) / Math.Max(Math.Abs(expected), 1e-6);
        Assert.True(err <= rel, $"{what}: expected {expected:R}, got {actual:R} (relative error {err:E2} > {rel:E0})");
    }

    /// <summary>max_i |e_i − a_i| ≤ rel·max_i |e_i| + abs.</summary>
    public static void AssertAllClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double rel, double abs, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = 0, worst = 0;
        int at = -1;
        for (int i = 0; i < expected.Length; i++) scale = Math.Max(scale, Math.Abs(expected[i]));
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs((double)expected[i] - actual[i]);
            if (!(d <= worst) || double.IsNaN(d)) { worst = double.IsNaN(d) ? double.PositiveInfinity : d; at = i; }
        }
        Assert.True(worst <= rel * scale + abs,
            $"{what}: max abs difference {worst:E3} at element {at} (expected {(at >= 0 ? expected[at] : 0)}, got {(at >= 0 ? actual[at] : 0)}) exceeds {rel:E0}·{scale:E3} + {abs:E0}");
    }
}
