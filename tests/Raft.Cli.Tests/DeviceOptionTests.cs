using System.Text.Json;
using Raft.Cuda;
using Raft.Kernels;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>A theory about the machine without a GPU (the errors of the GPU devices); skipped where a device is present.</summary>
public sealed class NoGpuTheoryAttribute : TheoryAttribute
{
    public NoGpuTheoryAttribute()
    {
        if (CudaDevice.IsAvailable) Skip = "A CUDA device is present: this checks the error without one.";
    }
}

/// <summary><c>--device auto|cpu|cuda|cuda-c</c> on kd, train and sft; the CUDA C kernels behind ILossKernels.</summary>
public class DeviceOptionTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "2", "--batch-size", "2", "--warmup-steps", "1"];

    private (string Checkpoint, string Data) Inputs() =>
        (PipelineFixtures.Checkpoint(PathOf("base")), PipelineFixtures.Data(PathOf("data.jsonl")));

    [Theory]
    [InlineData("sft")]
    [InlineData("train")]
    public void AnUnknownDeviceIsABadOptionNamingTheValue(string command)
    {
        var (ckpt, data) = Inputs();
        var r = Raft([command, "--model", ckpt, "--data", data, "--out", PathOf("run"), "--device", "bogus", .. Tiny]);
        Assert.Equal(2, r.Code);
        Assert.Contains("--device must be auto, cpu, cuda or cuda-c, got 'bogus'", r.Stderr);
        Assert.False(Directory.Exists(PathOf("run")));
    }

    [Fact]
    public void AnUnknownDeviceInTheConfigFileIsABadOptionToo()
    {
        var (ckpt, data) = Inputs();
        string config = PathOf("config.json");
        File.WriteAllText(config, """{"device": "tpu"}""");
        var r = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--config", config, .. Tiny]);
        Assert.Equal(2, r.Code);
        Assert.Contains("got 'tpu'", r.Stderr);
    }

    [NoGpuTheory]
    [InlineData("kd", "cuda")]
    [InlineData("kd", "cuda-c")]
    [InlineData("sft", "cuda")]
    [InlineData("sft", "cuda-c")]
    public void AGpuDeviceWithoutAGpuIsABadInputNamingTheDeviceAndTheReason(string command, string device)
    {
        var r = command == "kd"
            ? Raft("kd", "--example", "--rows", "4", "--vocab", "300", "--device", device)
            : Raft([command, "--model", Inputs().Checkpoint, "--data", PathOf("data.jsonl"), "--out", PathOf("run"), "--device", device, .. Tiny]);
        Assert.Equal(2, r.Code);
        Assert.Contains($"--device {device}: no usable CUDA device (no CUDA device: {CudaDevice.UnavailableReason})", r.Stderr);
        Assert.False(Directory.Exists(PathOf("run")));
    }

    [Fact]
    public void SftOnAutoSaysOnceWhereTheKernelsRunAndRecordsTheDevice()
    {
        var (ckpt, data) = Inputs();
        string run = PathOf("run");
        var r = Raft(["sft", "--model", ckpt, "--data", data, "--out", run, .. Tiny]); // --device defaults to auto
        Assert.True(r.Code == 0, r.ToString());
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("raft: kernels on "));
        if (!CudaDevice.IsAvailable) Assert.Contains("(auto: no CUDA device: ", line);
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, Trainer.ConfigFile)));
        Assert.Equal("auto", config.RootElement.GetProperty("device").GetString());
        Assert.Equal("auto", r.Json.GetProperty("device").GetString());
        Assert.Equal(line["raft: kernels on ".Length..].Trim(), r.Json.GetProperty("kernels").GetString());

        // cpu: quiet, recorded, and a run may resume with another device (it does not change the configuration's math)
        var cpu = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("cpu"), "--device", "cpu", "--checkpoint-every", "1", .. Tiny]);
        Assert.True(cpu.Code == 0, cpu.ToString());
        Assert.DoesNotContain("kernels on", cpu.Stderr);
        Assert.Equal("cpu", cpu.Json.GetProperty("device").GetString());
        var resumed = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("cpu"), "--device", "auto", "--resume", "--checkpoint-every", "1", .. Tiny]);
        Assert.True(resumed.Code == 0, resumed.ToString());
        Assert.Contains("resumed from", resumed.Stderr);
    }

    [Fact]
    public void TrainOptionsAcceptTheFourDevicesOnly()
    {
        foreach (var d in TrainOptions.Devices) new TrainOptions { Device = d }.Validate();
        var e = Assert.Throws<ArgumentException>(() => new TrainOptions { Device = "gpu" }.Validate());
        Assert.Contains("device = gpu", e.Message);
    }

    [GpuFact]
    public void CudaCKernelsOnHostSpansMatchTheReference()
    {
        Assert.True(CudaCKernels.TryCreate(1, out var kernels, out var reason), reason);
        using (kernels)
        {
            var random = new Random();
            int seed = random.Next();
            const int rows = 5, vocab = 3001, k = 32;
            var teacher = RandomLogits(rows * vocab, seed, 3.0);
            var student = RandomLogits(rows * vocab, seed + 1, 2.0);
            var weights = new float[] { 1f, 0f, 0.5f, 2f, 1f };
            foreach (var config in new[] { new DistillSettings(k, 2f), new DistillSettings(k, 1.5f, DistillLossKind.ReverseKL), new DistillSettings(k, 1f, DistillLossKind.Jsd, 0.3f) })
            {
                var idx = new int[rows * k];
                var p = new float[rows * k];
                var refIdx = new int[rows * k];
                var refP = new float[rows * k];
                kernels.TopKSoftmax(teacher, rows, vocab, k, config.Temperature, idx, p);
                ReferenceKernels.Instance.TopKSoftmax(teacher, rows, vocab, k, config.Temperature, refIdx, refP);
                Assert.Equal(refIdx, idx);
                for (int i = 0; i < p.Length; i++) Assert.True(Math.Abs(p[i] - refP[i]) <= 1e-5 * refP[i] + 1e-7, $"prob {i}: {p[i]} vs {refP[i]} (seed {seed})");

                var grad = (float[])student.Clone();
                var refGrad = new float[student.Length];
                var loss = kernels.Distill(grad, rows, vocab, refIdx, refP, config, weights, grad); // in place
                var expected = ReferenceKernels.Instance.Distill(student, rows, vocab, refIdx, refP, config, weights, refGrad);
                Assert.True(Math.Abs(loss.Loss - expected.Loss) <= 1e-4 * Math.Abs(expected.Loss) + 1e-6, $"{config.Kind} loss {loss.Loss} vs {expected.Loss} (seed {seed})");
                Assert.Equal(expected.WeightSum, loss.WeightSum, 6);
                double tolerance = 1e-4 * refGrad.Max(v => Math.Abs(v)) + 1e-9;
                for (int i = 0; i < grad.Length; i++)
                    Assert.True(Math.Abs(grad[i] - refGrad[i]) <= tolerance, $"{config.Kind} gradient {i}: {grad[i]} vs {refGrad[i]} (seed {seed})");
            }
            var bad = (float[])teacher.Clone();
            bad[3 * vocab + 7] = float.NaN;
            var e = Assert.Throws<NonFiniteLogitException>(() => kernels.TopKSoftmax(bad, rows, vocab, k, 1f, new int[rows * k], new float[rows * k]));
            Assert.Equal(3, e.Row);
            Assert.Equal(7, e.Column);
        }
    }
}
