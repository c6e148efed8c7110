using ILGPU.Runtime;
using Raft.Kernels;
using Raft.Model;

namespace Raft.Gpu.Tests;

/// <summary>
/// The device model with LoRA adapters against <see cref="LlamaModel"/> with the same adapters (the CPU path, itself
/// checked against the double reference and finite differences in Raft.Model.Tests), on whatever accelerator is given.
/// </summary>
internal static class LoraChecks
{
    public static LoraConfig Config(string targets = "all-linear", int rank = 3, double alpha = 6) =>
        new() { Rank = rank, Alpha = alpha, TargetModules = LoraConfig.ParseTargets(targets, "targets") };

    /// <summary>Adapters with random A and B (B nonzero, unlike PEFT's init, so that every gradient path is exercised).</summary>
    public static LoraAdapters RandomAdapters(ModelConfig c, LoraConfig lc, int seed, double scale = 0.3)
    {
        var a = LoraAdapters.Create(DecoderLayout.For(c), lc, (ulong)seed);
        var rng = new Random(seed);
        foreach (var t in a.Parameters.Tensors)
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)(scale * Gauss.Next(rng));
        return a;
    }

    private static LoraAdapters Copy(LoraAdapters a) => new(a.Layout, a.Config, a.Parameters.Clone());

    /// <summary>
    /// Three fresh device models, one forward and backward each: the adapters' gradients are the same bits every time.
    /// Enough rows (n = 96 > the GEMM's TileK) that the base's split-K (atomic adds, whose order varies on a GPU) would
    /// split the adapters' weight-gradient GEMMs; theirs never split, so a LoRA step is deterministic and a resumed run
    /// equals the uninterrupted one bit for bit.
    /// </summary>
    public static void GradientsAreDeterministic(Accelerator acc)
    {
        var pr = Problem.Random(tied: false, bias: true, batch: 4, seqLen: 24);
        var lc = Config(rank: 2, alpha: 4);
        var adapters = RandomAdapters(pr.Config, lc, pr.Seed);
        var r = pr.RandomDLogits();
        TensorSet? first = null;
        for (int run = 0; run < 3; run++)
        {
            using var gpu = new GpuLlamaModel(acc, pr.Config, pr.Parameters, adapters);
            gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
            gpu.Backward(r);
            var grads = adapters.Parameters.ZerosLike();
            gpu.DownloadGradients(grads);
            if (first is null) { first = grads; continue; }
            foreach (var g in first.Tensors)
                Assert.True(g.Data.AsSpan().SequenceEqual(grads[g.Name].Data), $"{g.Name}: run {run} differs from run 0 ({pr})");
        }
    }

    public static void ForwardMatches(Accelerator acc, Problem pr, LoraConfig lc, double tolerance = 1e-5)
    {
        var adapters = RandomAdapters(pr.Config, lc, pr.Seed + 7);
        var cpu = new LlamaModel(pr.Config, pr.Parameters.Clone()) { Threads = 1, Lora = Copy(adapters) };
        var expected = cpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        using var gpu = new GpuLlamaModel(acc, pr.Config, pr.Parameters, adapters);
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        var logits = gpu.DownloadLogits();
        ModelChecks.AssertClose(logits, expected, tolerance, $"LoRA logits ({lc.TargetModules.Count} targets, {pr})");

        // adapters off: exactly the base model on the device
        using var plain = new GpuLlamaModel(acc, pr.Config, pr.Parameters);
        plain.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        var baseLogits = plain.DownloadLogits();
        Assert.True(Tolerances.MaxRelErrorOrInfinity(logits, baseLogits) > 1e-3, $"the adapters do not change the logits ({pr})");
        gpu.AdaptersEnabled = false;
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        Assert.Equal(baseLogits, gpu.DownloadLogits());
    }

    public static void GradientsMatch(Accelerator acc, Problem pr, LoraConfig lc, double tolerance = 1e-4)
    {
        var adapters = RandomAdapters(pr.Config, lc, pr.Seed + 11);
        var cpu = new LlamaModel(pr.Config, pr.Parameters.Clone()) { Threads = 1, Lora = Copy(adapters) };
        var acts = new ModelActivations();
        cpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen, acts);
        var dLogits = pr.RandomDLogits();
        var expected = adapters.Parameters.ZerosLike();   // adapter gradients only: the base is frozen
        cpu.Backward(acts, dLogits, expected);

        using var gpu = new GpuLlamaModel(acc, pr.Config, pr.Parameters, adapters);
        Assert.Equal(adapters.Parameters.ValueCount, gpu.TrainedParameterCount);
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        gpu.Backward(dLogits);
        var actual = adapters.Parameters.ZerosLike();
        gpu.DownloadGradients(actual);
        foreach (var e in expected.Tensors)
        {
            Assert.True(e.Data.Any(v => v != 0), $"{e.Name}: the CPU gradient is all zero ({pr})");
            ModelChecks.AssertClose(actual[e.Name].Data, e.Data, tolerance, $"gradient of {e.Name} ({pr})");
        }
        // accumulates; a backward of a forward with the adapters off adds nothing
        gpu.AdaptersEnabled = false;
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        gpu.Backward(dLogits);
        gpu.AdaptersEnabled = true;
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        gpu.Backward(dLogits);
        gpu.DownloadGradients(actual);
        foreach (var e in expected.Tensors)
            ModelChecks.AssertClose(actual[e.Name].Data, Array.ConvertAll(e.Data, x => 2 * x), tolerance, $"accumulated gradient of {e.Name} ({pr})");
        // the base on the device never moved
        var after = gpu.DownloadParameters();
        foreach (var t in pr.Parameters.Tensors)
            Assert.True(after[t.Name].Data.AsSpan().SequenceEqual(t.Data), $"{t.Name}: the frozen base changed on the device ({pr})");
    }

    /// <summary>
    /// A few SFT steps of the adapters on the device against the CPU trainer's (forward, CpuKernels cross-entropy,
    /// adapter-only backward, clip, AdamW over the adapters with weight decay); the base keeps its bits on the device.
    /// </summary>
    public static void SftStepsMatch(Accelerator acc, Problem pr, LoraConfig lc, int steps = 3, double tolerance = 1e-4, bool peftInit = false)
    {
        var adapters = peftInit ? LoraAdapters.Create(DecoderLayout.For(pr.Config), lc, (ulong)pr.Seed) : RandomAdapters(pr.Config, lc, pr.Seed + 13);
        var options = new AdamWOptions { WeightDecay = 0.1 };
        var schedule = new LearningRateSchedule { PeakLearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 1, TotalSteps = 5 };
        const double maxNorm = 1.0;
        var host = Copy(adapters);
        var cpu = new LlamaModel(pr.Config, pr.Parameters.Clone()) { Threads = 1, Lora = host };
        var opt = new AdamW(host.Parameters, options, schedule);
        var grads = host.Parameters.ZerosLike();
        var acts = new ModelActivations();
        var ce = new CpuKernels(1);

        using var gpu = new GpuLlamaModel(acc, pr.Config, pr.Parameters, adapters);
        gpu.SetOptimizer(options, schedule);
        var rng = new Random(pr.Seed + 1);
        for (int s = 0; s < steps; s++)
        {
            var inputs = s == 0 ? pr.Tokens : Enumerable.Range(0, pr.Rows).Select(_ => rng.Next(pr.Config.VocabSize)).ToArray();
            var targets = s == 0 ? pr.Targets : Enumerable.Range(0, pr.Rows).Select(_ => rng.Next(5) == 0 ? -100 : rng.Next(pr.Config.VocabSize)).ToArray();

            var logits = cpu.Forward(inputs, pr.Batch, pr.SeqLen, acts);
            var loss = ce.CrossEntropy(logits, pr.Rows, pr.Config.VocabSize, targets, logits);
            foreach (var g in grads.Tensors) Array.Clear(g.Data);
            cpu.Backward(acts, logits, grads);
            double norm = GradientClipping.ClipByGlobalNorm(grads, maxNorm);
            double lr = opt.CurrentLearningRate;
            opt.Update(grads);

            var r = gpu.SftStep(inputs, targets, pr.Batch, pr.SeqLen, maxNorm);
            Assert.True(r.Applied, $"step {s} skipped ({pr})");
            Assert.Equal(lr, r.LearningRate);
            Assert.True(Math.Abs(r.Loss - loss.Loss) <= tolerance * Math.Abs(loss.Loss), $"step {s}: loss {r.Loss} vs CPU {loss.Loss} ({pr})");
            Assert.True(Math.Abs(r.GradNorm - norm) <= tolerance * norm, $"step {s}: grad norm {r.GradNorm} vs CPU {norm} ({pr})");
        }
        var trained = adapters.Parameters.ZerosLike();
        gpu.DownloadAdapters(trained);
        // AdamW moves an element with a near-zero gradient by up to ~lr per step whatever its size (see the Trainer tests)
        double slack = 5e-2 * schedule.PeakLearningRate * steps; // up to δ/ε ≈ 1e-2·lr per step for δ ~ 1e-10, ε = 1e-8
        foreach (var e in host.Parameters.Tensors)
        {
            double maxRef = e.Data.Max(v => Math.Abs((double)v)), maxErr = 0;
            for (int i = 0; i < e.Length; i++) maxErr = Math.Max(maxErr, Math.Abs(e.Data[i] - trained[e.Name].Data[i]));
            Assert.True(maxErr <= tolerance * maxRef + slack + 1e-7, $"{e.Name} after {steps} steps: max |Δ| {maxErr:g3} against max |w| {maxRef:g3} ({pr})");
        }
        Assert.True(TensorMaxDiff(adapters.Parameters, trained) > 1e-4, $"the adapters did not train ({pr})");
        var m = host.Parameters.ZerosLike();
        var v = host.Parameters.ZerosLike();
        gpu.DownloadOptimizerState(m, v);
        foreach (var e in opt.FirstMoment.Tensors)
            ModelChecks.AssertClose(m[e.Name].Data, e.Data, 1e-3, $"first moment of {e.Name} ({pr})");
        var after = gpu.DownloadParameters();
        foreach (var t in pr.Parameters.Tensors)
            Assert.True(after[t.Name].Data.AsSpan().SequenceEqual(t.Data), $"{t.Name}: the frozen base changed on the device ({pr})");
    }

    private static double TensorMaxDiff(TensorSet a, TensorSet b)
    {
        double d = 0;
        foreach (var t in a.Tensors)
            for (int i = 0; i < t.Length; i++) d = Math.Max(d, Math.Abs(t.Data[i] - b[t.Name].Data[i]));
        return d;
    }
}
