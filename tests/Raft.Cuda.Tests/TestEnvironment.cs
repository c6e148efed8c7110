namespace Raft.Cuda.Tests;

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

    public double Normal() => Gauss.Next(_random);

    public float[] Normals(int count, double sigma)
    {
        var a = new float[count];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(sigma * Normal());
        return a;
    }

    public int Next(int maxExclusive) => _random.Next(maxExclusive);

    public override string ToString() => $"seed {Seed}";
}
