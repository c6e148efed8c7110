using Raft.Model;
using Raft.Pipeline.Training;
using Raft.Tests.Shared;

namespace Raft.Pipeline.Tests;

/// <summary>
/// precision = bf16 / fp16 (issue #16 part 1): the student's matmuls read 16-bit copies of its weights while AdamW updates
/// fp32 masters. A step from weights W computes the losses, gradient norm and update that the fp32 trainer computes
/// from the rounded weights round(W), the masters stay fp32 (not rounded), and a run resumes bit for bit.
/// </summary>
public class MixedPrecisionTrainingTests
{
    private static LlamaModel RoundedCopy(LlamaModel m, SafeTensorDType dtype)
    {
        var set = new TensorSet();
        foreach (var t in m.Parameters.Tensors)
            set.Add(m.Layout.Tensors.Any(s => s.Name == t.Name && s.Role == TensorRole.Matrix)
                ? HalfMatrix.FromSingle(t, dtype).ToSingle()
                : new Tensor(t.Name, t.Shape, (float[])t.Data.Clone()));
        return new LlamaModel(m.Config, set) { Threads = 1 };
    }

    private static TrainResult Train(LlamaModel model, TrainOptions options, string? dir = null, bool resume = false)
    {
        using var teacher = options.Method == TrainMethod.Raft ? TinyModels.Teacher(TinyModels.Model(seed: 5)) : null;
        return TinyModels.Trainer(model, options, teacher).Run(dir, resume);
    }

    public static TheoryData<string, string> Cases => new() { { "sft", "bf16" }, { "raft", "bf16" }, { "sft", "fp16" } };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_step_is_the_fp32_step_at_the_rounded_weights_applied_to_the_fp32_masters(string method, string precision)
    {
        var dtype = SafeTensorDTypes.ParseWeightsDType(precision, "precision");
        var options = (method == "sft" ? TinyModels.Sft(1) : TinyModels.Raft(1) with { RolloutsPerPrompt = 2 }) with { BatchSize = 4 };
        var initial = TinyModels.Model(seed: 5);
        var mixed = TinyModels.Copy(initial);
        var rounded = RoundedCopy(initial, dtype);
        var roundedStart = RoundedCopy(initial, dtype);
        var a = Train(mixed, options with { Precision = precision });
        var b = Train(rounded, options);
        var (ma, mb) = (a.Metrics[0], b.Metrics[0]);
        Assert.Equal(mb.Tokens, ma.Tokens);
        Assert.Equal(mb.Loss, ma.Loss, 1e-5);
        Assert.Equal(mb.SftLoss, ma.SftLoss, 1e-5);
        Assert.Equal(mb.KdLoss ?? 0, ma.KdLoss ?? 0, 1e-5);
        Assert.Equal(mb.GradNorm, ma.GradNorm, 1e-5);
        // the update: the same step from another starting point (AdamW's first step is ±lr where the gradient is not tiny)
        double worst = 0, moved = 0;
        foreach (var t in mixed.Parameters.Tensors)
        {
            var w0 = initial.Parameters[t.Name].Data;
            var r0 = roundedStart.Parameters[t.Name].Data;
            var r1 = rounded.Parameters[t.Name].Data;
            for (int i = 0; i < t.Length; i++)
            {
                double da = t.Data[i] - w0[i], db = r1[i] - r0[i];
                worst = Math.Max(worst, Math.Abs(da - db));
                moved = Math.Max(moved, Math.Abs(db));
            }
        }
        Assert.True(moved > 0 && worst < 1e-3 * moved, $"{method} {precision}: updates differ by {worst:E2}; the step moved weights by {moved:E2}");
        // the masters are fp32: not rounded to the compute dtype, and the copies are gone once the run ends
        Assert.Contains(mixed.Parameters.Tensors, t => t.Data.Any(v => HalfMatrix.FromSingle(new Tensor("x", [1], [v]), dtype).ToSingle().Data[0] != v));
        Assert.Null(mixed.ComputeDType);
    }

    [Fact]
    public void A_bf16_run_differs_from_the_fp32_run_resumes_bit_exactly_and_a_precision_change_is_a_mismatch()
    {
        using var dir = new TempDirectory();
        var options = TinyModels.Raft(4) with { RolloutsPerPrompt = 2, BatchSize = 2, CheckpointEvery = 2, Precision = "bf16" };
        var full = TinyModels.Model(seed: 5);
        Train(full, options, dir.File("a"));
        var fp32 = TinyModels.Model(seed: 5);
        Train(fp32, options with { Precision = "fp32" });
        Assert.True(TinyModels.MaxAbsDiff(full.Parameters, fp32.Parameters) > 0, "bf16 compute changes the run");

        Train(TinyModels.Model(seed: 5), options, dir.File("b"));
        Directory.Delete(Path.Combine(dir.File("b"), Trainer.FinalDir), recursive: true);
        // as if the run had stopped after step 2
        foreach (var c in Directory.GetDirectories(Path.Combine(dir.File("b"), "checkpoints")).Where(c => !c.EndsWith("step-0000002", StringComparison.Ordinal)))
            Directory.Delete(c, recursive: true);
        var e = Assert.ThrowsAny<Exception>(() => Train(TinyModels.Model(seed: 5), options with { Precision = "fp32" }, dir.File("b"), resume: true));
        Assert.Contains("precision", e.Message);
        var resumed = TinyModels.Model(seed: 5);
        Train(resumed, options, dir.File("b"), resume: true);
        TinyModels.AssertBitwiseEqual(full.Parameters, resumed.Parameters);
    }

    [Fact]
    public void Bad_values_are_named()
    {
        foreach (var bad in new[] { "int8", "", "fp8" })
        {
            var e = Assert.Throws<ArgumentException>(() => (TinyModels.Sft(1) with { Precision = bad }).Validate());
            Assert.Equal("precision", e.ParamName);
            Assert.Contains("fp32, bf16 or fp16", e.Message);
        }
        Assert.Null(new TrainOptions().ComputeDType);
        Assert.Equal(SafeTensorDType.BF16, new TrainOptions { Precision = "BF16" }.ComputeDType);
    }
}
