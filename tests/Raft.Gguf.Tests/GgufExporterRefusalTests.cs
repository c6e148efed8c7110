using Raft.Model;
using Raft.Model.Gguf;

namespace Raft.Gguf.Tests;

/// <summary>What the export cannot carry so that llama.cpp computes the same is refused, naming the config key and value.</summary>
public class GgufExporterRefusalTests
{
    private static ModelConfig Base(string type) => new()
    {
        ModelType = type, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 2,
        NumKeyValueHeads = 1, VocabSize = 40, MaxPositionEmbeddings = 128, RopeTheta = 10000, RmsNormEps = 1e-6,
    };

    public static TheoryData<string, ModelConfig, string, string> Refused() => new()
    {
        { "mistral's window", Base("mistral") with { SlidingWindow = 4096 }, "sliding_window", "4096" },
        { "qwen2's window", Base("qwen2") with { SlidingWindow = 32, UseSlidingWindow = true, MaxWindowLayers = 0 }, "sliding_window", "32" },
        { "dynamic NTK", Base("llama") with { RopeScaling = new RopeScalingConfig { RopeType = "dynamic", Factor = 2 } }, "rope_scaling.rope_type", "\"dynamic\"" },
        { "llama3 rope on qwen2", Base("qwen2") with { RopeScaling = new RopeScalingConfig { RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 64 } }, "rope_scaling.rope_type", "\"llama3\"" },
        { "yarn β_fast", Base("qwen2") with { RopeScaling = new RopeScalingConfig { RopeType = "yarn", Factor = 4, BetaFast = 16 } }, "rope_scaling.beta_fast", "16" },
        { "yarn without truncation", Base("qwen2") with { RopeScaling = new RopeScalingConfig { RopeType = "yarn", Factor = 4, Truncate = false } }, "rope_scaling.truncate", "false" },
        { "yarn attention factor", Base("qwen2") with { RopeScaling = new RopeScalingConfig { RopeType = "yarn", Factor = 4, AttentionFactor = 2 } }, "rope_scaling.attention_factor", "2" },
        { "qwen3 biases", Base("qwen3") with { HeadDimOverride = 8, AttentionBias = true }, "attention_bias", "true" },
        { "raft byte models", Base("raft"), "model_type", "\"raft\"" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void Refused_naming_key_and_value(string what, ModelConfig config, string key, string value)
    {
        var e = Assert.Throws<UnsupportedConfigException>(() => GgufExporter.CheckRepresentable(config));
        Assert.True(e.Key == key, $"{what}: refused {e.Key}, expected {key} ({e.Message})");
        Assert.StartsWith(value, e.Value);
        Assert.Contains($"{key} = {e.Value}", e.Message);
    }

    public static TheoryData<string, ModelConfig> Accepted() => new()
    {
        { "llama", Base("llama") with { AttentionBias = true, MlpBias = true } },
        { "mistral without a window", Base("mistral") },
        { "qwen2 with a window not in use", Base("qwen2") with { SlidingWindow = 32, UseSlidingWindow = false } },
        { "qwen3", Base("qwen3") with { HeadDimOverride = 8 } },
        { "linear rope", Base("qwen2") with { RopeScaling = new RopeScalingConfig { RopeType = "linear", Factor = 2 } } },
        { "llama3 rope", Base("llama") with { RopeScaling = new RopeScalingConfig { RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 64 } } },
        { "yarn", Base("qwen3") with { HeadDimOverride = 8, RopeScaling = new RopeScalingConfig { RopeType = "yarn", Factor = 4, OriginalMaxPositionEmbeddings = 32 } } },
    };

    [Theory]
    [MemberData(nameof(Accepted))]
    public void Accepted_configs_pass(string what, ModelConfig config)
    {
        GgufExporter.CheckRepresentable(config);
        Assert.NotNull(what);
    }

    [Fact]
    public void Llama3_rope_freqs_are_the_divisors_of_the_default_frequencies()
    {
        // rope_freqs[i] = θ^(−2i/d) / inv_freq_i: 1 for the kept high frequencies, the factor for the interpolated low
        // ones, Hugging Face's smooth mix between (checked here against the band formula written out)
        var config = Base("llama") with { HeadDimOverride = 16, RopeTheta = 500000, RopeScaling = new RopeScalingConfig { RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 64 } };
        var weights = RandomData.RandomParameters(config, 1);
        var vocab = new GgufVocabulary { Model = "gpt2", Pre = "gpt2", Tokens = Enumerable.Range(0, 40).Select(i => $"t{i}").ToArray(), TokenTypes = new int[40] };
        var (_, tensors) = GgufExporter.Build(config, weights, vocab, GgmlType.F32);
        float[] f = tensors.Single(t => t.Name == "rope_freqs.weight").Data;
        Assert.Equal(8, f.Length);
        bool one = false, factor = false, between = false;
        for (int i = 0; i < 8; i++)
        {
            double inv = Math.Pow(500000, -2.0 * i / 16), wavelen = 2 * Math.PI / inv;
            double expected = wavelen < 64 / 4.0 ? 1 : wavelen > 64 / 1.0 ? 8 : 1 / ((1 - (64 / wavelen - 1) / 3) / 8 + (64 / wavelen - 1) / 3);
            Assert.Equal(expected, f[i], 5);
            one |= expected == 1; factor |= expected == 8; between |= expected is > 1 and < 8;
        }
        Assert.True(one && factor && between, "the case does not cover all three bands");
    }
}
