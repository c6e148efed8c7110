namespace Raft.Gpu.Tests;

/// <summary>One ILGPU CPU accelerator for every test of the collection (the kernels compile once per accelerator).</summary>
public sealed class CpuAcceleratorFixture : IDisposable
{
    public GpuDevice Device { get; } = GpuDevice.CreateCpu();

    public void Dispose() => Device.Dispose();
}

/// <summary>The tests on ILGPU's CPU accelerator run one at a time (each simulated group is 256 OS threads).</summary>
[CollectionDefinition(Name)]
public sealed class CpuAcceleratorCollection : ICollectionFixture<CpuAcceleratorFixture>
{
    public const string Name = "ilgpu-cpu";
}
