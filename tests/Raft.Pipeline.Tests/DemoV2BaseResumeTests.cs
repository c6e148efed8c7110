using Raft.Model;
using Raft.Pipeline.Demo.V2;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

public class DemoV2BaseResumeTests
{
    private static readonly ModelConfig Tiny = DemoV2Base.Config with
    {
        HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
    };

    private static readonly TrainOptions Options = DemoV2Base.DefaultOptions with
    {
        Steps = 6, BatchSize = 4, WarmupSteps = 2, CheckpointEvery = 2, Threads = 2,
    };

    [Fact]
    public void Pretraining_resumed_from_a_checkpoint_equals_the_uninterrupted_run_bit_for_bit()
    {
        using var tmp = new TempDir();
        string a = tmp.File("a"), b = tmp.File("b");
        var full = DemoV2Base.Pretrain(Options, a, config: Tiny);
        Assert.True(Directory.Exists(Path.Combine(a, Trainer.CheckpointsDir, "step-0000004")), "a checkpoint every 2 steps");

        // the same run, interrupted after step 5: only the checkpoints up to step 4 are left, then resumed
        DemoV2Base.Pretrain(Options, b, config: Tiny);
        Directory.Delete(Path.Combine(b, Trainer.FinalDir), recursive: true);
        foreach (string d in Directory.GetDirectories(Path.Combine(b, Trainer.CheckpointsDir)))
            if (!d.EndsWith("step-0000002", StringComparison.Ordinal) && !d.EndsWith("step-0000004", StringComparison.Ordinal)) Directory.Delete(d, recursive: true);
        string? log = null;
        var resumed = DemoV2Base.Pretrain(Options, b, l => log += l + "\n", resume: true, config: Tiny);
        Assert.Contains("step 4", log);

        Assert.Equal(full.Parameters.Count, resumed.Parameters.Count);
        foreach (var t in full.Parameters.Tensors)
            Assert.True(t.Data.AsSpan().SequenceEqual(resumed.Parameters[t.Name].Data), $"{t.Name} differs after resuming");
        // and the run is not trivially the starting point
        var init = LlamaModel.CreateRandom(Tiny, Options.Seed);
        Assert.Contains(full.Parameters.Tensors, t => !t.Data.AsSpan().SequenceEqual(init.Parameters[t.Name].Data));
    }
}
