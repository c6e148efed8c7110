using Raft.Kernels;
using Raft.Model;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

/// <summary>
/// A fact that needs ONNX Runtime's CUDA execution provider. Skipped, with the reason, where a session cannot be
/// started on it (no GPU, no CUDA/cuDNN libraries): the probe opens a tiny exported model with
/// <see cref="ComputeDevice.Cuda"/> and no CPU fallback, once per process.
/// </summary>
public sealed class OnnxCudaFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> s_unavailable = new(Probe);

    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the CUDA execution provider cannot be started.</summary>
    public OnnxCudaFactAttribute()
    {
        if (s_unavailable.Value is { } reason) Skip = "The ONNX Runtime CUDA execution provider is unavailable: " + reason;
    }

    private static string? Probe()
    {
        try
        {
            using var dir = new TempDirectory();
            var config = Tiny(false, false);
            OnnxExporter.Export(config, RandomParameters(config, seed: 1), dir.Path);
            using var s = TeacherSession.Open(dir.Path, new TeacherOptions { Provider = ComputeDevice.Cuda, AllowCpuFallback = false, Log = _ => { } });
            return null;
        }
        catch (Exception e) { return $"{e.GetType().Name}: {e.Message}"; } // any failure to start it is a reason to skip, stated
    }
}

public class TeacherDeviceBindingTests
{
    [Fact]
    public void TheCpuProviderKeepsThePlainPathAndRefusesDeviceLogits()
    {
        using var dir = new TempDirectory();
        var config = Tiny(false, true, vocab: 23);
        var weights = RandomParameters(config, seed: 8);
        OnnxExporter.Export(config, weights, dir.Path);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        Assert.False(teacher.UsesDeviceBinding);
        Assert.Null(teacher.CudaDevice);
        var e = Assert.Throws<InvalidOperationException>(() => teacher.ForwardOnDevice([1, 2, 3], 1, 3));
        Assert.Contains("CUDA provider", e.Message);
        Assert.Contains("runs on CPU", e.Message);

        // the CPU path: prefill + decode through the cache equals the engine's forward over the whole sequence
        int[] tokens = RandomTokens(7, 23, seed: 4);
        float[] reference = new LlamaModel(config, weights).Forward(tokens, 1, tokens.Length);
        using var cache = teacher.CreateCache(1);
        var got = new List<float>();
        got.AddRange(teacher.Forward(tokens[..4].Select(t => (long)t).ToArray(), 1, 4, cache));
        for (int i = 4; i < tokens.Length; i++) got.AddRange(teacher.Forward([tokens[i]], 1, 1, cache));
        Assert.Equal(7, cache.Length);
        Assert.True(Tolerances.MaxRelErrorFp32(got.ToArray(), reference) < 1e-5);
    }

    [OnnxCudaFact]
    public void CudaBindingMatchesTheCpuAndLeavesLogitsOnTheDevice()
    {
        using var dir = new TempDirectory();
        var config = Tiny(false, true, vocab: 29);
        OnnxExporter.Export(config, RandomParameters(config, seed: 12), dir.Path);
        using var cpu = TeacherSession.Open(dir.Path, Cpu());
        using var gpu = TeacherSession.Open(dir.Path, new TeacherOptions { Provider = ComputeDevice.Cuda, AllowCpuFallback = false, Log = _ => { } });
        Assert.True(gpu.UsesDeviceBinding);
        Assert.Equal(0, gpu.CudaDevice);

        long[] prompt = [1, 5, 7, 2, 9, 11, 3, 4];
        using var cpuCache = cpu.CreateCache(2);
        using var gpuCache = gpu.CreateCache(2);
        float[] c = cpu.Forward(prompt, 2, 4, cpuCache), g = gpu.Forward(prompt, 2, 4, gpuCache);
        Assert.True(Tolerances.MaxRelErrorFp32(g, c) < 1e-3, "prefill");
        // a decode step with the logits left on the device, then one more on the host: the device-held cache carries on
        using (var onDevice = gpu.ForwardOnDevice([6, 8], 2, 1, gpuCache))
        {
            Assert.Equal(0, onDevice.DeviceId);
            Assert.Equal((2, 1, 29), (onDevice.Batch, onDevice.Seq, onDevice.Vocab));
            Assert.NotEqual(IntPtr.Zero, onDevice.DataPointer);
        }
        cpu.Forward([6, 8], 2, 1, cpuCache);
        Assert.Equal(5, gpuCache.Length);
        c = cpu.Forward([10, 12], 2, 1, cpuCache);
        g = gpu.Forward([10, 12], 2, 1, gpuCache);
        Assert.True(Tolerances.MaxRelErrorFp32(g, c) < 1e-3, "decode after a device step");

        var options = SamplingOptions.Greedy with { MaxNewTokens = 8 };
        int[][] prompts = [[1, 2, 3], [4, 5, 6], [7, 8]];
        var onCpu = TeacherGenerator.Generate(cpu, prompts, options);
        var onGpu = TeacherGenerator.Generate(gpu, prompts, options);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(onCpu[i].Tokens, onGpu[i].Tokens);
    }
}
