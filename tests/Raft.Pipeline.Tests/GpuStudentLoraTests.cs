using System.Text.Json.Nodes;
using Raft.Gpu;
using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>
/// LoRA runs of the Trainer with the student on an ILGPU accelerator (ILGPU's CPU accelerator here, the same kernel
/// code as CUDA): SFT and RAFT (the base as the teacher) follow the CPU LoRA run, the base keeps its bits, checkpoints
/// are PEFT adapter folders, resume is bit-exact, and what the device does not compute is refused by name.
/// </summary>
public sealed class GpuStudentLoraTests : IDisposable
{
    private readonly GpuDevice _device = GpuDevice.CreateCpu();

    public void Dispose() => _device.Dispose();

    private static TrainOptions Lora(TrainOptions o, string targets = "all-linear") =>
        o with { LoraRank = 4, LoraAlpha = 8, LoraTargets = targets, WeightDecay = 0.1 };

    private Trainer OnDevice(LlamaModel student, TrainOptions options, Action<StepMetrics, LlamaModel>? afterStep = null) =>
        new(student, ByteTokenizer.Instance, ChatTemplate.Raft, TinyModels.Data, options, null, new CpuKernels(1))
        {
            StudentAccelerator = _device.Accelerator,
            AfterStep = afterStep,
        };

