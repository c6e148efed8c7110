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
        Assert.Equal(0.0, Cosine.At(0));                 // step 0 of a warm-up: 0, as Hugging Face
        Assert.Equal(5e-4, Cosine.At(5), 15);            // half-way through warm-up
        Assert.Equal(1e-3, Cosine.At(10), 15);           // end of warm-up: the peak
        Assert.Equal(1e-4 + 9e-4 * 0.5 * (1 + Math.Cos(Math.PI / 4)), Cosine.At(35), 15);
        Assert.Equal(5.5e-4, Cosine.At(60), 15);         // middle of the decay
        Assert.Equal(1e-4, Cosine.At(110), 15);          // end: the floor
        Assert.Equal(1e-4, Cosine.At(10_000), 15);       // and it stays there
    }

    [Fact]
    public void LinearAndConstantValues()
    {
        var linear = Cosine with { Decay = LearningRateDecay.Linear };
        Assert.Equal(0.0, linear.At(0));
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
