using System.Text.Json;

namespace Raft.Kernels.Tests;

public class EmaBalancerTests
{
    [Fact]
    public void WeightsFollowTheDocumentedFormula()
    {
        var rng = new Random(TestData.NextSeed());
        double decay = 0.9;
        var b = new EmaBalancer(decay, 1.0, 3.0);
        double m0 = 0, m1 = 0;
        for (int t = 1; t <= 20; t++)
        {
            double l0 = 0.5 + rng.NextDouble() * 4, l1 = -(0.01 + rng.NextDouble() * 0.1);
            var w = b.Step([l0, l1]);
            m0 = decay * m0 + (1 - decay) * Math.Abs(l0);
            m1 = decay * m1 + (1 - decay) * Math.Abs(l1);
            double c = 1 - Math.Pow(decay, t), h0 = m0 / c, h1 = m1 / c;
            TestData.AssertClose(0.25 * (h0 + h1) / h0, w[0], 1e-12, $"w0 at step {t}");
            TestData.AssertClose(0.75 * (h0 + h1) / h1, w[1], 1e-12, $"w1 at step {t}");
            // The weighted contributions follow the 1:3 target ratio and sum to the unweighted total.
            TestData.AssertClose(3.0, w[1] * h1 / (w[0] * h0), 1e-12, "ratio");
            TestData.AssertClose(h0 + h1, w[0] * h0 + w[1] * h1, 1e-12, "total");
        }
    }

    [Fact]
    public void BiasCorrectionMakesTheFirstEstimateTheFirstValue()
    {
        var b = new EmaBalancer(0.99, 1.0, 1.0);
        b.Update([2.0, 0.5]);
        var m = b.Estimates();
        TestData.AssertClose(2.0, m[0], 1e-12, "m̂0");
        TestData.AssertClose(0.5, m[1], 1e-12, "m̂1");
        Assert.Equal(new[] { 1.0, 1.0 }, new EmaBalancer(0.9, 1.0, 1.0).Weights());
    }

    [Fact]
    public void StateRoundTripsThroughJsonAndResumesIdentically()
    {
        var rng = new Random(TestData.NextSeed());
        var a = new EmaBalancer(0.95, 2.0, 1.0);
        for (int i = 0; i < 7; i++) a.Update([rng.NextDouble(), rng.NextDouble()]);
        var json = JsonSerializer.Serialize(a.State);
        var b = new EmaBalancer(JsonSerializer.Deserialize<EmaBalancerState>(json)!);
        for (int i = 0; i < 5; i++)
        {
            double[] l = [rng.NextDouble(), rng.NextDouble()];
            Assert.Equal(a.Step(l), b.Step(l));
        }
        Assert.Equal(a.Steps, b.Steps);
    }

    [Fact]
    public void BadValuesAreRejectedAndLeaveTheStateAlone()
    {
        Assert.Equal("decay", Assert.Throws<ArgumentException>(() => new EmaBalancer(1.0, 1.0, 1.0)).ParamName);
        Assert.Equal("targetRatio", Assert.Throws<ArgumentException>(() => new EmaBalancer(0.9, 1.0, 0.0)).ParamName);
        Assert.Equal("targetRatio", Assert.Throws<ArgumentException>(() => new EmaBalancer(0.9)).ParamName);
        var b = new EmaBalancer(0.9, 1.0, 1.0);
        b.Update([1.0, 2.0]);
        var before = b.State;
        var e = Assert.Throws<ArgumentException>(() => b.Update([double.NaN, 1.0]));
        Assert.Contains("losses[0]", e.Message);
        Assert.Throws<ArgumentException>(() => b.Update([1.0]));
        Assert.Equal(before.Ema, b.State.Ema);
        Assert.Equal(before.Steps, b.State.Steps);
        Assert.Equal("ema", Assert.Throws<ArgumentException>(() => new EmaBalancer(before with { Ema = [1.0] })).ParamName);
    }
}
