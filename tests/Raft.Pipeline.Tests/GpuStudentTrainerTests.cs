using Raft.Gpu;
using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline.Tests;

/// <summary>
/// The Trainer with its student on an ILGPU accelerator (<see cref="Trainer.StudentAccelerator"/>): here ILGPU's CPU
/// accelerator, which runs the same kernel code as CUDA; on a GPU the same path runs on ILGPU's CUDA accelerator.
/// SFT and RAFT from the same weights must follow the CPU path (float sums in another order: relative 1e-4), and a
/// resumed run must equal the uninterrupted one.
/// </summary>
public sealed class GpuStudentTrainerTests : IDisposable
{
    private readonly GpuDevice _device = GpuDevice.CreateCpu();

    public void Dispose() => _device.Dispose();

    private Trainer OnDevice(LlamaModel student, TrainOptions options, ITeacher? teacher = null) =>
        new(student, ByteTokenizer.Instance, ChatTemplate.Raft, TinyModels.Data, options, teacher, new CpuKernels(1))
        {
            StudentAccelerator = _device.Accelerator,
        };

    // Weights after AdamW: an element whose gradient g is near zero moves by lr·m̂/(√v̂+ε) per step, whose derivative in
    // g is up to 1/ε; float sums in another order change such a gradient by δ ~ 1e-10 (summands ~1e-3, float rounding),
    // so with ε = 1e-8 that element may move by up to ~δ/ε = 1e-2·lr more or less per step however small the weights
    // are (CI saw 5e-3·lr). The bound allows 5e-2·lr per step: a wrong gradient moves an element by ~lr per step, 20×
    // more, and the losses and gradient norms above are compared at 1e-4 anyway.
    private static void AssertClose(TensorSet expected, TensorSet actual, double relative, double adamSlack = 0, int seed = 0)
    {
        foreach (var e in expected.Tensors)
        {
            var a = actual[e.Name];
            double maxRef = 0, maxErr = 0;
            for (int i = 0; i < e.Length; i++)
            {
                maxRef = Math.Max(maxRef, Math.Abs(e.Data[i]));
                maxErr = Math.Max(maxErr, Math.Abs(e.Data[i] - a.Data[i]));
            }
            Assert.True(maxErr <= relative * maxRef + adamSlack + 1e-7, $"{e.Name}: max |Δ| {maxErr:g3} against max |w| {maxRef:g3} (bound {relative * maxRef + adamSlack:g3}, seed {seed})");
        }
    }

    [Theory]
    [InlineData(TrainMethod.Sft, null)]
    [InlineData(TrainMethod.Raft, null)]
    [InlineData(TrainMethod.Sft, "mlp")]
    [InlineData(TrainMethod.Raft, "mlp|norm")]
    public void StudentOnTheAcceleratorFollowsTheCpuPath(TrainMethod method, string? trainable)
    {
        int seed = Random.Shared.Next(1, 1000);
        var cpu = TinyModels.Model(seed);
        var dev = TinyModels.Copy(cpu);
        var initial = cpu.Parameters.Clone();
        var options = (method == TrainMethod.Sft ? TinyModels.Sft(4) : TinyModels.Raft(3)) with { Seed = seed, Trainable = trainable, WeightDecay = 0.1 };
        using var teacherA = method == TrainMethod.Raft ? TinyModels.Teacher(cpu) : null;
        using var teacherB = method == TrainMethod.Raft ? TinyModels.Teacher(cpu) : null;
        var a = TinyModels.Trainer(cpu, options, teacherA).Run();
        var b = OnDevice(dev, options, teacherB).Run();

        Assert.Equal(a.Metrics.Count, b.Metrics.Count);
        for (int i = 0; i < a.Metrics.Count; i++)
        {
            Assert.False(b.Metrics[i].Skipped);
            Assert.Equal(a.Metrics[i].SftLoss, b.Metrics[i].SftLoss, 1e-4 * Math.Abs(a.Metrics[i].SftLoss));
            Assert.Equal(a.Metrics[i].GradNorm, b.Metrics[i].GradNorm, 1e-4 * Math.Abs(a.Metrics[i].GradNorm));
            Assert.Equal(a.Metrics[i].LearningRate, b.Metrics[i].LearningRate, 12);
        }
        Assert.True(TinyModels.MaxAbsDiff(initial, dev.Parameters) > 1e-4, "the device student did not train");
        AssertClose(cpu.Parameters, dev.Parameters, 1e-4, adamSlack: 5e-2 * options.LearningRate * options.Steps, seed: seed);
        if (trainable is not null)
            foreach (var t in dev.Parameters.Tensors.Where(t => !System.Text.RegularExpressions.Regex.IsMatch(t.Name, trainable)))
                Assert.True(t.Data.AsSpan().SequenceEqual(initial[t.Name].Data), $"{t.Name} is frozen but moved on the device");
    }

