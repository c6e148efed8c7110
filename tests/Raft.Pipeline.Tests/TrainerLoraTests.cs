using System.Text.Json.Nodes;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>LoRA runs of the trainer: frozen base, the base as RAFT's teacher, PEFT checkpoints, bit-exact resume.</summary>
public class TrainerLoraTests
{
    private sealed class StopHere : Exception;

    private static TrainOptions Lora(TrainOptions o) => o with { LoraRank = 4, LoraAlpha = 8, LoraDropout = 0.1, LoraTargets = "all-linear", WeightDecay = 0.1 };

    private static string[] Metrics(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, Trainer.MetricsFile)).Where(l => l.Length > 0).Select(l =>
        {
            var o = JsonNode.Parse(l)!.AsObject();
            foreach (var k in new[] { "elapsed_s", "tokens_per_s", "train_s", "rollout_s", "teacher_s" }) o.Remove(k);
            return o.ToJsonString();
        }).ToArray();

    [Theory]
    [InlineData(TrainMethod.Raft)]
    [InlineData(TrainMethod.Sft)]
    public void Resume_is_bit_exact_and_the_base_stays_frozen(TrainMethod method)
    {
        using var tmp = new TempDir();
        string a = tmp.File("a"), b = tmp.File("b");
        var start = TinyModels.Model(seed: 31);
        var options = Lora(method == TrainMethod.Raft ? TinyModels.Raft(6) : TinyModels.Sft(6)) with { CheckpointEvery = 3 };

        var full = TinyModels.Copy(start);
        TinyModels.Trainer(full, options).Run(a);   // RAFT: no teacher given, the base is the teacher
        TinyModels.AssertBitwiseEqual(start.Parameters, full.Parameters);   // the base never changes
        Assert.Contains(full.Lora!.Parameters.Tensors, t => t.Name.EndsWith("lora_B.weight") && t.Data.Any(v => v != 0));

        string final = Path.Combine(a, Trainer.FinalDir);
        Assert.True(File.Exists(Path.Combine(final, LoraFiles.ConfigFile)));
        Assert.True(File.Exists(Path.Combine(final, LoraFiles.WeightsFile)));
        Assert.False(File.Exists(Path.Combine(final, "model.safetensors")));   // the base is not copied
        var saved = LoraFiles.Load(final, full.Layout);
        TinyModels.AssertBitwiseEqual(full.Lora.Parameters, saved.Parameters);

        var first = TinyModels.Copy(start);
        var interrupted = TinyModels.Trainer(first, options, afterStep: (m, _) => { if (m.Step == 4) throw new StopHere(); });
        Assert.Throws<StopHere>(() => interrupted.Run(b));
        var resumed = TinyModels.Copy(start);   // the same base; the adapters and their optimizer state come from the checkpoint
        var result = TinyModels.Trainer(resumed, options).Run(b, resume: true);
        Assert.Equal([4, 5, 6], result.Metrics.Select(m => m.Step));
        TinyModels.AssertBitwiseEqual(full.Lora.Parameters, resumed.Lora!.Parameters);
        TinyModels.AssertBitwiseEqual(LoraFiles.Load(final, full.Layout).Parameters, LoraFiles.Load(Path.Combine(b, Trainer.FinalDir), full.Layout).Parameters);
        TinyModels.AssertBitwiseEqual(SafeTensorsFile.ReadAll(Path.Combine(final, AdamW.StateFile)),
            SafeTensorsFile.ReadAll(Path.Combine(b, Trainer.FinalDir, AdamW.StateFile)));
        Assert.Equal(Metrics(a), Metrics(b));
        TinyModels.AssertBitwiseEqual(start.Parameters, resumed.Parameters);
    }

    [Fact]
    public void Raft_with_the_base_as_teacher_equals_raft_with_a_separate_frozen_copy()
    {
        using var tmp = new TempDir();
        var start = TinyModels.Model(seed: 41);
        var options = Lora(TinyModels.Raft(4));
        var own = TinyModels.Copy(start);
        TinyModels.Trainer(own, options).Run(tmp.File("own"));
        var separate = TinyModels.Copy(start);
        using var teacher = TinyModels.Teacher(start);   // an EngineTeacher over a separate frozen copy
        TinyModels.Trainer(separate, options, teacher).Run(tmp.File("separate"));
        TinyModels.AssertBitwiseEqual(separate.Lora!.Parameters, own.Lora!.Parameters);
        Assert.Equal(Metrics(tmp.File("separate")), Metrics(tmp.File("own")));
        Assert.Contains(Metrics(tmp.File("own")), l => JsonNode.Parse(l)!["kd_loss"]!.GetValue<double>() > 0);
    }

    [Fact]
    public void Lora_options_are_checked_by_name()
    {
        Assert.Contains("lora_alpha", Assert.Throws<ArgumentException>(() => (TinyModels.Sft(2) with { LoraAlpha = 4 }).Validate()).Message);
        Assert.Contains("trainable", Assert.Throws<ArgumentException>(() => (TinyModels.Sft(2) with { LoraRank = 2, Trainable = "mlp" }).Validate()).Message);
        Assert.Contains("lora_rank = 0", Assert.Throws<ArgumentException>(() => (TinyModels.Sft(2) with { LoraRank = 0 }).Validate()).Message);
        Assert.Contains("lora_targets", Assert.Throws<ArgumentException>(() => (TinyModels.Sft(2) with { LoraRank = 2, LoraTargets = "q_proj,lm_head" }).Validate()).Message);
        Assert.Contains("lora_dropout", Assert.Throws<ArgumentException>(() => (TinyModels.Sft(2) with { LoraRank = 2, LoraDropout = 1.5 }).Validate()).Message);
        var lc = (TinyModels.Sft(2) with { LoraRank = 2 }).Lora()!;
        Assert.Equal(8, lc.Alpha);
        Assert.Equal(["q_proj", "v_proj"], lc.TargetModules);
    }
}
