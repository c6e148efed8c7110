using Raft.Model;

namespace Raft.Gpu.Tests;

/// <summary>
/// The device model against <see cref="LlamaModel"/> (and the double-precision <see cref="ReferenceModel"/>) on ILGPU's
/// CPU accelerator, which runs the same kernel code as CUDA: fresh random tiny models every run, with and without q/k/v
/// bias, tied and untied.
/// </summary>
[Collection(CpuAcceleratorCollection.Name)]
public sealed class GpuLlamaModelTests(CpuAcceleratorFixture fixture)
{
    private readonly ILGPU.Runtime.Accelerator _acc = fixture.Device.Accelerator;

    public static IEnumerable<object[]> TiedBias() => [[false, false], [true, false], [false, true], [true, true]];

    [Theory, MemberData(nameof(TiedBias))]
    public void ForwardMatchesCpuModel(bool tied, bool bias) => ModelChecks.ForwardMatches(_acc, Problem.Random(tied, bias));

    [Fact]
    public void ForwardMatchesDoubleReference()
    {
        var pr = Problem.Random(tied: false, bias: true);
        var reference = new ReferenceModel(pr.Config, pr.Parameters);
        var expected = Array.ConvertAll(reference.Forward(pr.Tokens, pr.Batch, pr.SeqLen, out _), x => (float)x);
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters);
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        ModelChecks.AssertClose(gpu.DownloadLogits(), expected, 1e-5, $"logits vs reference ({pr})");
    }

    [Fact]
    public void ForwardOfSeveralShapesReusesBuffers()
    {
        var pr = Problem.Random(tied: true, bias: false, batch: 3, seqLen: 9);
        var cpu = new LlamaModel(pr.Config, pr.Parameters.Clone()) { Threads = 1 };
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters);
        foreach (var (b, t) in new[] { (3, 9), (1, 4), (2, 6) })
        {
            var tokens = pr.Tokens.AsSpan(0, b * t).ToArray();
            gpu.Forward(tokens, b, t);
            ModelChecks.AssertClose(gpu.DownloadLogits(), cpu.Forward(tokens, b, t), 1e-5, $"logits at B {b}, T {t} ({pr})");
        }
    }

    [Theory, MemberData(nameof(TiedBias))]
    public void GradientsMatchCpuModel(bool tied, bool bias) => ModelChecks.GradientsMatch(_acc, Problem.Random(tied, bias));

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void SftStepsMatchCpuTrainer(bool tied, bool bias) => ModelChecks.SftStepsMatch(_acc, Problem.Random(tied, bias));

    [Theory]
    [InlineData("mlp")]                 // decayed tensors only, in three runs per layer
    [InlineData("norm|embed")]          // undecayed norms and the decayed (tied) embedding
    [InlineData(@"layers\.0\.self_attn\.[qkv]_proj")] // q, k, v with their biases: one packed run
    public void FrozenTensorsKeepTheirBitsAndTheRestMatchesTheCpuOptimizer(string trainable) =>
        ModelChecks.SftStepsMatch(_acc, Problem.Random(tied: true, bias: true), trainable: trainable);

    [Fact]
    public void GradientMatchesFiniteDifferences()
    {
        var pr = Problem.Random(tied: false, bias: true, batch: 2, seqLen: 5);
        var r = pr.RandomDLogits();   // L = Σ r ⊙ logits, summed in double on the host
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters);
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        gpu.Backward(r);
        var grads = pr.Parameters.ZerosLike();
        gpu.DownloadGradients(grads);
        var rng = new Random(pr.Seed);
        var probe = pr.Parameters.Clone();
        string[] names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.bias", "model.layers.1.mlp.down_proj.weight",
            "model.layers.1.input_layernorm.weight", "model.embed_tokens.weight", "lm_head.weight"];
        foreach (string name in names)
        {
            var t = probe[name];
            int i = name == "model.embed_tokens.weight" ? pr.Tokens[0] * pr.Config.HiddenSize + rng.Next(pr.Config.HiddenSize) : rng.Next(t.Length);
            float keep = t.Data[i];
            const float h = 2e-2f;
            double Loss(float value)
            {
                t.Data[i] = value;
                gpu.Upload(probe);
                gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
                var logits = gpu.DownloadLogits();
                double l = 0;
                for (int j = 0; j < logits.Length; j++) l += (double)r[j] * logits[j];
                return l;
            }
            // central differences at h and h/2, Richardson-extrapolated (truncation O(h⁴)); h large enough that the
            // fp32 rounding of the logits (summed in double) stays well under the tolerance
            double D(float step) => (Loss(keep + step) - Loss(keep - step)) / ((double)(keep + step) - (keep - step));
            double fd = (4 * D(h / 2) - D(h)) / 3;
            t.Data[i] = keep;
            double g = grads[name].Data[i];
            Assert.True(Math.Abs(fd - g) <= 2e-2 * Math.Max(Math.Abs(g), 0.1), $"{name}[{i}]: finite difference {fd} vs gradient {g} ({pr})");
        }
    }

    [Fact]
    public void NonFiniteGradientSkipsTheUpdate()
    {
        var pr = Problem.Random(tied: true, bias: false);
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters);
        gpu.SetOptimizer(new AdamWOptions(), LearningRateSchedule.Constant(1e-2));
        var bad = pr.Parameters.Clone();
        bad["model.norm.weight"].Data[0] = float.PositiveInfinity;
        gpu.Upload(bad);
        var r = gpu.SftStep(pr.Tokens, pr.Targets, pr.Batch, pr.SeqLen, maxNorm: 1.0);
        Assert.False(r.Applied);
        Assert.False(double.IsFinite(r.GradNorm));
        Assert.Equal(0, gpu.OptimizerStep);
        var after = gpu.DownloadParameters();
        foreach (var t in bad.Tensors) Assert.Equal(t.Data, after[t.Name].Data);
    }

    [Fact]
    public void AllTargetsIgnoredGivesZeroLossAndNoGradient()
    {
        var pr = Problem.Random(tied: false, bias: false);
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters);
        gpu.SetOptimizer(new AdamWOptions { WeightDecay = 0 }, LearningRateSchedule.Constant(1e-2));
        var r = gpu.SftStep(pr.Tokens, Enumerable.Repeat(-100, pr.Rows).ToArray(), pr.Batch, pr.SeqLen, maxNorm: 0);
        Assert.Equal(0.0, r.Loss);
        Assert.Equal(0.0, r.GradNorm);
        var after = gpu.DownloadParameters();
        foreach (var t in pr.Parameters.Tensors) Assert.Equal(t.Data, after[t.Name].Data);
    }

    [Fact]
    public void ArgumentErrorsNameTheArgumentAndValue()
    {
        var pr = Problem.Random(tied: true, bias: false);
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters);
        var count = Assert.Throws<ArgumentException>(() => gpu.Forward(pr.Tokens.AsSpan(1), pr.Batch, pr.SeqLen));
        Assert.Equal("tokens", count.ParamName);
        Assert.Contains((pr.Rows - 1).ToString(), count.Message);
        var batch = Assert.Throws<ArgumentOutOfRangeException>(() => gpu.Forward(pr.Tokens, 0, pr.SeqLen));
        Assert.Equal("batch", batch.ParamName);
        Assert.Equal(0, batch.ActualValue);
        var seq = Assert.Throws<ArgumentOutOfRangeException>(() => gpu.Forward(pr.Tokens, pr.Batch, -2));
        Assert.Equal("seqLen", seq.ParamName);
        var bad = (int[])pr.Tokens.Clone();
        bad[3] = pr.Config.VocabSize + 7;
        var token = Assert.Throws<ArgumentOutOfRangeException>(() => gpu.Forward(bad, pr.Batch, pr.SeqLen));
        Assert.Equal("tokens", token.ParamName);
        Assert.Equal(pr.Config.VocabSize + 7, token.ActualValue);
        Assert.Contains("index 3", token.Message);

        Assert.Throws<InvalidOperationException>(() => gpu.SftStep(pr.Tokens, pr.Targets, pr.Batch, pr.SeqLen, 1.0));
        gpu.SetOptimizer(new AdamWOptions(), LearningRateSchedule.Constant(1e-3));
        var badTargets = (int[])pr.Targets.Clone();
        badTargets[1] = -5;
        var target = Assert.Throws<ArgumentOutOfRangeException>(() => gpu.SftStep(pr.Tokens, badTargets, pr.Batch, pr.SeqLen, 1.0));
        Assert.Equal("targets", target.ParamName);
        Assert.Equal(-5, target.ActualValue);
        var targetCount = Assert.Throws<ArgumentException>(() => gpu.SftStep(pr.Tokens, pr.Targets.AsSpan(2), pr.Batch, pr.SeqLen, 1.0));
        Assert.Equal("targets", targetCount.ParamName);
        var norm = Assert.Throws<ArgumentException>(() => gpu.SftStep(pr.Tokens, pr.Targets, pr.Batch, pr.SeqLen, double.NaN));
        Assert.Equal("maxNorm", norm.ParamName);

        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        var dl = Assert.Throws<ArgumentException>(() => gpu.Backward(new float[5]));
        Assert.Equal("dLogits", dl.ParamName);
        var nan = new float[pr.Rows * pr.Config.VocabSize];
        nan[pr.Config.VocabSize + 2] = float.NaN;
        var dn = Assert.Throws<ArgumentException>(() => gpu.Backward(nan));
        Assert.Contains("dLogits[1, 2]", dn.Message);

        var missing = pr.Parameters.Clone();
        var partial = new TensorSet();
        foreach (var t in missing.Tensors) if (t.Name != "model.norm.weight") partial.Add(t);
        var up = Assert.Throws<ArgumentException>(() => gpu.Upload(partial));
        Assert.Equal("parameters", up.ParamName);
        Assert.Contains("model.norm.weight", up.Message);
    }

    [Fact]
    public void LogitsBeforeForwardIsAnError()
    {
        var pr = Problem.Random(tied: true, bias: false);
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters);
        Assert.Throws<InvalidOperationException>(() => gpu.Logits);
        Assert.Throws<InvalidOperationException>(() => gpu.Backward(new float[1]));
    }
}
