using Raft.Kernels;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

public class TrainerTests
{
    private static void AssertFinite(StepMetrics m)
    {
        foreach (var (name, value) in new (string, double?)[]
                 {
                     ("loss", m.Loss), ("sft_loss", m.SftLoss), ("w_sft", m.WeightSft), ("grad_norm", m.GradNorm), ("lr", m.LearningRate),
                     ("tokens_per_s", m.TokensPerSecond), ("elapsed_s", m.ElapsedSeconds), ("kd_loss", m.KdLoss), ("w_kd", m.WeightKd),
                     ("kl", m.Kl), ("rollout_len", m.RolloutLength),
                 })
            if (value is double v) Assert.True(double.IsFinite(v), $"step {m.Step}: {name} = {v}");
    }

    [Fact]
    public void Sft_lowers_the_loss_changes_the_weights_and_logs_one_finite_line_per_step()
    {
        var model = TinyModels.Model(seed: 5);
        var before = model.Parameters.Clone();
        var result = TinyModels.Trainer(model, TinyModels.Sft(30)).Run();

        Assert.Equal(30, result.Steps);
        Assert.Equal(0, result.SkippedSteps);
        Assert.Equal(30, result.Metrics.Count);
        Assert.Equal(Enumerable.Range(1, 30), result.Metrics.Select(m => m.Step));
        foreach (var m in result.Metrics)
        {
            AssertFinite(m);
            Assert.False(m.Skipped);
            Assert.Null(m.KdLoss);
            Assert.Null(m.WeightKd);
            Assert.Null(m.RolloutLength);
            Assert.Equal(1.0, m.WeightSft);
            Assert.Equal(m.SftLoss, m.Loss);
            Assert.True(m.Tokens > 0);
        }
        // A random model starts near ln(263) ≈ 5.6 nats; 30 steps on 8 examples of one style must take off well over a nat.
        double first = result.Metrics.Take(3).Average(m => m.SftLoss);
        double last = result.Metrics.TakeLast(3).Average(m => m.SftLoss);
        Assert.True(first > 4.5, $"initial loss {first}");
        Assert.True(last < first - 1.5, $"loss went from {first:F3} to {last:F3}");
        Assert.True(TinyModels.MaxAbsDiff(before, model.Parameters) > 1e-3, "the weights did not move");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Trainable_trains_the_matching_tensors_only_and_the_norm_leaves_the_frozen_out(bool raft)
    {
        var model = TinyModels.Model(seed: 9, layers: 2);
        var before = model.Parameters.Clone();
        using var teacher = raft ? TinyModels.Teacher(model) : null;
        var options = (raft ? TinyModels.Raft(4) : TinyModels.Sft(4)) with { Trainable = @"layers\.1\.mlp" };
        var result = TinyModels.Trainer(model, options, teacher).Run();
        Assert.All(result.Metrics, m => Assert.False(m.Skipped));
        foreach (var t in model.Parameters.Tensors)
        {
            bool trained = t.Name.Contains("layers.1.mlp", StringComparison.Ordinal);
            Assert.True(trained != t.Data.AsSpan().SequenceEqual(before[t.Name].Data), $"{t.Name}: {(trained ? "did not move" : "moved although frozen")}");
        }
        // the first step's norm is the trained tensors' share only: below the norm of every parameter's gradient
        var full = TinyModels.Trainer(TinyModels.Copy(new Raft.Model.LlamaModel(model.Config, before.Clone())), options with { Trainable = null, Steps = 1 },
            raft ? TinyModels.Teacher(new Raft.Model.LlamaModel(model.Config, before.Clone())) : null).Run();
        Assert.True(result.Metrics[0].GradNorm < full.Metrics[0].GradNorm, $"{result.Metrics[0].GradNorm} vs all tensors {full.Metrics[0].GradNorm}");
    }

    [Fact]
    public void Raft_with_a_frozen_teacher_logs_distillation_fields_and_ema_weights()
    {
        var student = TinyModels.Model(seed: 7);
        using var teacher = TinyModels.Teacher(student);
        var options = TinyModels.Raft(8);
        var result = TinyModels.Trainer(student, options, teacher).Run();

        Assert.Equal(8, result.Metrics.Count);
        var balancer = new EmaBalancer(options.EmaDecay, options.TargetRatio);
        bool moved = false;
        foreach (var m in result.Metrics)
        {
            AssertFinite(m);
            Assert.False(m.Skipped);
            Assert.NotNull(m.KdLoss);
            Assert.NotNull(m.WeightKd);
            Assert.NotNull(m.Kl);
            Assert.NotNull(m.RolloutLength);
            Assert.True(m.RolloutLength >= 1 && m.RolloutLength <= options.RolloutMaxTokens, $"rollout_len {m.RolloutLength}");
            Assert.True(m.KdLoss >= 0);
            Assert.Equal(m.KdLoss!.Value / (options.Temperature * options.Temperature), m.Kl!.Value, 12);
            // The weights are the EMA balancer's, recomputed independently from the logged losses.
            var w = balancer.Step([m.KdLoss.Value, m.SftLoss]);
            Assert.Equal(w[0], m.WeightKd!.Value, 12);
            Assert.Equal(w[1], m.WeightSft, 12);
            Assert.Equal(w[0] * m.KdLoss.Value + w[1] * m.SftLoss, m.Loss, 9);
            moved |= Math.Abs(w[0] - 1) > 1e-3;
        }
        // Teacher = the student's start: the KD loss starts near 0 and the balancer weighs it up, away from [1, 1].
        Assert.True(moved, "the EMA weights never left [1, 1]");
    }

    [Fact]
    public void Raft_with_fixed_weights_zero_one_trains_like_sft()
    {
        var a = TinyModels.Model(seed: 11);
        var b = TinyModels.Copy(a);
        var initial = a.Parameters.Clone();
        using var teacher = TinyModels.Teacher(a);
        var sft = TinyModels.Trainer(a, TinyModels.Sft(5)).Run();
        var raft = TinyModels.Trainer(b, TinyModels.Raft(5) with { FixedWeights = [0, 1] }, teacher).Run();

        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(0.0, raft.Metrics[i].WeightKd);
            Assert.Equal(1.0, raft.Metrics[i].WeightSft);
            Assert.Equal(sft.Metrics[i].SftLoss, raft.Metrics[i].SftLoss);
        }
        Assert.True(TinyModels.MaxAbsDiff(initial, b.Parameters) > 1e-4, "RAFT did not train");
        TinyModels.AssertBitwiseEqual(a.Parameters, b.Parameters);
    }
}
