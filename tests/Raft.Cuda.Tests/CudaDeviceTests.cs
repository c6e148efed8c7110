namespace Raft.Cuda.Tests;

public class CudaDeviceTests(GpuFixture gpu) : IClassFixture<GpuFixture>
{
    [Fact]
    public void TryOpenReportsWhyNot()
    {
        bool opened = CudaDevice.TryOpen(out var device, out var reason);
        using (device)
        {
            Assert.Equal(CudaDevice.IsAvailable, opened);
            if (opened)
            {
                Assert.NotNull(device);
                Assert.Equal("", reason);
                Assert.Null(CudaDevice.UnavailableReason);
            }
            else
            {
                Assert.Null(device);
                Assert.False(string.IsNullOrWhiteSpace(reason));
                Assert.Equal(CudaDevice.UnavailableReason, reason);
                Assert.Equal(0, CudaDevice.DeviceCount);
                Assert.Throws<InvalidOperationException>(() => CudaDevice.Open());
            }
        }
    }

    [Fact]
    public void AnOrdinalOutOfRangeIsRefusedWithAReason()
    {
        Assert.False(CudaDevice.TryOpen(1_000, out var device, out var reason));
        Assert.Null(device);
        Assert.False(string.IsNullOrWhiteSpace(reason));
    }

    [Fact]
    public void CudaExceptionCarriesItsParts()
    {
        var e = new CudaException(CudaResult.NotFound, "CUDA_ERROR_NOT_FOUND", "cuModuleGetFunction", "named symbol not found");
        Assert.Equal(CudaResult.NotFound, e.Result);
        Assert.Contains("cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND (500): named symbol not found.", e.Message);
        Assert.Equal("CUDA_ERROR_NOT_FOUND", CudaException.FallbackName(500));
        Assert.Equal("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", CudaException.FallbackName(701));
        Assert.Equal("CUDA_ERROR_12345", CudaException.FallbackName(12345));
    }

    [Fact]
    public void KernelArgumentsHoldValuesOfAtMostEightBytes()
    {
        var args = new KernelArguments().Add(new DevicePointer(0x1000)).Add(3).Add(2.5f).Add(7L).Add(1.0);
        Assert.Equal(5, args.Count);
        var slots = new ulong[5];
        args.CopyTo(slots);
        Assert.Equal(0x1000ul, slots[0]);
        Assert.Equal(3ul, slots[1]);
        Assert.Equal((ulong)BitConverter.SingleToUInt32Bits(2.5f), slots[2]);
        Assert.Equal(7ul, slots[3]);
        Assert.Equal(BitConverter.DoubleToUInt64Bits(1.0), slots[4]);
        Assert.Throws<ArgumentException>(() => args.AddValue(new decimal(1)));
    }

    [Fact]
    public void DevicePointerArithmetic()
    {
        var p = new DevicePointer(0x100);
        Assert.Equal(0x110ul, p.Add<float>(4).Address);
        Assert.Equal(0xF8ul, p.AddBytes(-8).Address);
        Assert.True(DevicePointer.Null.IsNull);
        Assert.Equal("0x100", p.ToString());
    }

    [GpuFact]
    public void ReportsTheDevice()
    {
        var d = gpu.Device;
        Assert.False(string.IsNullOrWhiteSpace(d.Name));
        Assert.True(d.ComputeCapabilityMajor >= 7, d.ToString());
        Assert.True(d.MultiprocessorCount > 0);
        Assert.True(d.TotalMemoryBytes > 0);
        Assert.True(d.MaxSharedMemoryPerBlock >= 48 * 1024);
        Assert.True(CudaDevice.DriverVersion >= 11000);
        Assert.StartsWith("compute_", d.ChooseArchitecture());
    }

    [GpuFact]
    public void AMissingKernelNameRaisesCudaException()
    {
        var ptx = new PtxCache(gpu.CacheDirectory).GetOrCompileKernel(KernelSources.Copy, gpu.Device).Ptx;
        using var module = gpu.Device.LoadModule(ptx);
        Assert.Equal(CudaLossKernels.CopyEntry, module.GetFunction(CudaLossKernels.CopyEntry).Name);
        var e = Assert.Throws<CudaException>(() => module.GetFunction("no_such_kernel"));
        Assert.Equal(CudaResult.NotFound, e.Result);
        Assert.Equal("CUDA_ERROR_NOT_FOUND", e.ResultName);
        Assert.Equal("cuModuleGetFunction", e.Call);
    }

    [GpuFact]
    public void InvalidPtxRaisesCudaExceptionFromTheModuleLoad()
    {
        var e = Assert.Throws<CudaException>(() => gpu.Device.LoadModule(".version 99.0\n.target sm_80\n.address_size 64\nnot ptx at all\n"));
        Assert.Equal("cuModuleLoadDataEx", e.Call);
        Assert.NotEqual(CudaResult.Success, e.Result);
    }

    [GpuFact]
    public void BuffersRoundTripThroughTheCopyKernel()
    {
        var rng = TestRandom.Fresh();
        const int n = (1 << 20) + 3;
        var data = rng.Normals(n + 4, 1.0);
        using var src = gpu.Device.Upload<float>(data);
        using var dst = gpu.Device.Allocate<float>(n + 4);
        Assert.Equal(data, src.ToArray());

        // aligned: float4 path
        dst.Clear();
        gpu.Kernels.Copy(src.Pointer, dst.Pointer, n);
        gpu.Device.Synchronize();
        var back = dst.ToArray();
        Assert.True(data.AsSpan(0, n).SequenceEqual(back.AsSpan(0, n)), rng.ToString());
        Assert.All(back[n..], v => Assert.Equal(0f, v));

        // different 16-byte phases: element-by-element path; same odd phase: scalar head, float4 body
        foreach (var (so, d0) in new[] { (1, 0), (1, 2), (3, 3) })
        {
            dst.Clear();
            gpu.Kernels.Copy(src.ElementPointer(so), dst.ElementPointer(d0), n);
            gpu.Device.Synchronize();
            back = dst.ToArray();
            Assert.True(data.AsSpan(so, n).SequenceEqual(back.AsSpan(d0, n)), $"offsets {so}->{d0}, {rng}");
            Assert.All(back[..d0], v => Assert.Equal(0f, v));
        }

        using var copy = gpu.Device.Allocate<float>(n + 4);
        copy.CopyFrom(src);
        Assert.Equal(data, copy.ToArray());
    }

    [GpuFact]
    public void DisposalIsDeterministicAndIdempotent()
    {
        Assert.True(CudaDevice.TryOpen(out var device, out var reason), reason);
        var buffer = device.Allocate<int>(16);
        buffer.CopyFrom(Enumerable.Range(0, 16).ToArray());
        device.Dispose();
        device.Dispose();
        Assert.True(device.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => device.MakeCurrent());
        buffer.Dispose(); // after its device: nothing left to free, and no throw
        // the fixture's device (another retain of the same primary context) still works
        using var other = gpu.Device.Upload<int>([1, 2, 3]);
        Assert.Equal([1, 2, 3], other.ToArray());
    }
}
