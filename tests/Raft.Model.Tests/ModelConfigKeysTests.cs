namespace Raft.Model.Tests;

/// <summary>
/// config.json keys: the families' real configs load with the features they name; every key that changes the math and is
/// not computed, and every unknown key, is refused by name (key, value and file in the message).
/// </summary>
public class ModelConfigKeysTests
{
    private static ModelConfig LoadJson(string json, out string path)
    {
        var dir = Directory.CreateTempSubdirectory("raft-config-");
        path = Path.Combine(dir.FullName, "config.json");
        File.WriteAllText(path, json);
        return ModelConfig.Load(path);
    }

    // trimmed from the published config.json files (the shape shrunk; every other key kept as published)
    private const string SmolLm2 = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 1,
         "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.041666666666666664,
         "intermediate_size": 96, "is_llama_config": true, "max_position_embeddings": 8192, "mlp_bias": false,
         "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
         "pad_token_id": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null,
         "rope_theta": 100000, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3",
         "use_cache": true, "vocab_size": 49}
        """;

    private const string Llama32 = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
         "eos_token_id": [128001, 128008, 128009], "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
         "initializer_range": 0.02, "intermediate_size": 96, "max_position_embeddings": 131072, "mlp_bias": false,
         "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
         "pretraining_tp": 1, "rms_norm_eps": 1e-05,
         "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.45.0.dev0",
         "use_cache": true, "vocab_size": 50}
        """;

    private const string Qwen25 = """
        {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
         "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 96,
         "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 4,
         "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
         "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.43.1",
         "use_cache": true, "use_sliding_window": false, "vocab_size": 50}
        """;

    private const string Qwen3 = """
        {"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
         "eos_token_id": 151645, "head_dim": 32, "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
         "intermediate_size": 96, "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
         "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
         "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
         "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
         "vocab_size": 50}
        """;

    private const string Mistral = """
        {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
         "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 96, "max_position_embeddings": 32768,
         "model_type": "mistral", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
         "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
         "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 50}
        """;

    [Fact]
    public void TheFamiliesPublishedConfigsLoadWithTheirFeatures()
    {
        var smol = LoadJson(SmolLm2, out _);
        Assert.False(DecoderLayout.For(smol).Layers[0].Features.OutputBias);
        var llama = DecoderLayout.For(LoadJson(Llama32, out _));
        Assert.Equal(RopeType.Llama3, llama.Rope.Type);
        Assert.Equal(16, llama.HeadDim);
        var qwen25 = DecoderLayout.For(LoadJson(Qwen25, out _));
        Assert.All(qwen25.Layers, l => Assert.True(l.Features.QkvBias && l.Features.SlidingWindow is null && !l.Features.OutputBias));
        var qwen3 = DecoderLayout.For(LoadJson(Qwen3, out _));
        Assert.All(qwen3.Layers, l => Assert.True(l.Features.QkNorm && !l.Features.QkvBias && l.Features.SlidingWindow is null));
        Assert.Equal(32, qwen3.HeadDim);
        var mistral = DecoderLayout.For(LoadJson(Mistral, out _));
        Assert.All(mistral.Layers, l => Assert.Equal(4096, l.Features.SlidingWindow));
    }

    [Fact]
    public void AbsentKeysTakeTheFamilysHuggingFaceDefaults()
    {
        string Without(string json, params string[] keys)
        {
            var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
            foreach (var k in keys) node.Remove(k);
            return node.ToJsonString();
        }
        var mistral = LoadJson(Without(Mistral, "sliding_window", "max_position_embeddings"), out _);
        Assert.Equal(4096, mistral.SlidingWindow);
        Assert.Equal(131072, mistral.MaxPositionEmbeddings);
        var qwen3 = LoadJson(Without(Qwen3, "head_dim"), out _);
        Assert.Equal(128, qwen3.HeadDim);
        Assert.Null(LoadJson(Mistral.Replace("\"sliding_window\": 4096", "\"sliding_window\": null"), out _).SlidingWindow);
    }

    public static TheoryData<string, string, string> Refusals() => new()
    {
        // (base config, "key": value to add or replace, the key the refusal names)
        { SmolLm2, "\"model_type\": \"gemma\"", "model_type" },
        { SmolLm2, "\"hidden_act\": \"gelu_pytorch_tanh\"", "hidden_act" },
        { SmolLm2, "\"partial_rotary_factor\": 0.5", "partial_rotary_factor" },
        { SmolLm2, "\"attention_dropout\": 0.1", "attention_dropout" },
        { SmolLm2, "\"rope_interleaved\": true", "rope_interleaved" },
        { SmolLm2, "\"sliding_window\": 128", "sliding_window" },
        { SmolLm2, "\"quantization_config\": {\"quant_method\": \"gptq\"}", "quantization_config" },
        { SmolLm2, "\"some_new_key\": 3", "some_new_key" },
        { SmolLm2, "\"rope_scaling\": {\"rope_type\": \"longrope\", \"long_factor\": [1], \"short_factor\": [1]}", "rope_scaling.rope_type" },
        { SmolLm2, "\"rope_scaling\": {\"type\": \"su\", \"factor\": 2.0}", "rope_scaling.type" },
        { SmolLm2, "\"rope_scaling\": {\"rope_type\": \"linear\"}", "rope_scaling.factor" },
        { SmolLm2, "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2.0, \"beta_fast\": 32}", "rope_scaling.beta_fast" },
        { SmolLm2, "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2.0, \"ntk_alpha\": 1}", "rope_scaling.ntk_alpha" },
        { SmolLm2, "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192}", "rope_scaling.high_freq_factor" },
        { SmolLm2, "\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.0, \"original_max_position_embeddings\": 4096}", "rope_scaling.original_max_position_embeddings" },
        { SmolLm2, "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": -1.0}", "rope_scaling.factor" },
        { Qwen25, "\"attention_bias\": false", "attention_bias" },
        { Qwen25, "\"mlp_bias\": true", "mlp_bias" },
        { Qwen25, "\"layer_types\": [\"sliding_attention\", \"full_attention\"]", "layer_types" },
        { Qwen3, "\"layer_types\": [\"full_attention\"]", "layer_types" },
        { Mistral, "\"attention_bias\": true", "attention_bias" },
        { Mistral, "\"use_sliding_window\": true", "use_sliding_window" },
        { Mistral, "\"sliding_window\": 0", "sliding_window" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void MathChangingKeysThatAreNotComputedAreRefusedByName(string json, string entry, string key)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
        var added = System.Text.Json.Nodes.JsonNode.Parse("{" + entry + "}")!.AsObject();
        foreach (var (k, v) in added.ToList()) { added.Remove(k); node[k] = v; }
        var e = Assert.Throws<UnsupportedConfigException>(() => LoadJson(node.ToJsonString(), out _));
        Assert.Equal(key, e.Key);
        Assert.Contains($"config.json key {key} = ", e.Message);
        Assert.NotNull(e.ConfigFile);
        Assert.Contains(e.ConfigFile!, e.Message);
        Assert.EndsWith("config.json", e.ConfigFile);
    }

    [Fact]
    public void EveryListedKeyIsInOneListOnly()
    {
        var honoured = ModelConfigKeys.Honoured.Keys.ToHashSet();
        Assert.Empty(honoured.Intersect(ModelConfigKeys.Inert));
        Assert.Empty(honoured.Intersect(ModelConfigKeys.Refused.Keys));
        Assert.Empty(ModelConfigKeys.Inert.Intersect(ModelConfigKeys.Refused.Keys));
        // every property ModelConfig reads is listed as honoured or inert
        var read = typeof(ModelConfig).GetProperties()
            .Select(p => p.GetCustomAttributes(typeof(System.Text.Json.Serialization.JsonPropertyNameAttribute), false)
                .Cast<System.Text.Json.Serialization.JsonPropertyNameAttribute>().SingleOrDefault()?.Name)
            .Where(n => n is not null).ToList();
        Assert.NotEmpty(read);
        Assert.All(read, n => Assert.True(honoured.Contains(n!) || ModelConfigKeys.Inert.Contains(n!), $"{n} is in no list"));
    }

    [Fact]
    public void RoundTripsThroughToJson()
    {
        var c = LoadJson(Llama32, out _);
        var again = LoadJson(c.ToJson(), out _);
        Assert.Equal(c.RopeScaling, again.RopeScaling);
        Assert.Equal(c.HeadDimOverride, again.HeadDimOverride);
        Assert.Equal(DecoderLayout.For(c).Rope.InverseFrequencies(100), DecoderLayout.For(again).Rope.InverseFrequencies(100));
    }
}
