using ILGPU.Runtime;
using Raft.Kernels;
using Raft.Model;

namespace Raft.Gpu.Tests;

/// <summary>A tiny random problem: config, parameters, tokens, targets, and the seed that made them (in every failure message).</summary>
internal sealed record Problem(ModelConfig Config, TensorSet Parameters, int Batch, int SeqLen, int[] Tokens, int[] Targets, int Seed)
{
    public int Rows => Batch * SeqLen;

    public override string ToString() =>
        $"seed {Seed}: hidden {Config.HiddenSize}, inter {Config.IntermediateSize}, vocab {Config.VocabSize}, tied {Config.TieWordEmbeddings}, bias {Config.QkvBias}, B {Batch}, T {SeqLen}";

    /// <summary>
    /// Fresh random shapes and values (never zeros): hidden 16–32 over 4 heads / 2 KV heads, 2 layers, intermediate 24–40,
    /// vocab 37–61, batch 2–3, seqLen 5–9; matrices ~ N(0, 0.3), norm weights 1 ± 0.2, biases ~ N(0, 0.1); about a
    /// quarter of the targets ignored.
    /// </summary>
    public static Problem Random(bool tied, bool bias, int? seed = null, int? batch = null, int? seqLen = null)
    {
        int s = seed ?? System.Random.Shared.Next();
        var rng = new Random(s);
        int hidden = 16 + 8 * rng.Next(3);
        var config = new ModelConfig
        {
            ModelType = bias ? "qwen2" : "llama",
            HiddenSize = hidden, IntermediateSize = 24 + rng.Next(17), NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            VocabSize = 37 + rng.Next(25), RmsNormEps = 1e-5, RopeTheta = 10000, TieWordEmbeddings = tied, AttentionBias = bias,
        };
        int b = batch ?? 2 + rng.Next(2), t = seqLen ?? 5 + rng.Next(5);
        var parameters = RandomData.RandomParameters(config, rng);
        var tokens = new int[b * t];
        var targets = new int[b * t];
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = rng.Next(config.VocabSize);
            targets[i] = rng.Next(4) == 0 ? -100 : rng.Next(config.VocabSize);
        }
        return new Problem(config, parameters, b, t, tokens, targets, s);
    }

    public float[] RandomDLogits()
    {
        var rng = new Random(Seed ^ 0x5bd1e995);
        var a = new float[Rows * Config.VocabSize];
        for (int i = 0; i < a.Length; i++) a[i] = (float)Gauss.Next(rng);
        return a;
    }
}

