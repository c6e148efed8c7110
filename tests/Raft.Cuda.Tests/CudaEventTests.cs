namespace Raft.Cuda.Tests;

/// <summary>CUDA events (<see cref="CudaEvent"/>) time device work.</summary>
public class CudaEventTests(GpuFixture gpu) : IClassFixture<GpuFixture>
{
    [GpuFact]
    public void EventsTimeACopy()
    {
        const long n = 1 << 24;
        using var src = gpu.Device.Allocate<float>(n);
        using var dst = gpu.Device.Allocate<float>(n);
        src.Clear();
        using var start = new CudaEvent(gpu.Device);
        using var end = new CudaEvent(gpu.Device);
        start.Record();
        gpu.Kernels.Copy(src.Pointer, dst.Pointer, n);
        end.Record();
        end.Synchronize();
        float ms = CudaEvent.ElapsedMilliseconds(start, end);
        Assert.True(ms > 0 && ms < 10_000, $"elapsed {ms} ms");
    }

    [GpuFact]
    public void AnUnrecordedEventCannotBeTimedAndDisposeIsIdempotent()
    {
        var start = new CudaEvent(gpu.Device);
        using var end = new CudaEvent(gpu.Device);
        start.Record();
        Assert.Throws<CudaException>(() => CudaEvent.ElapsedMilliseconds(start, end));
        start.Dispose();
        start.Dispose();
        Assert.Throws<ObjectDisposedException>(() => start.Record());
    }
}
