using System.Diagnostics;
using System.Globalization;
using Raft.Gpu;
using Raft.Kernels;
using Raft.Model;

namespace Raft.GpuBench;

/// <summary>
/// <c>--train-step</c>: one whole SFT training step (forward, mean cross-entropy, backward, global-norm clipping,
/// AdamW) of the engine's CPU path (<see cref="LlamaModel"/> on every core, <see cref="CpuKernels"/>,
/// <see cref="GradientClipping"/>, <see cref="AdamW"/>: the steps the Trainer runs) against <see cref="GpuLlamaModel"/>
/// on ILGPU's CUDA accelerator. Each case is checked first (one step from the same weights: loss, gradient norm,
/// every gradient tensor and the updated weights), then timed: warm-up, then the median of N steps, each
/// synchronised (the GPU step reads its loss back at its end). With <c>--host-check</c> only the checks run, on
/// ILGPU's CPU accelerator at small batches.
/// </summary>
internal static class TrainStepBench
{
    private sealed record Case(string Model, ModelConfig Config, int Batch, int SeqLen, int CpuSteps);

    /// <summary>models/demo-base/config.json, as shipped.</summary>
    private static ModelConfig Demo => new()
    {
        ModelType = "raft", HiddenSize = 128, IntermediateSize = 384, NumHiddenLayers = 4, NumAttentionHeads = 4,
        NumKeyValueHeads = 2, VocabSize = 263, RmsNormEps = 1e-5, RopeTheta = 10000, MaxPositionEmbeddings = 160,
        TieWordEmbeddings = true,
    };

    /// <summary>A ~40 M-parameter Llama (untied lm_head, vocab 32000).</summary>
    private static ModelConfig Larger => new()
    {
        ModelType = "llama", HiddenSize = 512, IntermediateSize = 1376, NumHiddenLayers = 8, NumAttentionHeads = 8,
        NumKeyValueHeads = 4, VocabSize = 32000, RmsNormEps = 1e-5, RopeTheta = 10000, MaxPositionEmbeddings = 2048,
    };

    /// <summary>A Qwen2-style case for the host check (q/k/v bias, untied).</summary>
    private static ModelConfig SmallQwen => new()
    {
        ModelType = "qwen2", HiddenSize = 64, IntermediateSize = 160, NumHiddenLayers = 2, NumAttentionHeads = 4,
        NumKeyValueHeads = 2, VocabSize = 300, RmsNormEps = 1e-6, RopeTheta = 1e6, MaxPositionEmbeddings = 512,
    };

    private static readonly AdamWOptions Options = new() { WeightDecay = 0.01 };
    private static readonly LearningRateSchedule Schedule = LearningRateSchedule.Constant(1e-4);
    private const double MaxNorm = 1.0;

