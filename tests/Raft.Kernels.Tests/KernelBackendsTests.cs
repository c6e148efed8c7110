namespace Raft.Kernels.Tests;

/// <summary>--device cpu|cuda|auto: the choice, its fallback and its explanation, on whatever machine runs the tests.</summary>
public class KernelBackendsTests
{
    private static readonly bool HasCuda = KernelBackends.TryCreateCuda(out var probe, out _) && DisposeProbe(probe);

    private static bool DisposeProbe(KernelBackend? b) { b?.Dispose(); return true; }

    [Fact]
    public void CpuIsTheSimdKernels()
    {
        using var b = KernelBackends.Create(ComputeDevice.Cpu, cpuThreads: 1);
        Assert.IsType<CpuKernels>(b.Kernels);
        Assert.Equal(b.Kernels.Name, b.Description);
    }

    [Fact]
    public void AutoFallsBackToTheCpuAndSaysWhyWhenNoGpuIsUsable()
    {
        using var b = KernelBackends.Create(ComputeDevice.Auto);
        if (HasCuda)
        {
            Assert.IsType<IlgpuKernels>(b.Kernels);
            Assert.StartsWith("cuda: ", b.Description);
        }
        else
        {
            Assert.IsType<CpuKernels>(b.Kernels);
            Assert.Contains("auto: no CUDA device", b.Description);
        }
    }

    [Fact]
    public void CudaIsAnErrorWithTheReasonWhenNoGpuIsUsable()
    {
        if (HasCuda)
        {
            using var b = KernelBackends.Create(ComputeDevice.Cuda);
            var rng = new Random(TestData.NextSeed());
            var t = TestData.Logits(rng, 4, 1000);
            var (ei, ep, ai, ap) = (new int[4 * 8], new float[4 * 8], new int[4 * 8], new float[4 * 8]);
            ReferenceKernels.Instance.TopKSoftmax(t, 4, 1000, 8, 1f, ei, ep);
            b.Kernels.TopKSoftmax(t, 4, 1000, 8, 1f, ai, ap);
            Assert.Equal(ei, ai);
        }
        else
        {
            var e = Assert.Throws<InvalidOperationException>(() => KernelBackends.Create(ComputeDevice.Cuda));
            Assert.Contains("no usable CUDA device", e.Message);
        }
    }

    [Fact]
    public void AnUnknownDeviceIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelBackends.Create((ComputeDevice)7));
        Assert.Equal("device", e.ParamName);
    }
}
