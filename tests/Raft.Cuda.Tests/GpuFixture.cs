namespace Raft.Cuda.Tests;

/// <summary>
/// One device and the loaded loss kernels for a test class, opened on first use (so that a class whose tests are
/// all skipped touches no driver), with its PTX cache in a temporary directory.
/// </summary>
public sealed class GpuFixture : IDisposable
{
    private readonly Lazy<CudaDevice> _device = new(() => CudaDevice.Open(0));
    private readonly Lazy<CudaLossKernels> _kernels;

    public GpuFixture()
    {
        CacheDirectory = Path.Combine(Path.GetTempPath(), "raft-cuda-gpu-tests-" + Guid.NewGuid().ToString("N"));
        _kernels = new(() => CudaLossKernels.Load(Device, new PtxCache(CacheDirectory)));
    }

    public string CacheDirectory { get; }

    public CudaDevice Device => _device.Value;

    public CudaLossKernels Kernels => _kernels.Value;

    public void Dispose()
    {
        if (_kernels.IsValueCreated) _kernels.Value.Dispose();
        if (_device.IsValueCreated) _device.Value.Dispose();
        if (Directory.Exists(CacheDirectory)) Directory.Delete(CacheDirectory, recursive: true);
    }
}
