using Raft.Model;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

/// <summary>
/// The ONNX export of every family feature against the engine's <see cref="LlamaModel"/>, through ONNX Runtime: o_proj
/// and MLP biases, Qwen3's per-head q/k norm with a decoupled head_dim, sliding windows (full forward and KV-cached
/// decode), the static RoPE variants at positions past the original context; dynamic NTK is refused by name.
/// </summary>
public class OnnxFamilyTests
{
    private static ModelConfig Feature(string name)
    {
        var c = Tiny(tied: false, bias: false);
        return name switch
        {
            "llama attention_bias + mlp_bias" => c with { AttentionBias = true, MlpBias = true },
            "mistral window 3" => c with { ModelType = "mistral", AttentionBias = null, SlidingWindow = 3 },
            "qwen2 window 2 from layer 1" => c with { ModelType = "qwen2", AttentionBias = null, UseSlidingWindow = true, SlidingWindow = 2, MaxWindowLayers = 1 },
            "qwen3 head_dim 6 + attention_bias" => c with { ModelType = "qwen3", HeadDimOverride = 6, AttentionBias = true, TieWordEmbeddings = true },
            "rope linear" => c with { RopeScaling = new() { RopeType = "linear", Factor = 2.5 } },
            "rope llama3" => c with { RopeScaling = new() { RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 4 } },
            "rope yarn" => c with { RopeScaling = new() { RopeType = "yarn", Factor = 4, OriginalMaxPositionEmbeddings = 4 } },
            "qwen3 yarn + window (rope_parameters)" => c with
            {
                ModelType = "qwen3", HeadDimOverride = 8, UseSlidingWindow = true, SlidingWindow = 3, MaxWindowLayers = 0,
                RopeParameters = new() { RopeType = "yarn", Factor = 2, RopeTheta = 500, AttentionFactor = 1.3 },
            },
            _ => throw new ArgumentException(name),
        };
    }

    public static TheoryData<string> Features() =>
    [
        "llama attention_bias + mlp_bias", "mistral window 3", "qwen2 window 2 from layer 1", "qwen3 head_dim 6 + attention_bias",
        "rope linear", "rope llama3", "rope yarn", "qwen3 yarn + window (rope_parameters)",
    ];

    [Theory, MemberData(nameof(Features))]
    public void ExportedModelGivesTheEngineLogits(string name)
    {
        var config = Feature(name);
        var weights = RandomParameters(config, seed: name.Length);
        const int batch = 2, seq = 9;
        int[] tokens = RandomTokens(batch * seq, config.VocabSize, seed: 5);
        // positions 4..12 and 9..17: past the original context of the scaled variants
        int[] pos = Enumerable.Range(0, batch * seq).Select(i => 4 + i / seq * 5 + i % seq).ToArray();
        float[] expected = new LlamaModel(config, weights).Forward(tokens, batch, seq, positions: pos);
        using var dir = new TempDirectory();
        OnnxExporter.Export(config, weights, dir.Path);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        float[] actual = teacher.Forward(Array.ConvertAll(tokens, t => (long)t), batch, seq,
            attentionMask: Enumerable.Repeat(1L, batch * seq).ToArray(), positionIds: Array.ConvertAll(pos, p => (long)p));
        double e = Tolerances.MaxRelErrorFp32(actual, expected);
        Assert.True(e < 1e-4, $"{name}: relative error {e}");
    }

    [Theory]
    [InlineData("mistral window 3")]
    [InlineData("qwen3 yarn + window (rope_parameters)")]
    public void PrefillThenDecodeEqualsTheFullSequenceWithAWindow(string name)
    {
        var config = Feature(name);
        AssertKvDecodeEqualsFullForward(config, RandomParameters(config, seed: 3), batch: 2, seq: 9, prompt: 3, name);
    }

    [Fact]
    public void DynamicRopeIsRefusedByName()
    {
        var config = Tiny(false, false) with { RopeScaling = new() { RopeType = "dynamic", Factor = 2 } };
        using var dir = new TempDirectory();
        var e = Assert.Throws<UnsupportedConfigException>(() => OnnxExporter.Export(config, RandomParameters(config, 1), dir.Path));
        Assert.Equal("rope_scaling.rope_type", e.Key);
        Assert.False(File.Exists(Path.Combine(dir.Path, "model.onnx")));
    }
}
