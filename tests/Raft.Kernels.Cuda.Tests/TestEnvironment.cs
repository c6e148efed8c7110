using Raft.Cuda;

namespace Raft.Kernels.Cuda.Tests;

/// <summary>
/// A fact that needs a CUDA device and NVRTC (the CUDA C kernels). Skipped, with the reason, where either is missing;
/// it never passes vacuously. raft-gpubench --gpu-tests runs these on the GPU machine (it finds them by this name).
/// </summary>
public sealed class GpuFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no device or no NVRTC is present.</summary>
    public GpuFactAttribute()
    {
        if (!CudaDevice.IsAvailable) Skip = "No CUDA device: " + CudaDevice.UnavailableReason;
        else if (!NvrtcCompiler.IsAvailable) Skip = "A CUDA device is present but NVRTC is not: " + NvrtcCompiler.UnavailableReason;
    }
}

/// <summary>A theory that needs a CUDA device and NVRTC; skipped with the reason otherwise.</summary>
public sealed class GpuTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no device or no NVRTC is present.</summary>
    public GpuTheoryAttribute()
    {
        if (!CudaDevice.IsAvailable) Skip = "No CUDA device: " + CudaDevice.UnavailableReason;
        else if (!NvrtcCompiler.IsAvailable) Skip = "A CUDA device is present but NVRTC is not: " + NvrtcCompiler.UnavailableReason;
    }
}

/// <summary>A fact about the machine without a GPU (the errors of the GPU devices); skipped where a device is present.</summary>
public sealed class NoGpuFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when a CUDA device is present.</summary>
    public NoGpuFactAttribute()
    {
        if (CudaDevice.IsAvailable) Skip = "A CUDA device is present: this checks the error without one.";
    }
}

/// <summary>Fresh random inputs (a new seed per call and per run; the seed goes into every failure message).</summary>
internal static class TestRandom
{
    private static int _seed = Environment.TickCount;

    public static int NextSeed() => Interlocked.Increment(ref _seed);

    /// <summary>count values ~ scale·N(0, 1).</summary>
    public static float[] Logits(int count, int seed, double scale = 2.0)
    {
        var random = new Random(seed);
        var data = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            data[i] = (float)(scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return data;
    }
}

/// <summary>The CUDA C kernels on ILGPU's CUDA accelerator for a test class, opened on first use (a class whose tests are all skipped touches no driver).</summary>
public sealed class CudaCFixture : IDisposable
{
    private readonly Lazy<CudaCKernels> _kernels = new(() =>
        CudaCKernels.TryCreate(2, out var k, out string reason) ? k : throw new InvalidOperationException("the CUDA C kernels cannot run here: " + reason));

    /// <summary>The kernels (they own their accelerator and context).</summary>
    public CudaCKernels Kernels => _kernels.Value;

    /// <inheritdoc />
    public void Dispose()
    {
        if (_kernels.IsValueCreated) _kernels.Value.Dispose();
    }
}
