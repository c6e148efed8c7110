using System.Runtime.Intrinsics;

namespace Raft.Kernels.Tests;

/// <summary>The vector exp of the CPU kernels against Math.Exp in double, over its whole range and its edges.</summary>
public class CpuSimdTests
{
    private static float[] Inputs()
    {
        var rng = new Random(TestData.NextSeed());
        var xs = new List<float> { 0f, -0f, 1f, -1f, 0.34657359f, -0.34657359f, -87f, 88f, -86.99f, 87.99f, -20.5f, 1e-8f, -1e-8f };
        for (int i = 0; i < 4000; i++) xs.Add((float)(-87 + 175 * rng.NextDouble()));
        for (int i = 0; i < 1000; i++) xs.Add((float)(-30 * rng.NextDouble()));
        while (xs.Count % 16 != 0) xs.Add((float)(-rng.NextDouble()));
        return xs.ToArray();
    }

    [Fact]
    public void Vector512ExpIsWithinFourUlpOfMathExp()
    {
        if (!Vector512.IsHardwareAccelerated) return; // the Vector256 test covers this machine's widest path
        var xs = Inputs();
        for (int i = 0; i < xs.Length; i += 16)
        {
            var e = CpuSimd.Exp(Vector512.Create(xs.AsSpan(i, 16)));
            for (int l = 0; l < 16; l++) AssertClose(xs[i + l], e[l]);
        }
    }

    [Fact]
    public void Vector256ExpIsWithinFourUlpOfMathExp()
    {
        var xs = Inputs();
        for (int i = 0; i < xs.Length; i += 8)
        {
            var e = CpuSimd.Exp(Vector256.Create(xs.AsSpan(i, 8)));
            for (int l = 0; l < 8; l++) AssertClose(xs[i + l], e[l]);
        }
    }

    [Fact]
    public void ExpClampsBelowTheNormalRangeAndPropagatesNaN()
    {
        var e = CpuSimd.Exp(Vector256.Create(-1000f, -88f, -87f, float.NegativeInfinity, float.NaN, 0f, -200f, -100f));
        Assert.Equal(MathF.Exp(-87f), e[0], 1e-44f);
        Assert.True(e[0] > 0f && e[0] < 2e-38f);
        Assert.True(e[3] >= 0f && e[3] < 2e-38f);
        Assert.True(float.IsNaN(e[4]), $"exp(NaN) should be NaN, got {e[4]}");
        Assert.Equal(1f, e[5]);
    }

    private static void AssertClose(float x, float actual)
    {
        double expected = Math.Exp(x);
        double ulp = MathF.BitIncrement((float)expected) - (float)expected;
        Assert.True(Math.Abs(actual - expected) <= 4 * ulp, $"exp({x:R}) = {expected:R}, got {actual:R} ({Math.Abs(actual - expected) / ulp:F1} ulp)");
    }
}
