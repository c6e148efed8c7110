using System.Diagnostics;
using Raft.Cuda;

namespace Raft.Cli.Tests;

/// <summary>
/// <c>--teacher-provider</c> through the real binary (#19): cuda without a usable CUDA device is bad input (exit 2, like
/// <c>--device cuda</c>), not a silent CPU run; an auto run on a CPU-only machine never asks ONNX Runtime for its CUDA
/// provider, so its native "Failed to load library libonnxruntime_providers_cuda.so" error is not printed.
/// </summary>
public class TeacherProviderTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "1", "--batch-size", "2", "--warmup-steps", "1",
        "--top-k", "4", "--rollout-max-tokens", "2", "--rollouts-per-prompt", "1", "--device", "cpu"];

    private (string Model, string Teacher, string Data) Inputs()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        return (ckpt, PipelineFixtures.Onnx(ckpt, PathOf("onnx")), PipelineFixtures.Data(PathOf("data.jsonl")));
    }

    [Fact]
    public void Cuda_without_a_cuda_device_is_refused_and_leaves_no_run_folder()
    {
        var (model, teacher, data) = Inputs();
        string run = PathOf("run");
        var r = Raft(["train", "--model", model, "--teacher", teacher, "--data", data, "--out", run, "--teacher-provider", "cuda", .. Tiny]);
        if (CudaDevice.IsAvailable)
        {
            Assert.True(r.Code == 0, r.ToString());
            Assert.Contains("running on CUDA", r.Stderr);
            return;
        }
        AssertUsageLastLine(r, "--teacher-provider cuda", "no usable CUDA device");
        Assert.DoesNotContain("running on CPU", r.Stderr);
        Assert.False(Directory.Exists(run), "a refused run left its --out folder");
    }

    [Fact]
    public async Task An_auto_run_on_a_cpu_only_machine_prints_no_onnx_runtime_cuda_error()
    {
        var (model, teacher, data) = Inputs();
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "raft.dll"));
        foreach (var a in (string[])["train", "--model", model, "--teacher", teacher, "--data", data, "--out", PathOf("run"), .. Tiny]) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string stderr = await p.StandardError.ReadToEndAsync();
        string output = await stdout;
        Assert.True(p.WaitForExit(300_000), "the run did not end");
        Assert.True(p.ExitCode == 0, $"exit {p.ExitCode}\n{stderr}\n{output}");
        if (CudaDevice.IsAvailable) return; // ONNX Runtime may then rightly try (and report) its CUDA provider
        Assert.DoesNotContain("libonnxruntime_providers_cuda", stderr);
        Assert.DoesNotContain("Failed to load library", stderr);
        Assert.Contains("running on CPU", stderr);
        // quiet and right about why (#19): not "(asked for)", and no driver probe's library list or path hint, on stderr or in the JSON line
        if (CudaDevice.BriefUnavailableReason != "no CUDA driver") return;
        Assert.Contains("running on CPU (auto: no CUDA driver).", stderr);
        Assert.DoesNotContain("(asked for)", stderr);
        Assert.DoesNotContain("RAFT_CUDA_LIBRARY", stderr + output);
    }
}