    private static string[] Metrics(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, Trainer.MetricsFile)).Where(l => l.Length > 0).Select(l =>
        {
            var o = JsonNode.Parse(l)!.AsObject();
            foreach (var k in new[] { "elapsed_s", "tokens_per_s", "train_s", "rollout_s", "teacher_s" }) o.Remove(k);
            return o.ToJsonString();
        }).ToArray();

    [Theory]
    [InlineData(TrainMethod.Sft, "all-linear")]
    [InlineData(TrainMethod.Raft, "all-linear")]
    [InlineData(TrainMethod.Raft, "q_proj,v_proj")]
    public void LoraStudentOnTheAcceleratorFollowsTheCpuLoraRun(TrainMethod method, string targets)
    {
        int seed = Random.Shared.Next(1, 1000);
        var start = TinyModels.Model(seed, layers: 2);
        var cpu = TinyModels.Copy(start);
        var dev = TinyModels.Copy(start);
        var options = Lora(method == TrainMethod.Sft ? TinyModels.Sft(4) : TinyModels.Raft(3), targets) with { Seed = seed };
        // RAFT: no teacher given on either side, so the base itself (adapters off) scores the rollouts
        var a = TinyModels.Trainer(cpu, options).Run();
        var b = OnDevice(dev, options).Run();
        AssertFollows(a, b, cpu, dev, options, method, seed);
        // the base is frozen on both sides (the host model's base is the one uploaded; the device never sends it back)
        TinyModels.AssertBitwiseEqual(start.Parameters, cpu.Parameters);
        TinyModels.AssertBitwiseEqual(start.Parameters, dev.Parameters);
    }

    /// <summary>The device run's steps and adapters against the CPU run's, to fp32 rounding (as GpuStudentTrainerTests).</summary>
    private static void AssertFollows(TrainResult a, TrainResult b, LlamaModel cpu, LlamaModel dev, TrainOptions options, TrainMethod method, int seed)
    {
        Assert.Equal(a.Metrics.Count, b.Metrics.Count);
        for (int i = 0; i < a.Metrics.Count; i++)
        {
            Assert.False(b.Metrics[i].Skipped);
            Assert.Equal(a.Metrics[i].SftLoss, b.Metrics[i].SftLoss, 1e-4 * Math.Abs(a.Metrics[i].SftLoss));
            double kdA = a.Metrics[i].KdLoss ?? 0, kdB = b.Metrics[i].KdLoss ?? 0;
            Assert.Equal(kdA, kdB, 1e-4 * Math.Abs(kdA) + 1e-7);
            Assert.Equal(a.Metrics[i].GradNorm, b.Metrics[i].GradNorm, 1e-4 * Math.Abs(a.Metrics[i].GradNorm));
            Assert.Equal(a.Metrics[i].LearningRate, b.Metrics[i].LearningRate, 12);
        }
        if (method == TrainMethod.Raft) Assert.Contains(b.Metrics, m => (m.KdLoss ?? 0) > 0);
        Assert.Contains(dev.Lora!.Parameters.Tensors, t => t.Name.EndsWith("lora_B.weight") && t.Data.Any(v => v != 0));
        // AdamW's near-zero-gradient slack, as GpuStudentTrainerTests
        double slack = 5e-2 * options.LearningRate * options.Steps; // derivation in GpuStudentTrainerTests
        foreach (var e in cpu.Lora!.Parameters.Tensors)
        {
            var d = dev.Lora.Parameters[e.Name];
            double maxRef = 0, maxErr = 0;
            for (int i = 0; i < e.Length; i++)
            {
                maxRef = Math.Max(maxRef, Math.Abs(e.Data[i]));
                maxErr = Math.Max(maxErr, Math.Abs(e.Data[i] - d.Data[i]));
            }
            Assert.True(maxErr <= 1e-4 * maxRef + slack + 1e-7, $"{e.Name}: max |Δ| {maxErr:g3} against max |w| {maxRef:g3} (seed {seed})");
        }
    }

    [Theory]
    [InlineData(TrainMethod.Sft)]
    [InlineData(TrainMethod.Raft)]
    public void ResumedDeviceLoraRunIsBitExact(TrainMethod method)
    {
        using var tmp = new TempDir();
        string a = tmp.File("a"), b = tmp.File("b");
        var start = TinyModels.Model(seed: 33);
        var options = Lora(method == TrainMethod.Raft ? TinyModels.Raft(6) : TinyModels.Sft(6)) with { CheckpointEvery = 3 };

        var full = TinyModels.Copy(start);
        OnDevice(full, options).Run(a);
        TinyModels.AssertBitwiseEqual(start.Parameters, full.Parameters);
        string final = Path.Combine(a, Trainer.FinalDir);
        // a PEFT adapter folder, written by the CPU path's writer: the adapters the device trained, no base copy
        Assert.True(File.Exists(Path.Combine(final, LoraFiles.ConfigFile)));
        Assert.False(File.Exists(Path.Combine(final, "model.safetensors")));
        TinyModels.AssertBitwiseEqual(full.Lora!.Parameters, LoraFiles.Load(final, full.Layout).Parameters);
        // the same folder the CPU student's LoRA run writes: the same files, the same adapter_config.json, the same tensors
        string c = tmp.File("c");
        var onCpu = TinyModels.Copy(start);
        TinyModels.Trainer(onCpu, options).Run(c);
        string cpuFinal = Path.Combine(c, Trainer.FinalDir);
        Assert.Equal(Directory.GetFiles(cpuFinal).Select(Path.GetFileName).Order(), Directory.GetFiles(final).Select(Path.GetFileName).Order());
        Assert.Equal(File.ReadAllText(Path.Combine(cpuFinal, LoraFiles.ConfigFile)), File.ReadAllText(Path.Combine(final, LoraFiles.ConfigFile)));
        var cpuTensors = SafeTensorsFile.ReadAll(Path.Combine(cpuFinal, LoraFiles.WeightsFile));
        var devTensors = SafeTensorsFile.ReadAll(Path.Combine(final, LoraFiles.WeightsFile));
        Assert.Equal(cpuTensors.Tensors.Select(t => (t.Name, string.Join(",", t.Shape))), devTensors.Tensors.Select(t => (t.Name, string.Join(",", t.Shape))));
        var state = AdamW.LoadState(final, full.Lora.Parameters);
        Assert.Equal(6, state.StepCount);
        Assert.True(state.SecondMoment.Tensors.Any(t => t.Data.Any(v => v > 0)), "the adapters' second moments were not saved");

        var first = TinyModels.Copy(start);
        var interrupted = OnDevice(first, options, (m, _) => { if (m.Step == 4) throw new StopHere(); });
        Assert.Throws<StopHere>(() => interrupted.Run(b));
        var resumed = TinyModels.Copy(start);   // the same base; adapters and their moments come from the checkpoint
        var result = OnDevice(resumed, options).Run(b, resume: true);
        Assert.Equal([4, 5, 6], result.Metrics.Select(m => m.Step));
        TinyModels.AssertBitwiseEqual(full.Lora.Parameters, resumed.Lora!.Parameters);
        TinyModels.AssertBitwiseEqual(SafeTensorsFile.ReadAll(Path.Combine(final, AdamW.StateFile)),
            SafeTensorsFile.ReadAll(Path.Combine(b, Trainer.FinalDir, AdamW.StateFile)));
        Assert.Equal(Metrics(a), Metrics(b));
        TinyModels.AssertBitwiseEqual(start.Parameters, resumed.Parameters);
    }

    private sealed class StopHere : Exception;

    [Fact]
    public void LoraDropoutIsRefusedByName()
    {
        var options = Lora(TinyModels.Sft(1)) with { LoraDropout = 0.05 };
        var e = Assert.Throws<TrainingException>(() => OnDevice(TinyModels.Model(seed: 3), options).Run());
        Assert.Contains("lora_dropout = 0.05", e.Message);
        Assert.Contains("GPU student", e.Message);
    }

    /// <summary>The model with every matrix rounded to <paramref name="dtype"/> and held in 16 bits (a LoRA base as stored).</summary>
    private static LlamaModel Halved(LlamaModel fp32, SafeTensorDType dtype)
    {
        var small = new TensorSet();
        var halves = new List<HalfMatrix>();
        foreach (var t in fp32.Parameters.Tensors)
            if (fp32.Layout.Tensors.Any(s => s.Name == t.Name && s.Role == TensorRole.Matrix)) halves.Add(HalfMatrix.FromSingle(t, dtype));
            else small.Add(new Tensor(t.Name, (int[])t.Shape.Clone(), (float[])t.Data.Clone()));
        return new LlamaModel(fp32.Config, small, halves) { Threads = 1 };
    }

    private static Dictionary<string, ushort[]> StoredBits(LlamaModel m) => m.HalfMatrices.ToDictionary(h => h.Key, h => (ushort[])h.Value.Bits.Clone());

    [Theory]
    [InlineData(TrainMethod.Sft, "bf16")]
    [InlineData(TrainMethod.Raft, "fp16")]
    public void SixteenBitBaseIsWidenedForTheDeviceAndFollowsTheCpuRun(TrainMethod method, string dtype)
    {
        int seed = Random.Shared.Next(1, 1000);
        var fp32 = TinyModels.Model(seed, layers: 2);
        var d = dtype == "bf16" ? SafeTensorDType.BF16 : SafeTensorDType.F16;
        var cpu = Halved(fp32, d);
        var dev = Halved(fp32, d);
        var before = StoredBits(dev);
        var small = dev.Parameters.Clone();
        var options = Lora(method == TrainMethod.Sft ? TinyModels.Sft(4) : TinyModels.Raft(3)) with { Seed = seed, BaseWeightsDType = dtype };
        var a = TinyModels.Trainer(cpu, options).Run();
        var b = OnDevice(dev, options).Run();
        AssertFollows(a, b, cpu, dev, options, method, seed);
        // the host keeps its 16-bit base, bit for bit (the widened copy was the device's only)
        Assert.True(dev.IsInferenceOnly);
        Assert.Equal(before.Keys.Order(), dev.HalfMatrices.Keys.Order());
        foreach (var (name, bits) in before)
        {
            Assert.Equal(d, dev.HalfMatrices[name].DType);
            Assert.True(bits.AsSpan().SequenceEqual(dev.HalfMatrices[name].Bits), $"{name} changed");
        }
        TinyModels.AssertBitwiseEqual(small, dev.Parameters);
    }
}
