using Raft.Kernels;
using Raft.Model;

namespace Raft.Teacher.Tests;

/// <summary>The frozen base of a LoRA student as the teacher: the same scores as a separate frozen copy's.</summary>
public class LoraBaseTeacherTests
{
    [Fact]
    public void ScoresAndSamplesEqualASeparateFrozenCopy()
    {
        var config = TestModels.Tiny(tied: false, bias: true, vocab: 23);
        var weights = RandomData.RandomParameters(config, 61);
        var student = new LlamaModel(config, weights) { Threads = 1 };
        var lc = new LoraConfig { Rank = 2, Alpha = 4, TargetModules = LoraConfig.ModuleNames };
        var adapters = LoraAdapters.Create(student.Layout, lc, 62);
        var rng = new Random(63);
        foreach (var t in adapters.Parameters.Tensors)
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)(0.5 * (rng.NextDouble() * 2 - 1));   // trained adapters
        student.Lora = adapters;
        int[][] contexts = [RandomData.RandomTokens(5, 23, 64), RandomData.RandomTokens(3, 23, 65)];
        int[][] rollouts = [RandomData.RandomTokens(6, 23, 66), RandomData.RandomTokens(4, 23, 67)];
        var settings = new DistillSettings(5, 1.5f);

        using var baseTeacher = new LoraBaseTeacher(student, new CpuKernels(1));
        using var copy = new EngineTeacher(new LlamaModel(config, weights.Clone()) { Threads = 1 }, new CpuKernels(1));
        using var adapted = new EngineTeacher(student, new CpuKernels(1));
        var got = baseTeacher.ScoreEach(contexts, rollouts, settings);
        var want = copy.ScoreEach(contexts, rollouts, settings);
        Assert.True(adapters.Enabled, "the adapters are switched back on");
        var withAdapters = adapted.ScoreEach(contexts, rollouts, settings);
        bool differs = false;
        for (int b = 0; b < contexts.Length; b++)
        {
            Assert.Equal(want[b].Indices, got[b].Indices);
            Assert.Equal(want[b].Probs, got[b].Probs);   // bit for bit
            differs |= !withAdapters[b].Probs.SequenceEqual(want[b].Probs);
        }
        Assert.True(differs, "the adapters change the scores (the test has teeth)");

        var options = new SamplingOptions { Temperature = 1f, MaxNewTokens = 5, Seed = 7 };
        var a = baseTeacher.Generate(contexts, options, 0);
        var b2 = copy.Generate(contexts, options, 0);
        for (int i = 0; i < a.Count; i++) Assert.Equal(b2[i].Tokens, a[i].Tokens);
        Assert.True(adapters.Enabled);
    }

    [Fact]
    public void AStudentWithoutAdaptersIsRefused()
    {
        var config = TestModels.Tiny(tied: false, bias: false);
        var e = Assert.Throws<ArgumentException>(() => new LoraBaseTeacher(new LlamaModel(config, RandomData.RandomParameters(config, 1)), new CpuKernels(1)));
        Assert.Contains("no LoRA adapters", e.Message);
    }
}