    // SFT only: the device SFT student syncs its host weights for nothing else (RAFT does every step, for its rollouts);
    // 2 steps: the ILGPU CPU accelerator is slow
    [Fact]
    public void EvaluationDuringTrainingLeavesTheDeviceRunAsItWas()
    {
        using var dir = new TempDir();
        string set = dir.Write("math.jsonl", string.Concat(TinyModels.Data.Take(3).Select(e =>
            System.Text.Json.JsonSerializer.Serialize(new { prompt = e.Prompt, answer = e.Answer, extractor = "last_number" }) + "\n")));
        var options = TinyModels.Sft(2);
        var start = TinyModels.Model(seed: 17);
        var plain = TinyModels.Copy(start);
        var a = OnDevice(plain, options).Run();
        var evaluated = TinyModels.Copy(start);
        var b = OnDevice(evaluated, options with { EvalSet = [set], EvalEvery = 1, EvalMaxNewTokens = 4 }).Run();
        // the evaluations read the device weights of their step (synced to the host), and change nothing
        Assert.Equal([1, 2], b.Evals.Select(e => e.Step));
        Assert.Equal(a.Metrics.Select(m => m.Loss), b.Metrics.Select(m => m.Loss));
        TinyModels.AssertBitwiseEqual(plain.Parameters, evaluated.Parameters);
        var expected = Raft.Pipeline.Eval.ModelEvaluator.Evaluate(TinyModels.Copy(evaluated), ByteTokenizer.Instance, ChatTemplate.Raft,
            Raft.Pipeline.Eval.EvalSet.Load(set), 4);
        Assert.Equal(EvalSetMetrics.From(expected), b.Evals[^1].Eval["math"]);
    }

    [Fact]
    public void ResumedDeviceRunEqualsTheUninterruptedOne()
    {
        using var dirA = new TempDir();
        using var dirB = new TempDir();
        var options = TinyModels.Sft(4) with { CheckpointEvery = 2 };
        var full = TinyModels.Model(seed: 21);
        OnDevice(full, options).Run(dirA.Path);

        // interrupted after step 2 (a run of 2 steps with the same schedule is not the same run, so stop by cancellation)
        var part = TinyModels.Model(seed: 21);
        using var cts = new CancellationTokenSource();
        var first = new Trainer(part, ByteTokenizer.Instance, ChatTemplate.Raft, TinyModels.Data, options, null, new CpuKernels(1))
        {
            StudentAccelerator = _device.Accelerator,
            AfterStep = (m, _) => { if (m.Step == 2) cts.Cancel(); },
        };
        Assert.ThrowsAny<OperationCanceledException>(() => first.Run(dirB.Path, cancellation: cts.Token));

        var resumed = TinyModels.Model(seed: 999); // everything must come from the checkpoint
        var result = OnDevice(resumed, options).Run(dirB.Path, resume: true);
        Assert.Equal(2, result.Metrics.Count);
        AssertClose(full.Parameters, resumed.Parameters, 1e-5);
        // the optimizer state went into the checkpoint: the final one has AdamW at step 4
        var state = AdamW.LoadState(Path.Combine(dirB.Path, Trainer.FinalDir), resumed.Parameters);
        Assert.Equal(4, state.StepCount);
        Assert.True(state.SecondMoment.Tensors.Any(t => t.Data.Any(v => v > 0)), "the second moments were not saved");
    }

    [Fact]
    public void SeveralRanksAreRefusedWithTheReason()
    {
        var trainer = new Trainer(TinyModels.Model(seed: 2), ByteTokenizer.Instance, ChatTemplate.Raft, TinyModels.Data, TinyModels.Sft(1), null, new CpuKernels(1))
        {
            StudentAccelerator = _device.Accelerator,
            Collective = new TwoRankStub(),
        };
        var e = Assert.Throws<TrainingException>(() => trainer.Run());
        Assert.Contains("one process", e.Message);
        Assert.Contains("2 ranks", e.Message);
    }

    /// <summary>A world of 2 that fails any communication: the refusal must come before the first collective.</summary>
    private sealed class TwoRankStub : Raft.Distributed.ICollective
    {
        public int Rank => 0;
        public int WorldSize => 2;
        public string Backend => "stub";
        public string HostName => "test";
        public void Barrier() => throw new InvalidOperationException("no barrier expected");
        public void Broadcast(Span<float> data, int root) { }
        public void Broadcast(Span<byte> data, int root) { }
        public void AllReduceSum(Span<float> data) { }
        public void AllReduceMean(Span<float> data) { }
        public void AllReduce(Span<double> data, Raft.Distributed.ReduceOp op = Raft.Distributed.ReduceOp.Sum) { }
        public void ReduceScatterSum(ReadOnlySpan<float> send, Span<float> receive) { }
        public void AllGather(ReadOnlySpan<float> send, Span<float> receive) { }
        public void Abort(string reason, int errorCode = 1) { }
        public void Dispose() { }
    }
}
