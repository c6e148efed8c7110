using Raft.Model;

namespace Raft.Gpu.Tests;

/// <summary>
/// The device model on ILGPU's CPU accelerator against <see cref="LlamaModel"/> for every feature it computes: o_proj and
/// MLP biases, sliding windows (Mistral's on every layer, Qwen2's from max_window_layers on), each RoPE variant (dynamic
/// NTK past max_position_embeddings included), Qwen3's per-head q/k RMSNorm with a decoupled head_dim; forward, gradients
/// and SFT steps.
/// </summary>
[Collection(CpuAcceleratorCollection.Name)]
public sealed class GpuFamilyTests(CpuAcceleratorFixture fixture)
{
    private readonly ILGPU.Runtime.Accelerator _acc = fixture.Device.Accelerator;

    public static TheoryData<string> Features() =>
        ["llama attention_bias + mlp_bias", "mistral window 3", "qwen2 window 2 from layer 1", "rope linear", "rope dynamic", "rope llama3", "rope yarn",
         "qwen3 head_dim 6", "qwen3 yarn + window"];

    private static Problem For(string feature)
    {
        var pr = Problem.Random(tied: feature.Contains("yarn"), bias: feature.StartsWith("qwen2"), seqLen: 9);
        var c = pr.Config with { MaxPositionEmbeddings = 64 };
        c = feature switch
        {
            "llama attention_bias + mlp_bias" => c with { AttentionBias = true, MlpBias = true },
            "mistral window 3" => c with { ModelType = "mistral", AttentionBias = null, SlidingWindow = 3 },
            "qwen2 window 2 from layer 1" => c with { UseSlidingWindow = true, SlidingWindow = 2, MaxWindowLayers = 1 },
            "rope linear" => c with { RopeScaling = new() { RopeType = "linear", Factor = 2.5 } },
            "rope dynamic" => c with { MaxPositionEmbeddings = 4, RopeScaling = new() { RopeType = "dynamic", Factor = 3 } },
            "rope llama3" => c with { MaxPositionEmbeddings = 32, RopeScaling = new() { RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 4 } },
            "rope yarn" => c with { MaxPositionEmbeddings = 16, RopeScaling = new() { RopeType = "yarn", Factor = 4, OriginalMaxPositionEmbeddings = 4 } },
            "qwen3 head_dim 6" => c with { ModelType = "qwen3", AttentionBias = null, HeadDimOverride = 6 },
            "qwen3 yarn + window" => c with
            {
                ModelType = "qwen3", AttentionBias = true, HeadDimOverride = 8, UseSlidingWindow = true, SlidingWindow = 3, MaxWindowLayers = 1,
                RopeScaling = new() { RopeType = "yarn", Factor = 2, OriginalMaxPositionEmbeddings = 4 },
            },
            _ => throw new ArgumentException(feature),
        };
        return pr with { Config = c, Parameters = RandomData.RandomParameters(c, new Random(pr.Seed)) };
    }

    [Theory, MemberData(nameof(Features))]
    public void ForwardMatchesCpuModel(string feature) => ModelChecks.ForwardMatches(_acc, For(feature));

    [Theory, MemberData(nameof(Features))]
    public void GradientsMatchCpuModel(string feature) => ModelChecks.GradientsMatch(_acc, For(feature));

    [Theory]
    [InlineData("llama attention_bias + mlp_bias")]
    [InlineData("mistral window 3")]
    [InlineData("qwen3 yarn + window")]
    public void SftStepsMatchCpuTrainer(string feature) => ModelChecks.SftStepsMatch(_acc, For(feature));

    [Fact]
    public void DynamicRopeTablesFollowTheSequenceLength()
    {
        // T = 3 ≤ max_position_embeddings (4): the plain frequencies; T = 9: rescaled; back to T = 3: plain again
        var pr = For("rope dynamic");
        var cpu = new LlamaModel(pr.Config, pr.Parameters.Clone()) { Threads = 1 };
        using var gpu = new GpuLlamaModel(_acc, pr.Config, pr.Parameters);
        foreach (int t in new[] { 3, 9, 3 })
        {
            var tokens = pr.Tokens.AsSpan(0, pr.Batch * t).ToArray();
            gpu.Forward(tokens, pr.Batch, t);
            ModelChecks.AssertClose(gpu.DownloadLogits(), cpu.Forward(tokens, pr.Batch, t), 1e-5, $"logits at T {t} ({pr})");
        }
    }
}
