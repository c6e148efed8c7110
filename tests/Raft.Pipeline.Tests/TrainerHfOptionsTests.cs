using Raft.Pipeline.Training;
using Raft.Tests.Shared;

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

    [Theory]
    [InlineData(2.0, 8, 4, 4)]    // 2 passes of ⌈8/4⌉ = 2 steps
    [InlineData(1.5, 8, 3, 5)]    // ⌈1.5 × ⌈8/3⌉⌉ = ⌈4.5⌉
    [InlineData(0.1, 8, 4, 1)]    // at least one step
    [InlineData(1.0, 7, 7, 1)]
    public void Epochs_count_steps_as_hugging_face_does(double epochs, int examples, int batch, int steps) =>
        Assert.Equal(steps, (TinyModels.Sft(200) with { Epochs = epochs }).StepsFor(examples, batch));

    [Fact]
    public void Epochs_set_the_run_length_and_the_schedule_and_bad_values_are_named()
    {
        var model = TinyModels.Model(seed: 5);
        // 8 examples, batch 4, 1.5 epochs: 3 steps, the cosine decay reaching the floor at the 3rd
        var options = TinyModels.Sft(200) with { Epochs = 1.5, WarmupSteps = 1 };
        var result = TinyModels.Trainer(model, options).Run();
        Assert.Equal(3, result.Steps);
        Assert.Equal([1, 2, 3], result.Metrics.Select(m => m.Step));
        var schedule = new Raft.Model.LearningRateSchedule
        {
            PeakLearningRate = options.LearningRate, MinLearningRate = options.FloorLearningRate, WarmupSteps = 1, TotalSteps = 3,
        };
        for (int s = 0; s < 3; s++) Assert.Equal(schedule.At(s), result.Metrics[s].LearningRate, 15);
        foreach (double bad in new[] { 0.0, -1.0, double.NaN, double.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentException>(() => (options with { Epochs = bad }).Validate());
            Assert.Equal("epochs", e.ParamName);
        }
        Assert.Equal("save_total_limit", Assert.Throws<ArgumentException>(() => (options with { SaveTotalLimit = 0 }).Validate()).ParamName);
    }

    [Fact]
    public void Save_total_limit_keeps_the_newest_checkpoints_and_the_run_resumes_from_them()
    {
        using var dir = new TempDirectory();
        var options = TinyModels.Sft(5) with { CheckpointEvery = 1, SaveTotalLimit = 2 };
        var full = TinyModels.Model(seed: 5);
        var reference = TinyModels.Copy(full);
        TinyModels.Trainer(full, options).Run(dir.File("a"));
        string ckpts = Path.Combine(dir.File("a"), Trainer.CheckpointsDir);
        Assert.Equal(["step-0000003", "step-0000004"], Directory.GetDirectories(ckpts).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.True(Directory.Exists(Path.Combine(dir.File("a"), Trainer.FinalDir)));

        // the same run with a limit of 1, its final/ removed as if it had stopped after step 4: it resumes from the one kept
        var stopped = TinyModels.Copy(reference);
        TinyModels.Trainer(stopped, options with { SaveTotalLimit = 1 }).Run(dir.File("b"));
        string bCkpts = Path.Combine(dir.File("b"), Trainer.CheckpointsDir);
        Assert.Equal(["step-0000004"], Directory.GetDirectories(bCkpts).Select(Path.GetFileName));
        Directory.Delete(Path.Combine(dir.File("b"), Trainer.FinalDir), recursive: true);
        // a leftover of an interrupted deletion is neither resumed from nor kept
        Directory.CreateDirectory(Path.Combine(bCkpts, ".deleting-step-0000001"));
        var resumed = TinyModels.Copy(reference);
        TinyModels.Trainer(resumed, options with { SaveTotalLimit = 1 }).Run(dir.File("b"), resume: true);
        Assert.Equal(["step-0000004"], Directory.GetDirectories(bCkpts).Select(Path.GetFileName));
        TinyModels.AssertBitwiseEqual(full.Parameters, resumed.Parameters);
    }
}
