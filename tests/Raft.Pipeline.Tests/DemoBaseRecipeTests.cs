using Raft.Model;
using Raft.Pipeline.Demo;
using Raft.Pipeline.Demo.V2;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>The two worlds' bases share one construction (DemoBase.ByteLlama / PretrainOptions); each keeps its own numbers.</summary>
public sealed class DemoBaseRecipeTests
{
    [Fact]
    public void V1_config_is_the_shipped_base_and_its_budgets_are_unchanged()
    {
        string shipped = Path.Combine(RepoRoot(), "models", "demo-base", "config.json");
        var cfg = DemoBase.Config;
        var want = ModelConfig.Load(shipped);
        Assert.Equal((want.HiddenSize, want.IntermediateSize, want.NumHiddenLayers, want.NumAttentionHeads, want.NumKeyValueHeads, want.VocabSize, want.MaxPositionEmbeddings, want.TieWordEmbeddings, want.RmsNormEps, want.BosTokenId),
            (cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.VocabSize, cfg.MaxPositionEmbeddings, cfg.TieWordEmbeddings, cfg.RmsNormEps, cfg.BosTokenId));
        var o = DemoBase.DefaultOptions;
        Assert.Equal((TrainMethod.Sft, 6000, 32, 3e-3, 1e-4, 100, 0.01, 1.0, 1, 0), (o.Method, o.Steps, o.BatchSize, o.LearningRate, o.MinLearningRate, o.WarmupSteps, o.WeightDecay, o.ClipNorm, o.Seed, o.CheckpointEvery));
        var c = DemoBase.CopyPhaseOptions;
        Assert.Equal((TrainMethod.Sft, 2000, 32, 1e-3, 5e-5, 50, 0.01, 1.0, 2, 0), (c.Method, c.Steps, c.BatchSize, c.LearningRate, c.MinLearningRate, c.WarmupSteps, c.WeightDecay, c.ClipNorm, c.Seed, c.CheckpointEvery));
    }

    [Fact]
    public void V2_config_and_budget_are_the_pre_registered_ones()
    {
        var cfg = DemoV2Base.Config;
        Assert.Equal((256, 768, 6, 8, 4, 320, true), (cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.MaxPositionEmbeddings, cfg.TieWordEmbeddings));
        var o = DemoV2Base.DefaultOptions;
        Assert.Equal((TrainMethod.Sft, 12000, 32, 2e-3, 1e-4, 200, 1, 100), (o.Method, o.Steps, o.BatchSize, o.LearningRate, o.MinLearningRate, o.WarmupSteps, o.Seed, o.CheckpointEvery));
    }

    private static string RepoRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "Raft.Tests.slnf"))) d = d.Parent;
        return d?.FullName ?? throw new DirectoryNotFoundException("repository root (Raft.Tests.slnf) not found above " + AppContext.BaseDirectory);
    }
}
