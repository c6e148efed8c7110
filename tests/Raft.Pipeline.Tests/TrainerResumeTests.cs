using System.Text.Json;
using System.Text.Json.Nodes;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

public class TrainerResumeTests
{
    private sealed class StopHere : Exception;

    /// <summary>metrics.jsonl without the timing fields (which differ from run to run).</summary>
    private static string[] MetricsWithoutTimes(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, Trainer.MetricsFile)).Where(l => l.Length > 0).Select(l =>
        {
            var o = JsonNode.Parse(l)!.AsObject();
            Assert.True(o.Remove("elapsed_s"));
            Assert.True(o.Remove("tokens_per_s"));
            Assert.True(o.Remove("train_s"));
            o.Remove("rollout_s");
            o.Remove("teacher_s");
            return o.ToJsonString();
        }).ToArray();

    private static TensorSet FinalWeights(string runDir) => Checkpoint.Load(Path.Combine(runDir, Trainer.FinalDir)).Weights;

    [Theory]
    [InlineData(TrainMethod.Raft, null)]
    [InlineData(TrainMethod.Sft, null)]
    [InlineData(TrainMethod.Raft, "mlp")]
    [InlineData(TrainMethod.Sft, "mlp|norm")]
    public void Resume_after_an_interruption_equals_the_uninterrupted_run(TrainMethod method, string? trainable)
    {
        using var tmp = new TempDir();
        string a = tmp.File("a"), b = tmp.File("b");
        var start = TinyModels.Model(seed: 21);
        using var teacher = method == TrainMethod.Raft ? TinyModels.Teacher(start) : null;
        var options = (method == TrainMethod.Raft ? TinyModels.Raft(6) : TinyModels.Sft(6)) with { CheckpointEvery = 3, Trainable = trainable, WeightDecay = 0.1 };

        var full = TinyModels.Copy(start);
        TinyModels.Trainer(full, options, teacher).Run(a);
        Assert.True(Directory.Exists(Path.Combine(a, Trainer.CheckpointsDir, "step-0000003")));

        // Interrupted: RAFT dies in step 4 (after its metrics line, before any checkpoint of it), SFT is cancelled after step 3.
        var first = TinyModels.Copy(start);
        using var cts = new CancellationTokenSource();
        var interrupted = TinyModels.Trainer(first, options, teacher, afterStep: (m, _) =>
        {
            if (method == TrainMethod.Raft && m.Step == 4) throw new StopHere();
            if (method == TrainMethod.Sft && m.Step == 3) cts.Cancel();
        });
        if (method == TrainMethod.Raft) Assert.Throws<StopHere>(() => interrupted.Run(b, cancellation: cts.Token));
        else Assert.Throws<OperationCanceledException>(() => interrupted.Run(b, cancellation: cts.Token));
        Assert.False(Directory.Exists(Path.Combine(b, Trainer.FinalDir)));
        Assert.Equal(method == TrainMethod.Raft ? 4 : 3, File.ReadAllLines(Path.Combine(b, Trainer.MetricsFile)).Length);
        Assert.Equal(Path.Combine(b, Trainer.CheckpointsDir, "step-0000003"), Trainer.LatestCheckpoint(b));

        // The resumed trainer starts from other weights: everything must come from the checkpoint.
        var resumed = TinyModels.Model(seed: 999);
        var result = TinyModels.Trainer(resumed, options, teacher).Run(b, resume: true);
        Assert.Equal(3, result.Metrics.Count);
        Assert.Equal([4, 5, 6], result.Metrics.Select(m => m.Step));

        TinyModels.AssertBitwiseEqual(full.Parameters, resumed.Parameters);
        TinyModels.AssertBitwiseEqual(FinalWeights(a), FinalWeights(b));
        Assert.Equal(MetricsWithoutTimes(a), MetricsWithoutTimes(b));
        var stateA = JsonNode.Parse(File.ReadAllText(Path.Combine(a, Trainer.FinalDir, Trainer.StateFile)))!;
        var stateB = JsonNode.Parse(File.ReadAllText(Path.Combine(b, Trainer.FinalDir, Trainer.StateFile)))!;
        Assert.Equal(stateA.ToJsonString(), stateB.ToJsonString());
    }

    [Fact]
    public void Resume_with_a_changed_option_names_the_option()
    {
        using var tmp = new TempDir();
        var options = TinyModels.Sft(4) with { CheckpointEvery = 2 };
        TinyModels.Trainer(TinyModels.Model(seed: 3), options).Run(tmp.Path);
        var e = Assert.Throws<RunMismatchException>(() =>
            TinyModels.Trainer(TinyModels.Model(seed: 3), options with { LearningRate = 5e-3 }).Run(tmp.Path, resume: true));
        Assert.Contains("learning_rate", e.Message);
        Assert.Contains(tmp.Path, e.Message);
        var frozen = Assert.Throws<RunMismatchException>(() =>
            TinyModels.Trainer(TinyModels.Model(seed: 3), options with { Trainable = "mlp" }).Run(tmp.Path, resume: true));
        Assert.Contains("trainable", frozen.Message);
        // threads and checkpoint_every may change on resume (the final checkpoint resumes to nothing left to do).
        var ok = TinyModels.Trainer(TinyModels.Model(seed: 3), options with { CheckpointEvery = 1, Threads = 2 }).Run(tmp.Path, resume: true);
        Assert.Empty(ok.Metrics);
    }
}
