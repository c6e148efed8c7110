namespace Raft.Model.Tests;

public class LearningRateScheduleTests
{
    private static readonly LearningRateSchedule Cosine = new()
    {
        PeakLearningRate = 1e-3, MinLearningRate = 1e-4, WarmupSteps = 10, TotalSteps = 110, Decay = LearningRateDecay.Cosine,
    };

    [Fact]
    public void CosineValuesAtTheLandmarks()
    {
        Assert.Equal(1e-4, Cosine.At(0), 15);            // the first update of a warm-up: peak/W (Hugging Face's: 0)
        Assert.Equal(5e-4, Cosine.At(4), 15);            // half-way through warm-up (the 5th of 10 updates)
        Assert.Equal(1e-3, Cosine.At(9), 15);            // the last warm-up update: the peak
        Assert.Equal(1e-3, Cosine.At(10), 15);           // the decay starts at the peak, as Hugging Face's
        Assert.Equal(1e-4 + 9e-4 * 0.5 * (1 + Math.Cos(Math.PI / 4)), Cosine.At(35), 15);
        Assert.Equal(5.5e-4, Cosine.At(60), 15);         // middle of the decay
        Assert.Equal(1e-4, Cosine.At(110), 15);          // end: the floor
        Assert.Equal(1e-4, Cosine.At(10_000), 15);       // and it stays there
    }

    [Fact]
    public void LinearAndConstantValues()
    {
        var linear = Cosine with { Decay = LearningRateDecay.Linear };
        Assert.Equal(1e-4, linear.At(0), 15);
        Assert.Equal(1e-3, linear.At(10), 15);
        Assert.Equal(1e-4 + 9e-4 * 0.75, linear.At(35), 15);
        Assert.Equal(5.5e-4, linear.At(60), 15);
        Assert.Equal(1e-4, linear.At(110), 15);
        var constant = Cosine with { Decay = LearningRateDecay.Constant };
        Assert.Equal(1e-3, constant.At(10));
        Assert.Equal(1e-3, constant.At(1000));
        var noWarmup = Cosine with { WarmupSteps = 0 };
        Assert.Equal(1e-3, noWarmup.At(0));
    }

    /// <summary>Hugging Face's lr_lambda (transformers.optimization, cosine with warm-up), times the peak, with a floor.</summary>
    private static double HuggingFace(long s, LearningRateSchedule o)
    {
        double f;
        if (s < o.WarmupSteps) f = (double)s / Math.Max(1, o.WarmupSteps);
        else
        {
            double progress = Math.Min(1.0, (double)(s - o.WarmupSteps) / Math.Max(1, o.TotalSteps - o.WarmupSteps));
            f = 0.5 * (1 + Math.Cos(Math.PI * progress));
        }
        return s < o.WarmupSteps ? o.PeakLearningRate * f : o.MinLearningRate + (o.PeakLearningRate - o.MinLearningRate) * f;
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(10, 110)]
    [InlineData(3, 3)]
    [InlineData(0, 7)]
    public void WarmupIsHuggingFacesShiftedByOneUpdateAndTheDecayIsHuggingFaces(long warmup, long total)
    {
        var s = Cosine with { WarmupSteps = warmup, TotalSteps = total };
        // every update moves the weights, the first one included (HF's first warm-up update has lr 0)
        Assert.True(s.At(0) > 0, $"lr(0) = {s.At(0)}");
        for (long step = 0; step < total; step++)
        {
            double expected = step < warmup ? HuggingFace(step + 1, s) : HuggingFace(step, s);
            Assert.Equal(expected, s.At(step), 15);
        }
        if (warmup > 0) Assert.Equal(s.PeakLearningRate, s.At(warmup - 1), 15);   // the last warm-up update is at the peak
    }

    [Theory]
    [InlineData(-1.0, 0.0, 0, 1, "PeakLearningRate")]
    [InlineData(1.0, 2.0, 0, 1, "MinLearningRate")]
    [InlineData(1.0, 0.0, -3, 1, "WarmupSteps")]
    [InlineData(1.0, 0.0, 5, 4, "TotalSteps")]
    public void ValidationNamesTheField(double peak, double min, long warmup, long total, string field)
    {
        var s = new LearningRateSchedule { PeakLearningRate = peak, MinLearningRate = min, WarmupSteps = warmup, TotalSteps = total };
        var e = Assert.Throws<ArgumentException>(s.Validate);
        Assert.Equal(field, e.ParamName);
        Assert.Contains(field, e.Message);
    }
}