    /// <summary>Runs the mode; returns the exit code (0 ok, 1 a check failed, 3 no usable CUDA device, 4 error).</summary>
    public static int Run(BenchOptions o, Action<string> say)
    {
        bool host = o.HostCheck;
        GpuDevice? device;
        if (host) device = GpuDevice.CreateCpu();
        else if (!GpuDevice.TryCreateCuda(out device, out string reason))
        {
            Console.Error.WriteLine("raft-gpubench --train-step: no usable CUDA device for ILGPU: " + reason);
            return 3;
        }
        using (device)
        {
            var cases = host
                ? new[] { new Case("demo-base", Demo, 2, 16, 0), new Case("qwen2-style 64", SmallQwen, 2, 24, 0) }
                : new[]
                {
                    new Case("demo-base", Demo, 16, 128, o.TrainCpuSteps), new Case("demo-base", Demo, 64, 128, o.TrainCpuSteps),
                    new Case("llama 512×8, V 32000", Larger, 8, 128, Math.Max(1, o.TrainCpuSteps / 2)),
                };
            say($"# raft-gpubench --train-step{(host ? " --host-check" : "")}: {device!.Description}, {Environment.ProcessorCount} CPU cores");
            say($"SFT step = forward, mean cross-entropy, backward, clip to {MaxNorm}, AdamW (lr {Schedule.PeakLearningRate}); " +
                (host ? "checks only (ILGPU's CPU accelerator)" : $"GPU: warm-up {o.Warmup}, median of {o.Repetitions}; CPU (all cores): warm-up 1, median of the steps shown"));
            say("");
            say("## Correctness: one step from the same weights, GPU vs CPU");
            say("");
            say("| model | batch×T | loss CPU | loss GPU | rel Δ loss | rel Δ grad norm | worst gradient (rel max Δ) | weights off by > 1e-2·lr | result |");
            say("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |");
            bool allPassed = true;
            var timings = new List<string>();
            foreach (var c in cases)
            {
                var seed = (int)(o.Seed % int.MaxValue) ^ c.Batch;
                var (inputs, targets) = Data(c, seed);
                var cpu = LlamaModel.CreateRandom(c.Config, seed);
                bool passed;
                try
                {
                    passed = Check(device.Accelerator, c, cpu, inputs, targets, say);
                }
                catch (Exception e)
                {
                    say($"| {c.Model} | {c.Batch}×{c.SeqLen} | | | | | | | FAIL ({e.GetType().Name}: {e.Message}) |");
                    passed = false;
                }
                allPassed &= passed;
                if (host || !passed) continue;
                Console.WriteLine($"timing {c.Model} at {c.Batch}×{c.SeqLen} …");
                timings.Add(Time(device.Accelerator, c, cpu, inputs, targets, o));
            }
            say("");
            if (!host)
            {
                say("## Timings (ms per SFT step; tokens/s = B·T / median step time)");
                say("");
                say("| model | batch×T | CPU ms/step | GPU ms/step | CPU tokens/s | GPU tokens/s | speed-up |");
                say("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
                foreach (var line in timings) say(line);
                say("");
            }
            say(allPassed ? "PASS: every case agrees with the CPU path." : "FAIL: see the correctness table.");
            return allPassed ? 0 : 1;
        }
    }

    private static (int[] Inputs, int[] Targets) Data(Case c, int seed)
    {
        var rng = new Random(seed);
        int n = c.Batch * c.SeqLen, v = c.Config.VocabSize;
        var tokens = new int[n + 1];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = rng.Next(v);
        var inputs = tokens.AsSpan(0, n).ToArray();
        var targets = tokens.AsSpan(1, n).ToArray();
        for (int i = 0; i < n; i++) if (rng.Next(10) == 0) targets[i] = -100;   // a prompt-like share ignored
        return (inputs, targets);
    }

    /// <summary>The CPU trainer's SFT step; returns (loss, grad norm) and leaves the unclipped gradients in rawGrads when given.</summary>
    private static (double Loss, double Norm) CpuStep(LlamaModel model, ModelActivations acts, CpuKernels kernels, TensorSet grads,
        AdamW opt, int[] inputs, int[] targets, Case c, TensorSet? rawGrads)
    {
        var logits = model.Forward(inputs, c.Batch, c.SeqLen, acts);
        var ce = kernels.CrossEntropy(logits, c.Batch * c.SeqLen, c.Config.VocabSize, targets, logits);
        foreach (var g in grads.Tensors) Array.Clear(g.Data);
        model.Backward(acts, logits, grads);
        if (rawGrads is not null)
            for (int i = 0; i < grads.Count; i++) grads.Tensors[i].Data.CopyTo(rawGrads.Tensors[i].Data, 0);
        double norm = GradientClipping.ClipByGlobalNorm(grads, MaxNorm);
        if (double.IsFinite(norm)) opt.Update(grads);
        return (ce.Loss, norm);
    }

    private static bool Check(ILGPU.Runtime.Accelerator acc, Case c, LlamaModel source, int[] inputs, int[] targets, Action<string> say)
    {
        var cpu = new LlamaModel(c.Config, source.Parameters.Clone());
        var opt = new AdamW(cpu.Parameters, Options, Schedule);
        var grads = cpu.Parameters.ZerosLike();
        var raw = cpu.Parameters.ZerosLike();
        var (loss, norm) = CpuStep(cpu, new ModelActivations(), new CpuKernels(), grads, opt, inputs, targets, c, raw);

        using var gpu = new GpuLlamaModel(acc, c.Config, source.Parameters);
        gpu.SetOptimizer(Options, Schedule);
        var r = gpu.SftStep(inputs, targets, c.Batch, c.SeqLen, MaxNorm);
        var gpuGrads = cpu.Parameters.ZerosLike();
        gpu.DownloadGradients(gpuGrads);
        var gpuParams = gpu.DownloadParameters();

        double relLoss = Math.Abs(r.Loss - loss) / Math.Abs(loss);
        double relNorm = Math.Abs(r.GradNorm - norm) / norm;
        string worstName = "";
        double worst = 0;
        foreach (var e in raw.Tensors)
        {
            double d = RelMaxDiff(gpuGrads[e.Name].Data, e.Data);
            if (!(d <= worst)) { worst = d; worstName = e.Name; }
        }
        // AdamW's first step moves every weight by lr·g/(|g| + ε) ≈ ±lr, so an entry whose gradient is within rounding of
        // 0 (|g| ~ ε) may move differently: count the weights that differ by more than 1e-2·lr and allow 0.1 % of them
        // (a wrong update moves almost all of them by ~lr).
        double lr = Schedule.At(0);
        long off = 0, total = 0;
        foreach (var p in cpu.Parameters.Tensors)
        {
            var gp = gpuParams[p.Name].Data;
            for (int i = 0; i < gp.Length; i++)
                if (!(Math.Abs(gp[i] - p.Data[i]) <= 1e-2 * lr + 1e-6 * Math.Abs(p.Data[i]))) off++;
            total += gp.Length;
        }
        bool passed = r.Applied && relLoss <= 1e-4 && relNorm <= 1e-3 && worst <= 1e-3 && off <= Math.Max(2, total / 1000);
        say(string.Create(CultureInfo.InvariantCulture,
            $"| {c.Model} | {c.Batch}×{c.SeqLen} | {loss:F6} | {r.Loss:F6} | {relLoss:E1} | {relNorm:E1} | {worstName} {worst:E1} | {off} of {total} | {(passed ? "PASS" : "FAIL")} |"));
        return passed;
    }

    private static double RelMaxDiff(float[] actual, float[] expected)
    {
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
            double d = Math.Abs((double)actual[i] - expected[i]);
            if (!(d <= maxDiff)) maxDiff = double.IsNaN(d) ? double.PositiveInfinity : d;
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }

    private static string Time(ILGPU.Runtime.Accelerator acc, Case c, LlamaModel source, int[] inputs, int[] targets, BenchOptions o)
    {
        int tokens = c.Batch * c.SeqLen;
        // CPU: the Trainer's step on every core
        var cpu = new LlamaModel(c.Config, source.Parameters.Clone());
        var opt = new AdamW(cpu.Parameters, Options, Schedule);
        var grads = cpu.Parameters.ZerosLike();
        var acts = new ModelActivations();
        var kernels = new CpuKernels();
        CpuStep(cpu, acts, kernels, grads, opt, inputs, targets, c, null);
        var cpuMs = new List<double>();
        for (int s = 0; s < Math.Max(1, c.CpuSteps); s++)
        {
            long t0 = Stopwatch.GetTimestamp();
            CpuStep(cpu, acts, kernels, grads, opt, inputs, targets, c, null);
            cpuMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        // GPU: SftStep synchronises at its end (it reads the loss and norm back)
        using var gpu = new GpuLlamaModel(acc, c.Config, source.Parameters);
        gpu.SetOptimizer(Options, Schedule);
        for (int s = 0; s < Math.Max(1, o.Warmup); s++) gpu.SftStep(inputs, targets, c.Batch, c.SeqLen, MaxNorm);
        var gpuMs = new List<double>();
        for (int s = 0; s < o.Repetitions; s++)
        {
            long t0 = Stopwatch.GetTimestamp();
            gpu.SftStep(inputs, targets, c.Batch, c.SeqLen, MaxNorm);
            gpuMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        double cm = Median(cpuMs), gm = Median(gpuMs);
        return string.Create(CultureInfo.InvariantCulture,
            $"| {c.Model} | {c.Batch}×{c.SeqLen} | {cm:F1} | {gm:F2} | {tokens / (cm / 1e3):N0} | {tokens / (gm / 1e3):N0} | {cm / gm:F1}× |");
    }

    private static double Median(List<double> xs)
    {
        xs.Sort();
        int n = xs.Count;
        return n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
    }
}
