using Raft.Model;

namespace Raft.Gpu.Tests;

/// <summary>
/// LoRA adapters on the device model (ILGPU's CPU accelerator, the same kernel code as CUDA) against the CPU model
/// with the same adapters: forward, adapter gradients, finite differences, SFT steps with AdamW over the adapters only,
/// the frozen base's bits, and the refusals.
/// </summary>
[Collection(CpuAcceleratorCollection.Name)]
public sealed class GpuLoraTests(CpuAcceleratorFixture fixture)
{
    private readonly ILGPU.Runtime.Accelerator _acc = fixture.Device.Accelerator;

    public static TheoryData<bool, bool, string> Cases() => new()
    {
        { false, false, "all-linear" },
        { true, true, "all-linear" },
        { false, true, "q_proj,v_proj" },          // PEFT's default
        { true, false, "k_proj,o_proj,up_proj" },  // layer 0's q/v not wrapped: the backward still reaches k
        { false, false, "gate_proj,down_proj" },   // no attention adapter at all
    };

    [Theory, MemberData(nameof(Cases))]
    public void ForwardMatchesCpuModelWithAdapters(bool tied, bool bias, string targets) =>
        LoraChecks.ForwardMatches(_acc, Problem.Random(tied, bias), LoraChecks.Config(targets));

