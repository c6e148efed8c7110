namespace Raft.Cuda.Tests;

/// <summary>
/// A fact that needs a CUDA device (and NVRTC, to build the kernels). Skipped, with the reason, where either is
/// missing; it never passes vacuously.
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

/// <summary>A fact that needs NVRTC (no GPU). Skipped, with the reason, where NVRTC cannot be loaded.</summary>
public sealed class NvrtcFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when NVRTC is missing.</summary>
    public NvrtcFactAttribute()
    {
        if (!NvrtcCompiler.IsAvailable) Skip = "NVRTC is not available: " + NvrtcCompiler.UnavailableReason;
    }
}

/// <summary>
/// Guards against a test run that passes only because everything was skipped: with RAFT_REQUIRE_NVRTC=1 (set on
/// CI, where NVRTC is installed) a missing NVRTC fails the run; RAFT_REQUIRE_CUDA=1 does the same for a device.
/// </summary>
public class EnvironmentRequirementTests
{
    [Fact]
    public void NvrtcIsLoadableWhenRequired()
    {
        if (Environment.GetEnvironmentVariable("RAFT_REQUIRE_NVRTC") != "1") return;
        Assert.True(NvrtcCompiler.IsAvailable, "RAFT_REQUIRE_NVRTC=1 but NVRTC cannot be loaded: " + NvrtcCompiler.UnavailableReason);
    }

    [Fact]
    public void CudaDeviceIsPresentWhenRequired()
    {
        if (Environment.GetEnvironmentVariable("RAFT_REQUIRE_CUDA") != "1") return;
        Assert.True(CudaDevice.IsAvailable, "RAFT_REQUIRE_CUDA=1 but no CUDA device can be opened: " + CudaDevice.UnavailableReason);
    }
}

/// <summary>Random inputs for the tests: fresh every run, with the seed in every failure message.</summary>
internal sealed class TestRandom(int seed)
{
    private readonly Random _random = new(seed);

    public int Seed { get; } = seed;

    public static TestRandom Fresh() => new(Random.Shared.Next());

    public double Normal()
    {
        double u1 = 1.0 - _random.NextDouble(), u2 = _random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    public float[] Normals(int count, double sigma)
    {
        var a = new float[count];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(sigma * Normal());
        return a;
    }

    public int Next(int maxExclusive) => _random.Next(maxExclusive);

    public override string ToString() => $"seed {Seed}";
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