/// <summary>
/// The GPU model against the CPU model, on whatever accelerator is given (ILGPU's CPU accelerator in the ordinary
/// tests, CUDA in the GPU-only ones). Tolerances are relative: max|Δ| / max|reference| per tensor.
/// </summary>
internal static class ModelChecks
{
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double tolerance, string what)
    {
        double rel = Tolerances.MaxRelErrorOrInfinity(actual, expected);
        Assert.True(rel <= tolerance, $"{what}: relative max |Δ| {rel:E3} > {tolerance:E1}");
    }

    public static void ForwardMatches(Accelerator acc, Problem pr, double tolerance = 1e-5)
    {
        var cpu = new LlamaModel(pr.Config, pr.Parameters.Clone()) { Threads = 1 };
        var expected = cpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        using var gpu = new GpuLlamaModel(acc, pr.Config, pr.Parameters);
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        AssertClose(gpu.DownloadLogits(), expected, tolerance, $"logits ({pr})");
    }

    public static void GradientsMatch(Accelerator acc, Problem pr, double tolerance = 1e-4)
    {
        var cpu = new LlamaModel(pr.Config, pr.Parameters.Clone()) { Threads = 1 };
        var acts = new ModelActivations();
        cpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen, acts);
        var dLogits = pr.RandomDLogits();
        var expected = cpu.Parameters.ZerosLike();
        cpu.Backward(acts, dLogits, expected);

        using var gpu = new GpuLlamaModel(acc, pr.Config, pr.Parameters);
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        gpu.Backward(dLogits);
        var actual = pr.Parameters.ZerosLike();
        gpu.DownloadGradients(actual);
        foreach (var e in expected.Tensors)
            AssertClose(actual[e.Name].Data, e.Data, tolerance, $"gradient of {e.Name} ({pr})");

        // Backward accumulates: a second one doubles the gradients; ZeroGradients clears them.
        gpu.Backward(dLogits);
        gpu.DownloadGradients(actual);
        foreach (var e in expected.Tensors)
            AssertClose(actual[e.Name].Data, Array.ConvertAll(e.Data, x => 2 * x), tolerance, $"accumulated gradient of {e.Name} ({pr})");
        gpu.ZeroGradients();
        gpu.DownloadGradients(actual);
        foreach (var t in actual.Tensors) Assert.All(t.Data, x => Assert.Equal(0f, x));
    }

    /// <summary>A few SFT steps on the device against the CPU trainer's: forward, CpuKernels cross-entropy, backward, clip, AdamW.</summary>
    /// <param name="trainable">null: every tensor; else a name pattern (TrainOptions.Trainable): both optimizers freeze the
    /// rest, the CPU side zeroes their gradients before clipping, and the frozen tensors must keep their bits on the device.</param>
    public static void SftStepsMatch(Accelerator acc, Problem pr, int steps = 3, double tolerance = 1e-4, string? trainable = null)
    {
        var pattern = trainable is null ? null : new System.Text.RegularExpressions.Regex(trainable);
        bool IsTrainable(string name) => pattern is null || pattern.IsMatch(name);
        var options = new AdamWOptions { WeightDecay = 0.1 };
        var schedule = new LearningRateSchedule { PeakLearningRate = 1e-3, MinLearningRate = 1e-4, WarmupSteps = 1, TotalSteps = 5 };
        const double maxNorm = 1.0;
        var cpu = new LlamaModel(pr.Config, pr.Parameters.Clone()) { Threads = 1 };
        var opt = new AdamW(cpu.Parameters, options, schedule);
        var grads = cpu.Parameters.ZerosLike();
        var acts = new ModelActivations();
        var ce = new CpuKernels(1);

        using var gpu = new GpuLlamaModel(acc, pr.Config, pr.Parameters);
        gpu.SetOptimizer(options, schedule);
        if (pattern is not null)
        {
            opt.SetTrainable(IsTrainable);
            Assert.Equal(cpu.Parameters.Tensors.Count(t => IsTrainable(t.Name)), gpu.SetTrainable(IsTrainable));
        }
        var rng = new Random(pr.Seed + 1);
        for (int s = 0; s < steps; s++)
        {
            // fresh tokens each step (the first step uses the problem's)
            var inputs = s == 0 ? pr.Tokens : Enumerable.Range(0, pr.Rows).Select(_ => rng.Next(pr.Config.VocabSize)).ToArray();
            var targets = s == 0 ? pr.Targets : Enumerable.Range(0, pr.Rows).Select(_ => rng.Next(5) == 0 ? -100 : rng.Next(pr.Config.VocabSize)).ToArray();

            var logits = cpu.Forward(inputs, pr.Batch, pr.SeqLen, acts);
            var loss = ce.CrossEntropy(logits, pr.Rows, pr.Config.VocabSize, targets, logits);
            foreach (var g in grads.Tensors) Array.Clear(g.Data);
            cpu.Backward(acts, logits, grads);
            foreach (var g in grads.Tensors) if (!IsTrainable(g.Name)) Array.Clear(g.Data);
            double norm = GradientClipping.ClipByGlobalNorm(grads, maxNorm);
            double lr = opt.CurrentLearningRate;
            opt.Update(grads);

            var r = gpu.SftStep(inputs, targets, pr.Batch, pr.SeqLen, maxNorm);
            Assert.True(r.Applied, $"step {s} skipped ({pr})");
            Assert.Equal(lr, r.LearningRate);
            Assert.True(Math.Abs(r.Loss - loss.Loss) <= tolerance * Math.Abs(loss.Loss), $"step {s}: loss {r.Loss} vs CPU {loss.Loss} ({pr})");
            Assert.True(Math.Abs(r.GradNorm - norm) <= tolerance * norm, $"step {s}: grad norm {r.GradNorm} vs CPU {norm} ({pr})");
            Assert.Equal(s + 1, gpu.OptimizerStep);
        }
        var actual = gpu.DownloadParameters();
        foreach (var e in cpu.Parameters.Tensors)
        {
            AssertClose(actual[e.Name].Data, e.Data, tolerance, $"{e.Name} after {steps} steps ({pr})");
            if (!IsTrainable(e.Name))
                Assert.True(actual[e.Name].Data.AsSpan().SequenceEqual(pr.Parameters[e.Name].Data), $"{e.Name} is frozen but moved ({pr})");
        }
        var m = cpu.Parameters.ZerosLike();
        var v = cpu.Parameters.ZerosLike();
        gpu.DownloadOptimizerState(m, v);
        foreach (var e in opt.FirstMoment.Tensors)
            AssertClose(m[e.Name].Data, e.Data, 1e-3, $"first moment of {e.Name} ({pr})");
    }
}
