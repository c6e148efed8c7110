using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>The Hugging Face Trainer-style options of the <see cref="Trainer"/> (issue #16 part 5) and #19's one-step run.</summary>
public class TrainerHfOptionsTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void One_step_with_a_warmup_moves_the_weights_at_the_peak_rate(bool raft)
    {
        var model = TinyModels.Model(seed: 5);
        var before = model.Parameters.Clone();
        using var teacher = raft ? TinyModels.Teacher(model) : null;
        var options = (raft ? TinyModels.Raft(1) : TinyModels.Sft(1)) with { WarmupSteps = 10 };
        var result = TinyModels.Trainer(model, options, teacher).Run();
        Assert.False(result.Metrics[0].Skipped);
        Assert.Equal(options.LearningRate, result.Metrics[0].LearningRate, 15);
        Assert.True(TinyModels.MaxAbsDiff(before, model.Parameters) > 1e-4, "one step did not move the weights");
    }
}
