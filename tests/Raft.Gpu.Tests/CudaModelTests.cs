using Raft.Model;

namespace Raft.Gpu.Tests;

/// <summary>A fact that needs ILGPU's CUDA accelerator (a device, the driver, libdevice); skipped with the reason otherwise.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Unavailable = new(() =>
    {
        if (!GpuDevice.TryCreateCuda(out var device, out string reason)) return reason;
        device!.Dispose();
        return null;
    });

    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no usable CUDA device is present.</summary>
    public CudaFactAttribute()
    {
        if (Unavailable.Value is { } reason) Skip = "No usable CUDA device for ILGPU: " + reason;
    }
}

/// <summary>The accelerator for the CUDA tests, opened on first use.</summary>
public sealed class CudaFixture : IDisposable
{
    private readonly Lazy<GpuDevice> _device = new(() =>
        GpuDevice.TryCreateCuda(out var d, out string reason) ? d! : throw new InvalidOperationException(reason));

    public GpuDevice Device => _device.Value;

    public void Dispose()
    {
        if (_device.IsValueCreated) _device.Value.Dispose();
    }
}

/// <summary>
/// The same comparisons as <see cref="GpuLlamaModelTests"/> on ILGPU's CUDA accelerator, plus a demo-sized model
/// (so that the GEMM tiles, split-K and attention run at real sizes). Skipped, with the reason, without a device;
/// RAFT_REQUIRE_CUDA=1 turns a missing device into a failure.
/// </summary>
public sealed class CudaModelTests(CudaFixture fixture) : IClassFixture<CudaFixture>
{
    [Fact]
    public void CudaIsPresentWhenRequired()
    {
        if (Environment.GetEnvironmentVariable("RAFT_REQUIRE_CUDA") != "1") return;
        Assert.True(GpuDevice.TryCreateCuda(out var d, out string reason), "RAFT_REQUIRE_CUDA=1 but ILGPU cannot use CUDA: " + reason);
        d!.Dispose();
    }

    [CudaFact]
    public void ForwardMatchesCpuModel()
    {
        foreach (var (tied, bias) in new[] { (false, false), (true, true) })
            ModelChecks.ForwardMatches(fixture.Device.Accelerator, Problem.Random(tied, bias));
    }

    [CudaFact]
    public void GradientsMatchCpuModel()
    {
        foreach (var (tied, bias) in new[] { (false, true), (true, false) })
            ModelChecks.GradientsMatch(fixture.Device.Accelerator, Problem.Random(tied, bias));
    }

    [CudaFact]
    public void SftStepsMatchCpuTrainer() => ModelChecks.SftStepsMatch(fixture.Device.Accelerator, Problem.Random(tied: true, bias: true));

    [CudaFact]
    public void FrozenTensorsKeepTheirBitsOnTheDevice() =>
        ModelChecks.SftStepsMatch(fixture.Device.Accelerator, Problem.Random(tied: true, bias: true), trainable: "mlp|norm");

    [CudaFact]
    public void LoraSftStepsMatchCpuTrainer() =>
        LoraChecks.SftStepsMatch(fixture.Device.Accelerator, Problem.Random(tied: false, bias: true), LoraChecks.Config("all-linear"));

    // on a GPU the atomics of a split-K GEMM add in a varying order: the adapters' GEMMs must not split
    [CudaFact]
    public void LoraGradientsAreTheSameBitsEveryRun() => LoraChecks.GradientsAreDeterministic(fixture.Device.Accelerator);

    [CudaFact]
    public void DemoSizedModelMatchesCpuModel()
    {
        int seed = Random.Shared.Next();
        var config = new ModelConfig
        {
            HiddenSize = 128, IntermediateSize = 384, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            VocabSize = 263, RmsNormEps = 1e-5, RopeTheta = 10000, TieWordEmbeddings = true,
        };
        var rng = new Random(seed);
        var parameters = RandomData.RandomParameters(config, rng, scale: 0.05);
        int b = 4, t = 100;
        var tokens = Enumerable.Range(0, b * t).Select(_ => rng.Next(config.VocabSize)).ToArray();
        var targets = Enumerable.Range(0, b * t).Select(_ => rng.Next(config.VocabSize)).ToArray();
        var pr = new Problem(config, parameters, b, t, tokens, targets, seed);
        ModelChecks.ForwardMatches(fixture.Device.Accelerator, pr, 1e-4);
        ModelChecks.GradientsMatch(fixture.Device.Accelerator, pr, 1e-3);
        ModelChecks.SftStepsMatch(fixture.Device.Accelerator, pr, steps: 2, tolerance: 1e-3);
    }
}
