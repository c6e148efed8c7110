using Raft.Cuda;

namespace Raft.Kernels.Cuda.Tests;

/// <summary>auto|cpu|cuda|cuda-c: the choice, its fallback and its explanation, on whatever machine runs the tests.</summary>
public class KernelBackendFactoryTests
{
    private static readonly bool HasCuda = KernelBackendFactory.TryCreateCuda(out var probe, out _) && DisposeProbe(probe);

    private static bool DisposeProbe(KernelBackend? b) { b?.Dispose(); return true; }

    [Fact]
    public void CpuIsTheSimdKernels()
    {
        using var b = KernelBackendFactory.Create(ComputeDevice.Cpu, cpuThreads: 1);
        Assert.IsType<CpuKernels>(b.Kernels);
        Assert.Equal(b.Kernels.Name, b.Description);
        Assert.Equal(ComputeDevice.Cpu, b.Device);
        Assert.Null(b.Accelerator);
    }

    [Fact]
    public void AutoFallsBackToTheCpuAndSaysWhyWhenNoGpuIsUsable()
    {
        using var b = KernelBackendFactory.Create(ComputeDevice.Auto);
        if (HasCuda)
        {
            Assert.IsType<IlgpuKernels>(b.Kernels);
            Assert.StartsWith("cuda: ", b.Description);
            Assert.Equal(ComputeDevice.Cuda, b.Device);
            Assert.Same(((IlgpuKernels)b.Kernels).Accelerator, b.Accelerator);
        }
        else
        {
            Assert.IsType<CpuKernels>(b.Kernels);
            Assert.Contains("(auto: no CUDA ", b.Description);
            Assert.Equal(ComputeDevice.Cpu, b.Device);
            Assert.Null(b.Accelerator);
            // the driver's own probe comes first: its reason, briefly (no library names or path hint on a machine without a driver)
            if (!CudaDevice.IsAvailable) Assert.EndsWith($"(auto: {CudaDevice.BriefUnavailableReason})", b.Description);
            if (CudaDevice.BriefUnavailableReason == "no CUDA driver") Assert.DoesNotContain("RAFT_CUDA_LIBRARY", b.Description);
        }
    }

    [Fact]
    public void CudaIsAnErrorWithTheReasonWhenNoGpuIsUsable()
    {
        if (HasCuda)
        {
            using var b = KernelBackendFactory.Create(ComputeDevice.Cuda);
            var rng = new Random(TestRandom.NextSeed());
            var t = TestRandom.Logits(4 * 1000, rng.Next(), 3.0);
            var (ei, ep, ai, ap) = (new int[4 * 8], new float[4 * 8], new int[4 * 8], new float[4 * 8]);
            ReferenceKernels.Instance.TopKSoftmax(t, 4, 1000, 8, 1f, ei, ep);
            b.Kernels.TopKSoftmax(t, 4, 1000, 8, 1f, ai, ap);
            Assert.Equal(ei, ai);
            Assert.Equal(ComputeDevice.Cuda, b.Device);
            Assert.NotNull(b.Accelerator);
        }
        else
        {
            var e = Assert.Throws<InvalidOperationException>(() => KernelBackendFactory.Create(ComputeDevice.Cuda));
            Assert.Contains("no usable CUDA device", e.Message);
            Assert.DoesNotContain("--", e.Message); // the command line adds its flag, the library names none
        }
    }

    [NoGpuFact]
    public void CudaAndCudaCWithoutADriverSayWhyInTheDriversWords()
    {
        string expected = $"no usable CUDA device (no CUDA device: {CudaDevice.UnavailableReason}).";
        Assert.Equal(expected, Assert.Throws<InvalidOperationException>(() => KernelBackendFactory.Create(ComputeDevice.Cuda)).Message);
        Assert.Equal(expected, Assert.Throws<InvalidOperationException>(() => KernelBackendFactory.Create(ComputeDevice.CudaC)).Message);
        Assert.False(KernelBackendFactory.TryCreateCudaC(1, out var none, out string reason));
        Assert.Null(none);
        Assert.Equal($"no CUDA device: {CudaDevice.UnavailableReason}", reason);
    }

    [GpuFact]
    public void CudaCRunsOnIlgpusCudaAccelerator()
    {
        using var b = KernelBackendFactory.Create(ComputeDevice.CudaC, cpuThreads: 1);
        var kernels = Assert.IsType<CudaCKernels>(b.Kernels);
        Assert.Equal(ComputeDevice.CudaC, b.Device);
        Assert.StartsWith("cuda-c: ", b.Description);
        Assert.Equal(kernels.Description, b.Description);
        Assert.NotNull(b.Accelerator);
        Assert.Same(kernels.Accelerator, b.Accelerator);
        Assert.Equal(ILGPU.Runtime.AcceleratorType.Cuda, b.Accelerator!.AcceleratorType);
    }

    [Fact]
    public void AnUnknownDeviceIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelBackendFactory.Create((ComputeDevice)7));
        Assert.Equal("device", e.ParamName);
        Assert.Equal("cpuThreads", Assert.Throws<ArgumentException>(() => KernelBackendFactory.Create(ComputeDevice.Cpu, -1)).ParamName);
    }
}
