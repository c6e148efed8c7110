using System.Text.Json.Nodes;

namespace Raft.Model.Tests;

/// <summary>PEFT's adapter layout: adapter_config.json's keys and adapter_model.safetensors' names, shapes and values.</summary>
public sealed class LoraFilesTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raft-lora-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static LoraAdapters Trained(ModelConfig c, LoraConfig lc, int seed)
    {
        var a = LoraAdapters.Create(DecoderLayout.For(c), lc, (ulong)seed);
        var rng = new Random(seed);
        foreach (var t in a.Parameters.Tensors)
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)Gauss.Next(rng);
        return a;
    }

    [Fact]
    public void RoundTripIsBitExactWithPeftNamesShapesAndKeys()
    {
        var c = TestUtil.Tiny(tied: false, bias: true);
        var lc = new LoraConfig { Rank = 4, Alpha = 16, Dropout = 0.05, TargetModules = ["q_proj", "v_proj", "down_proj"] };
        var a = Trained(c, lc, 3);
        LoraFiles.Save(_dir, a, "HuggingFaceTB/SmolLM2-135M-Instruct");

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, LoraFiles.ConfigFile)))!.AsObject();
        Assert.Equal("LORA", (string?)json["peft_type"]);
        Assert.Equal("CAUSAL_LM", (string?)json["task_type"]);
        Assert.Equal("none", (string?)json["bias"]);
        Assert.Equal(4, (int)json["r"]!);
        Assert.Equal(16.0, (double)json["lora_alpha"]!);
        Assert.Equal(0.05, (double)json["lora_dropout"]!);
        Assert.False((bool)json["fan_in_fan_out"]!);
        Assert.False((bool)json["use_rslora"]!);
        Assert.False((bool)json["use_dora"]!);
        Assert.Equal("HuggingFaceTB/SmolLM2-135M-Instruct", (string?)json["base_model_name_or_path"]);
        Assert.Equal(["q_proj", "v_proj", "down_proj"], json["target_modules"]!.AsArray().Select(n => (string)n!));

        using (var f = SafeTensorsFile.Open(Path.Combine(_dir, LoraFiles.WeightsFile)))
        {
            var names = f.Tensors.Select(t => t.Name).ToHashSet();
            Assert.Equal(2 * 3 * 2, names.Count);
            var qa = f["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"];
            Assert.Equal([4L, 16L], qa.Shape);
            Assert.Equal("F32", qa.DType);
            Assert.Equal([16L, 4L], f["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"].Shape);   // q: H·hd = 16
            Assert.Equal([8L, 4L], f["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"].Shape);    // v: KV·hd = 8
            Assert.Equal([4L, 24L], f["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"].Shape);
            Assert.Equal([16L, 4L], f["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"].Shape);
        }

        var back = LoraFiles.Load(_dir, DecoderLayout.For(c));
        Assert.Equal(lc.Rank, back.Config.Rank);
        Assert.Equal(lc.Alpha, back.Config.Alpha);
        Assert.Equal(lc.Dropout, back.Config.Dropout);
        Assert.Equal(lc.TargetModules, back.Config.TargetModules);
        TestModels.AssertBitEqual(a.Parameters, back.Parameters);
    }

    [Theory]
    [InlineData("use_rslora", "true")]
    [InlineData("use_dora", "true")]
    [InlineData("bias", "\"all\"")]
    [InlineData("modules_to_save", "[\"lm_head\"]")]
    [InlineData("rank_pattern", "{\"q_proj\":4}")]
    [InlineData("alpha_pattern", "{\"q_proj\":4}")]
    [InlineData("init_lora_weights", "\"gaussian\"")]
    [InlineData("layers_to_transform", "[0]")]
    [InlineData("fan_in_fan_out", "true")]
    [InlineData("peft_type", "\"IA3\"")]
    [InlineData("task_type", "\"SEQ_CLS\"")]
    [InlineData("target_modules", "\".*proj\"")]
    [InlineData("target_modules", "[\"lm_head\"]")]
    [InlineData("r", "0")]
    [InlineData("lora_alpha", "\"x\"")]
    [InlineData("some_future_option", "1")]
    public void UnsupportedOptionsAreRefusedByName(string key, string value)
    {
        var c = TestUtil.Tiny(false, false);
        LoraFiles.Save(_dir, Trained(c, new LoraConfig { Rank = 2, Alpha = 4, TargetModules = ["q_proj"] }, 1), null);
        string path = Path.Combine(_dir, LoraFiles.ConfigFile);
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json[key] = JsonNode.Parse(value);
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.Throws<UnsupportedConfigException>(() => LoraFiles.Load(_dir, DecoderLayout.For(c)));
        Assert.Equal(key, e.Key);
        Assert.Contains(path, e.Message);
        Assert.StartsWith($"adapter_config.json key {key} = ", e.Message);
    }

    [Fact]
    public void PeftsSetOrderAndAllLinearAreRead()
    {
        var c = TestUtil.Tiny(false, false);
        LoraFiles.Save(_dir, Trained(c, new LoraConfig { Rank = 2, Alpha = 4, TargetModules = LoraConfig.ModuleNames }, 1), null);
        string path = Path.Combine(_dir, LoraFiles.ConfigFile);
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json["target_modules"] = JsonNode.Parse("\"all-linear\"");
        File.WriteAllText(path, json.ToJsonString());
        Assert.Equal(LoraConfig.ModuleNames, LoraFiles.ReadConfig(path).Config.TargetModules);
        json["target_modules"] = JsonNode.Parse("[\"v_proj\", \"q_proj\"]");
        File.WriteAllText(path, json.ToJsonString());
        Assert.Equal(["q_proj", "v_proj"], LoraFiles.ReadConfig(path).Config.TargetModules);
    }

    [Fact]
    public void MissingOrMisshapenTensorsAreNamed()
    {
        var c = TestUtil.Tiny(false, false);
        var a = Trained(c, new LoraConfig { Rank = 2, Alpha = 4, TargetModules = ["q_proj", "o_proj"] }, 1);
        LoraFiles.Save(_dir, a, null);
        // another model (3 layers): layer 2's tensors are missing
        var bigger = c with { NumHiddenLayers = 3 };
        var e = Assert.Throws<ArgumentException>(() => LoraFiles.Load(_dir, DecoderLayout.For(bigger)));
        Assert.Contains("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight is missing", e.Message);
        Assert.Contains(LoraFiles.WeightsFile, e.Message);
        File.Delete(Path.Combine(_dir, LoraFiles.WeightsFile));
        Assert.Throws<FileNotFoundException>(() => LoraFiles.Load(_dir, DecoderLayout.For(c)));
    }
}
