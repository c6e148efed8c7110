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

/// <summary>The exporter's file read back with <see cref="GgufReader"/>: every checkpoint tensor is there, bit for bit in F32.</summary>
public class GgufExportRoundTripTests
{
    [Theory]
    [InlineData("llama")]
    [InlineData("qwen3")]
    public void Every_tensor_reads_back_exactly_with_q_k_permuted_only_for_llama(string type)
    {
        var config = new ModelConfig
        {
            ModelType = type, HiddenSize = 24, IntermediateSize = 40, NumHiddenLayers = 2, NumAttentionHeads = 3,
            NumKeyValueHeads = 1, HeadDimOverride = 10, VocabSize = 50, MaxPositionEmbeddings = 64,
            AttentionBias = type == "llama" ? true : null, MlpBias = type == "llama" ? true : null,
        };
        var weights = RandomData.RandomParameters(config, 17);
        var vocab = new GgufVocabulary { Model = "gpt2", Pre = "gpt2", Tokens = Enumerable.Range(0, 50).Select(i => $"t{i}").ToArray(), TokenTypes = Enumerable.Repeat(1, 50).ToArray(), Merges = [] };
        var (md, tensors) = GgufExporter.Build(config, weights, vocab, GgmlType.F32);
        using var dir = new TempDirectory();
        string path = dir.File("x.gguf");
        GgufWriter.Write(path, md, tensors);
        var r = GgufReader.Open(path);
        Assert.Equal(10, r[$"{type}.attention.key_length"].AsInteger());
        Assert.Equal(md.Count, r.Metadata.Count);

        var layout = DecoderLayout.For(config);
        // llama.cpp name of every Hugging Face tensor; the checkpoint's values, q/k rows un-permuted for llama
        var map = new Dictionary<string, string> { [layout.Embedding.Name] = "token_embd.weight", [layout.FinalNorm.Name] = "output_norm.weight" };
        if (layout.LmHead is { } h) map[h.Name] = "output.weight";
        foreach (var l in layout.Layers)
        {
            string p = $"blk.{l.Index}.";
            map[l.InputNorm] = p + "attn_norm.weight"; map[l.QProj] = p + "attn_q.weight"; map[l.KProj] = p + "attn_k.weight";
            map[l.VProj] = p + "attn_v.weight"; map[l.OProj] = p + "attn_output.weight"; map[l.PostAttentionNorm] = p + "ffn_norm.weight";
            map[l.GateProj] = p + "ffn_gate.weight"; map[l.UpProj] = p + "ffn_up.weight"; map[l.DownProj] = p + "ffn_down.weight";
            if (l.QBias is not null) { map[l.QBias] = p + "attn_q.bias"; map[l.KBias!] = p + "attn_k.bias"; map[l.VBias!] = p + "attn_v.bias"; }
            if (l.OBias is not null) map[l.OBias] = p + "attn_output.bias";
            if (l.GateBias is not null) { map[l.GateBias] = p + "ffn_gate.bias"; map[l.UpBias!] = p + "ffn_up.bias"; map[l.DownBias!] = p + "ffn_down.bias"; }
            if (l.QNorm is not null) { map[l.QNorm] = p + "attn_q_norm.weight"; map[l.KNorm!] = p + "attn_k_norm.weight"; }
        }
        Assert.Equal(layout.Tensors.Count, map.Count);
        Assert.Equal(map.Count, r.Tensors.Count);
        foreach (var spec in layout.Tensors)
        {
            Assert.True(r.TryGetTensor(map[spec.Name], out var info), $"{map[spec.Name]} missing");
            Assert.Equal(spec.Shape.Reverse().Select(d => (long)d), info.Dims);
            float[] got = r.ReadTensor(info.Name);
            bool permuted = type == "llama" && (info.Name.Contains("attn_q.", StringComparison.Ordinal) || info.Name.Contains("attn_k.", StringComparison.Ordinal));
            if (permuted) got = UndoPermutation(got, info.Name.Contains("attn_q.", StringComparison.Ordinal) ? 3 : 1, 10, spec.Shape.Length == 2 ? 24 : 1);
            float[] want = weights[spec.Name].Data;
            for (int i = 0; i < want.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(got[i]), $"{spec.Name}[{i}]: {want[i]} vs {got[i]}");
        }
    }

    /// <summary>The inverse of <see cref="GgufExporter.PermuteHalvesToPairs"/>, written independently: old row j·d/2 + i ← new row 2i + j.</summary>
    private static float[] UndoPermutation(float[] data, int heads, int hd, int cols)
    {
        var r = new float[data.Length];
        for (int h = 0; h < heads; h++)
            for (int row = 0; row < hd; row++)
            {
                int i = row / 2, j = row % 2;
                Array.Copy(data, (h * hd + row) * cols, r, (h * hd + j * (hd / 2) + i) * cols, cols);
            }
        return r;
    }
}
