using Raft.Pipeline.Training;
using Raft.Tests.Shared;

namespace Raft.Pipeline.Tests;

/// <summary>
/// gradient_accumulation_steps (issue #16 part 5): N micro-batches of batch b make the update of one batch of b·N —
/// the same data order, rollout seeds, token-weighted loss means, EMA weights, clipping norm and AdamW step.
/// </summary>
public class GradientAccumulationTests
{
    private static (TrainResult Result, Raft.Model.LlamaModel Model) Train(TrainOptions options, string? dir = null, bool resume = false, Raft.Model.LlamaModel? start = null)
    {
        var model = start ?? TinyModels.Model(seed: 5);
        using var teacher = options.Method == TrainMethod.Raft ? TinyModels.Teacher(TinyModels.Model(seed: 5)) : null;
        return (TinyModels.Trainer(model, options, teacher).Run(dir, resume), model);
    }

    public static TheoryData<string> Methods => ["sft", "raft", "raft-fixed"];

    private static TrainOptions Options(string method, int steps) => method switch
    {
        "sft" => TinyModels.Sft(steps),
        "raft" => TinyModels.Raft(steps) with { RolloutsPerPrompt = 2 },
        _ => TinyModels.Raft(steps) with { RolloutsPerPrompt = 2, FixedWeights = [0.7, 0.3] },
    };

    [Theory]
    [MemberData(nameof(Methods))]
    public void Batch_4_equals_2_micro_batches_of_2_and_4_of_1(string method)
    {
        // clip_norm 0.05: the clipping is active, so the norm must be the summed gradient's
        var big = Options(method, 3) with { BatchSize = 4, ClipNorm = 0.05 };
        var initial = TinyModels.Model(seed: 5);
        var (reference, refModel) = Train(big);
        Assert.All(reference.Metrics, m => Assert.False(m.Skipped));
        Assert.True(reference.Metrics.Max(m => m.GradNorm) > 0.05, "the clipping never acted");
        foreach (int n in new[] { 2, 4 })
        {
            var (acc, model) = Train(big with { BatchSize = 4 / n, GradientAccumulationSteps = n });
            // fp32 tolerance: the sums run in another order, and AdamW's 1/√v amplifies the rounding of tiny gradients
            double moved = TinyModels.MaxAbsDiff(initial.Parameters, refModel.Parameters), diff = TinyModels.MaxAbsDiff(refModel.Parameters, model.Parameters);
            double rel = RelativeDifference(refModel.Parameters, model.Parameters);
            Assert.True(rel < 1e-6 && diff < 1e-3 * moved, $"{method}, {n} micro-batches: weights differ by {diff:E2} (relative {rel:E2}) from one batch of 4, which moved them by {moved:E2}");
            for (int s = 0; s < 3; s++)
            {
                var (r, a) = (reference.Metrics[s], acc.Metrics[s]);
                Assert.Equal(r.Tokens, a.Tokens);
                Assert.Equal(r.Loss, a.Loss, 1e-5);
                Assert.Equal(r.SftLoss, a.SftLoss, 1e-5);
                Assert.Equal(r.KdLoss ?? 0, a.KdLoss ?? 0, 1e-5);
                Assert.Equal(r.WeightKd ?? 0, a.WeightKd ?? 0, 1e-6);
                Assert.Equal(r.RolloutLength ?? 0, a.RolloutLength ?? 0, 12);
                Assert.Equal(r.GradNorm, a.GradNorm, 1e-5);
                Assert.Equal(r.LearningRate, a.LearningRate, 15);
            }
        }
    }

    private static double RelativeDifference(Raft.Model.TensorSet a, Raft.Model.TensorSet b)
    {
        double diff = 0, norm = 0;
        foreach (var t in a.Tensors)
            for (int i = 0; i < t.Length; i++)
            {
                double d = t.Data[i] - b[t.Name].Data[i];
                diff += d * d;
                norm += (double)t.Data[i] * t.Data[i];
            }
        return Math.Sqrt(diff / norm);
    }

    [Fact]
    public void Epochs_count_the_step_batch_of_all_micro_batches()
    {
        // 8 examples, 2 micro-batches of 2: a step takes 4, so 2 epochs are 4 steps
        var (result, _) = Train(TinyModels.Sft(200) with { BatchSize = 2, GradientAccumulationSteps = 2, Epochs = 2 });
        Assert.Equal(4, result.Steps);
    }

    [Fact]
    public void An_accumulated_raft_run_resumes_bit_exactly_and_the_global_batch_is_checked()
    {
        using var dir = new TempDirectory();
        var options = Options("raft", 4) with { BatchSize = 2, GradientAccumulationSteps = 2, CheckpointEvery = 2 };
        var (_, full) = Train(options, dir.File("a"));

        var (_, stopped) = Train(options with { Steps = 4 }, dir.File("b"));
        // as if the run had stopped after step 2: its later checkpoints removed, metrics cut by the resume
        Directory.Delete(Path.Combine(dir.File("b"), Trainer.FinalDir), recursive: true);
        var (resumed, model) = Train(options, dir.File("b"), resume: true);
        Assert.Equal(4, resumed.Steps);
        TinyModels.AssertBitwiseEqual(full.Parameters, model.Parameters);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(dir.File("b"), Trainer.MetricsFile)).Length);

        // the same global batch split otherwise resumes (batch 4, no accumulation); a different one is refused, named
        var (_, other) = Train(options with { BatchSize = 4, GradientAccumulationSteps = 1 }, dir.File("b"), resume: true);
        Assert.NotNull(other);
        var e = Assert.ThrowsAny<Exception>(() => Train(options with { GradientAccumulationSteps = 1 }, dir.File("b"), resume: true));
        Assert.Contains("global batch of 4", e.Message);
        Assert.Contains("accumulation step", e.Message);
    }

    [Fact]
    public void Bad_values_are_named()
    {
        foreach (int bad in new[] { 0, -1 })
        {
            var e = Assert.Throws<ArgumentException>(() => (TinyModels.Sft(1) with { GradientAccumulationSteps = bad }).Validate());
            Assert.Equal("gradient_accumulation_steps", e.ParamName);
            Assert.Contains($"gradient_accumulation_steps = {bad}", e.Message);
        }
    }
}
