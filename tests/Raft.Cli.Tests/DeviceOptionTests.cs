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

/// <summary><c>--device auto|cpu|cuda|cuda-c</c> on kd, train and sft (the CUDA C kernels themselves: tests/Raft.Kernels.Cuda.Tests).</summary>
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
        if (!CudaDevice.IsAvailable) Assert.Contains("(auto: no CUDA ", line);
        // a CPU-only machine: said briefly, without the driver probe's library list and path hint, on stderr and in the JSON line (#19)
        if (CudaDevice.BriefUnavailableReason == "no CUDA driver")
        {
            Assert.EndsWith("(auto: no CUDA driver)", line.Trim());
            Assert.DoesNotContain("RAFT_CUDA_LIBRARY", r.Stderr);
            Assert.DoesNotContain("RAFT_CUDA_LIBRARY", r.Stdout);
        }
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
    public void ADeviceInTheConfigFileIsReadCaseInsensitivelyAndRecordedInItsSpelling()
    {
        var (ckpt, data) = Inputs();
        string config = PathOf("config.json"), run = PathOf("run");
        File.WriteAllText(config, """{"device": "CPU"}""");
        var r = Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--config", config, .. Tiny]);
        Assert.True(r.Code == 0, r.ToString());
        Assert.DoesNotContain("kernels on", r.Stderr);
        Assert.Equal("cpu", r.Json.GetProperty("device").GetString());
        Assert.Contains("\"device\": \"cpu\"", File.ReadAllText(Path.Combine(run, Trainer.ConfigFile)));
        File.WriteAllText(config, """{"device": null}""");
        var bad = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run2"), "--config", config, .. Tiny]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--device must be auto, cpu, cuda or cuda-c, got ''", bad.Stderr);
    }

    [Theory]
    [InlineData("cuda-c")]
    [InlineData("tpu")]
    public void TheTeacherProviderIsAutoCpuOrCudaOnly(string provider)
    {
        var (ckpt, data) = Inputs();
        var r = Raft(["train", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--device", "cpu", "--teacher-provider", provider, .. Tiny]);
        Assert.Equal(2, r.Code);
        Assert.Contains($"--teacher-provider must be auto, cpu or cuda, got '{provider}'.", r.Stderr);
        Assert.False(Directory.Exists(PathOf("run")));
    }

    [Fact]
    public void TrainOptionsAcceptTheFourDevicesOnly()
    {
        foreach (var d in ComputeDevices.All) new TrainOptions { Device = d }.Validate();
        var e = Assert.Throws<ArgumentException>(() => new TrainOptions { Device = ComputeDevices.Parse("gpu") }.Validate());
        Assert.Contains("device = 'gpu'", e.Message);
        Assert.Equal(4, ComputeDevices.All.Count);
    }
}