    [Fact]
    public void ForwardMatchesDoubleReferenceWithAdapters()
    {
        var pr = Problem.Random(tied: false, bias: true);
        var lc = LoraChecks.Config(rank: 2, alpha: 5);
        var adapters = LoraChecks.RandomAdapters(pr.Config, lc, pr.Seed);
        var reference = new ReferenceModel(pr.Config, pr.Parameters);
        reference.AttachLora(adapters);
        var expected = Array.ConvertAll(reference.Forward(pr.Tokens, pr.Batch, pr.SeqLen, out _), x => (float)x);
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters, adapters);
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        ModelChecks.AssertClose(gpu.DownloadLogits(), expected, 1e-5, $"LoRA logits vs reference ({pr})");
    }

    [Theory, MemberData(nameof(Cases))]
    public void AdapterGradientsMatchCpuModel(bool tied, bool bias, string targets) =>
        LoraChecks.GradientsMatch(_acc, Problem.Random(tied, bias), LoraChecks.Config(targets));

    [Fact]
    public void Qwen3QkNormWithPartialTargets()
    {
        var pr = Problem.Random(tied: false, bias: false);
        pr = pr with { Config = pr.Config with { ModelType = "qwen3", AttentionBias = null } };
        pr = pr with { Parameters = RandomData.RandomParameters(pr.Config, new Random(pr.Seed)) };
        Assert.True(pr.Config.QkNorm);
        var lc = LoraChecks.Config("q_proj,v_proj,down_proj", rank: 2, alpha: 16);
        LoraChecks.ForwardMatches(_acc, pr, lc);
        LoraChecks.GradientsMatch(_acc, pr, lc);
    }

    [Fact]
    public void AdapterGradientMatchesFiniteDifferences()
    {
        var pr = Problem.Random(tied: false, bias: true, batch: 2, seqLen: 5);
        var lc = LoraChecks.Config(rank: 2, alpha: 5);
        var adapters = LoraChecks.RandomAdapters(pr.Config, lc, pr.Seed);
        var r = pr.RandomDLogits();   // L = Σ r ⊙ logits, summed in double on the host
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters, adapters);
        gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
        gpu.Backward(r);
        var grads = adapters.Parameters.ZerosLike();
        gpu.DownloadGradients(grads);
        var rng = new Random(pr.Seed);
        var probe = adapters.Parameters.Clone();
        string[] names = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.1.self_attn.v_proj",
            "model.layers.0.self_attn.o_proj", "model.layers.1.mlp.gate_proj", "model.layers.0.mlp.up_proj", "model.layers.1.mlp.down_proj"];
        foreach (string module in names)
            foreach (string ab in new[] { "lora_A", "lora_B" })
            {
                string name = $"base_model.model.{module}.{ab}.weight";
                var t = probe[name];
                int i = rng.Next(t.Length);
                float keep = t.Data[i];
                double Loss(float value)
                {
                    t.Data[i] = value;
                    gpu.UploadAdapters(probe);
                    gpu.Forward(pr.Tokens, pr.Batch, pr.SeqLen);
                    var logits = gpu.DownloadLogits();
                    double l = 0;
                    for (int j = 0; j < logits.Length; j++) l += (double)r[j] * logits[j];
                    return l;
                }
                // central differences at h and h/2, Richardson-extrapolated, as the base model's check
                const float h = 2e-2f;
                double D(float step) => (Loss(keep + step) - Loss(keep - step)) / ((double)(keep + step) - (keep - step));
                double fd = (4 * D(h / 2) - D(h)) / 3;
                t.Data[i] = keep;
                double g = grads[name].Data[i];
                Assert.True(Math.Abs(fd - g) <= 2e-2 * Math.Max(Math.Abs(g), 0.1), $"{name}[{i}]: finite difference {fd} vs gradient {g} ({pr})");
            }
    }

    [Fact]
    public void AdapterGradientsAreTheSameBitsEveryRun() => LoraChecks.GradientsAreDeterministic(_acc);

    [Theory]
    [InlineData(false, true, "all-linear", false)]
    [InlineData(true, false, "q_proj,v_proj", false)]
    [InlineData(true, true, "all-linear", true)]   // PEFT's init: B = 0, so A's first gradient is exactly 0 on both sides
    public void SftStepsOfTheAdaptersMatchCpuTrainer(bool tied, bool bias, string targets, bool peftInit) =>
        LoraChecks.SftStepsMatch(_acc, Problem.Random(tied, bias), LoraChecks.Config(targets), peftInit: peftInit);

    [Fact]
    public void UnsupportedLoraSettingsAreRefusedByName()
    {
        var pr = Problem.Random(tied: true, bias: false);
        var dropout = LoraAdapters.Create(DecoderLayout.For(pr.Config), LoraChecks.Config() with { Dropout = 0.1 }, 1);
        var e = Assert.Throws<NotSupportedException>(() => new GpuLlamaModel(_acc, pr.Config, pr.Parameters, dropout));
        Assert.Contains("lora_dropout = 0.1", e.Message);

        var adapters = LoraAdapters.Create(DecoderLayout.For(pr.Config), LoraChecks.Config(), 1);
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters, adapters);
        Assert.Contains("lora_rank", Assert.Throws<InvalidOperationException>(() => gpu.SetTrainable(_ => true)).Message);
        var wrong = adapters.Parameters.ZerosLike();
        var first = wrong.Tensors[0];
        var shrunk = new TensorSet();
        foreach (var t in wrong.Tensors) shrunk.Add(t == first ? Tensor.Zeros(t.Name, t.Shape[0] + 1, t.Shape[1]) : t);
        var shape = Assert.Throws<ArgumentException>(() => gpu.UploadAdapters(shrunk));
        Assert.Contains(first.Name, shape.Message);

        using var plain = new GpuLlamaModel(_acc, pr.Config, pr.Parameters);
        Assert.Null(plain.Lora);
        Assert.Throws<InvalidOperationException>(() => plain.DownloadAdapters(adapters.Parameters.ZerosLike()));

        // a model that holds 16-bit matrices (a bf16 LoRA base)
        var layout = DecoderLayout.For(pr.Config);
        var small = new TensorSet();
        var halves = new List<HalfMatrix>();
        foreach (var t in pr.Parameters.Tensors)
            if (layout.Tensors.Any(s => s.Name == t.Name && s.Role == TensorRole.Matrix)) halves.Add(HalfMatrix.FromSingle(t, SafeTensorDType.BF16));
            else small.Add(t);
        var half = new LlamaModel(pr.Config, small, halves) { Lora = adapters };
        Assert.Contains("bf16", Assert.Throws<NotSupportedException>(() => new GpuLlamaModel(_acc, half)).Message);
    }
}
