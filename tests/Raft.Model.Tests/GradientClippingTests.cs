namespace Raft.Model.Tests;

public class GradientClippingTests
{
    private static TensorSet Set(params Tensor[] tensors)
    {
        var s = new TensorSet();
        foreach (var t in tensors) s.Add(t);
        return s;
    }

    [Fact]
    public void ClipsToTheMaximumNormAndReturnsThePreClipNorm()
    {
        var g = Set(new Tensor("a", [1], [3f]), new Tensor("b", [1, 1], [4f]));
        double norm = GradientClipping.ClipByGlobalNorm(g, 1.0);
        Assert.Equal(5.0, norm, 12);
        float f = (float)(1.0 / (5.0 + 1e-6));
        Assert.Equal(3f * f, g["a"].Data[0]);
        Assert.Equal(4f * f, g["b"].Data[0]);
        Assert.Equal(1.0, GradientClipping.GlobalNorm(g), 5);
    }

    [Fact]
    public void LeavesSmallGradientsAlone()
    {
        var g = Set(new Tensor("a", [2], [0.3f, -0.4f]));
        Assert.Equal(0.5, GradientClipping.ClipByGlobalNorm(g, 10.0), 6);
        Assert.Equal([0.3f, -0.4f], g["a"].Data);
    }

    [Fact]
    public void NonFiniteNormsLeaveGradientsAlone()
    {
        var g = Set(new Tensor("a", [3], [1f, float.NaN, 2f]));
        Assert.True(double.IsNaN(GradientClipping.ClipByGlobalNorm(g, 1.0)));
        Assert.Equal(1f, g["a"].Data[0]);
        Assert.Throws<ArgumentException>(() => GradientClipping.ClipByGlobalNorm(g, 0));
    }

    [Fact]
    public void LargeNormMatchesAnFp64ReferenceAndIsDeterministic()
    {
        var rng = new Random(2);
        var g = Set(Enumerable.Range(0, 5).Select(t =>
            new Tensor($"t{t}", [1000 * t + 4099], Enumerable.Range(0, 1000 * t + 4099).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray())).ToArray());
        double reference = Math.Sqrt(g.Tensors.SelectMany(t => t.Data).Sum(x => (double)x * x));
        double n1 = GradientClipping.GlobalNorm(g);
        Assert.Equal(reference, n1, reference * 1e-6);
        for (int i = 0; i < 5; i++) Assert.Equal(n1, GradientClipping.GlobalNorm(g));
    }
}
