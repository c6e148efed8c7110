using System.Text.Json;

namespace Raft.Model.Tests;

public class CheckpointTests
{
    [Theory]
    [InlineData(false, "llama")]
    [InlineData(true, "llama")]
    [InlineData(false, "qwen2")]
    public void SaveLoadRoundTripIsBitExact(bool tied, string type)
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny(tied, type);
        var weights = TestModels.RandomWeights(config);
        string ckpt = Path.Combine(dir.Path, "step-1");
        Checkpoint.Save(ckpt, config, weights);

        var (c2, w2) = Checkpoint.Load(ckpt);
        Assert.Equal(config.HiddenSize, c2.HiddenSize);
        Assert.Equal(config.TieWordEmbeddings, c2.TieWordEmbeddings);
        Assert.Equal("float32", c2.TorchDtype);
        TestModels.AssertBitEqual(weights, w2);
        Assert.Equal(type == "qwen2", w2.TryGet("model.layers.0.self_attn.q_proj.bias", out _));
        // nothing but the checkpoint is left beside it
        Assert.Equal([ckpt], Directory.GetFileSystemEntries(dir.Path));
        Assert.Equal(["config.json", "model.safetensors"], Directory.GetFiles(ckpt).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void Bf16CheckpointsLoadRounded()
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny();
        var weights = TestModels.RandomWeights(config);
        Checkpoint.Save(dir.Path, config, weights, dtype: SafeTensorDType.BF16);
        var (c2, w2) = Checkpoint.Load(dir.Path);
        Assert.Equal("bfloat16", c2.TorchDtype);
        for (int i = 0; i < weights.Count; i++)
            for (int j = 0; j < weights.Tensors[i].Length; j++)
            {
                float x = weights.Tensors[i].Data[j];
                Assert.Equal(SafeTensorDTypes.BFloat16ToSingle(SafeTensorDTypes.SingleToBFloat16(x)), w2.Tensors[i].Data[j]);
            }
    }

    [Fact]
    public void TiedModelsIgnoreAStoredLmHead()
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny(tied: true);
        var weights = TestModels.RandomWeights(config);
        var withHead = weights.Tensors.Append(Tensor.Zeros("lm_head.weight", 11, 8)).ToList();
        File.WriteAllText(dir.File("config.json"), config.ToJson());
        SafeTensorsWriter.Write(dir.File("model.safetensors"), withHead);
        var (_, w2) = Checkpoint.Load(dir.Path);
        Assert.False(w2.TryGet("lm_head.weight", out _));
        TestModels.AssertBitEqual(weights, w2);
    }

    private static string WriteCheckpoint(TempDirectory dir, ModelConfig config, IEnumerable<Tensor> tensors)
    {
        File.WriteAllText(dir.File("config.json"), config.ToJson());
        string path = dir.File("model.safetensors");
        SafeTensorsWriter.Write(path, tensors);
        return path;
    }

    [Fact]
    public void MissingTensorNamesTensorAndFile()
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny();
        string path = WriteCheckpoint(dir, config, TestModels.RandomWeights(config).Tensors.Where(t => t.Name != "model.layers.1.mlp.up_proj.weight"));
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("model.layers.1.mlp.up_proj.weight", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void WrongShapeNamesTensorAndFile()
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny();
        var tensors = TestModels.RandomWeights(config).Tensors
            .Select(t => t.Name == "model.norm.weight" ? Tensor.Zeros(t.Name, 9) : t);
        string path = WriteCheckpoint(dir, config, tensors);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Contains("[9]", e.Message);
    }

    [Fact]
    public void UnexpectedTensorNamesTensorAndFile()
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny();
        string path = WriteCheckpoint(dir, config,
            TestModels.RandomWeights(config).Tensors.Append(Tensor.Zeros("model.layers.0.self_attn.q_norm.weight", 4)));
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("q_norm", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void TruncatedWeightsNameTensorAndFile()
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny();
        string path = WriteCheckpoint(dir, config, TestModels.RandomWeights(config).Tensors);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("lm_head.weight", e.Message); // the last tensor is the one cut
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void ShardedCheckpointsLoadThroughTheIndex()
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny();
        var weights = TestModels.RandomWeights(config);
        File.WriteAllText(dir.File("config.json"), config.ToJson());
        var first = weights.Tensors.Take(7).ToList();
        var second = weights.Tensors.Skip(7).ToList();
        // mixed dtypes across shards, as in real Hugging Face repositories
        SafeTensorsWriter.Write(dir.File("model-00001-of-00002.safetensors"), first);
        SafeTensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), second, SafeTensorDType.BF16);
        var map = first.ToDictionary(t => t.Name, _ => "model-00001-of-00002.safetensors");
        foreach (var t in second) map[t.Name] = "model-00002-of-00002.safetensors";
        File.WriteAllText(dir.File("model.safetensors.index.json"),
            JsonSerializer.Serialize(new { metadata = new { total_size = 123 }, weight_map = map }));

        var (_, w2) = Checkpoint.Load(dir.Path);
        Assert.Equal(weights.Count, w2.Count);
        for (int i = 0; i < weights.Count; i++)
        {
            var a = weights.Tensors[i];
            var b = w2[a.Name];
            for (int j = 0; j < a.Length; j++)
            {
                float expected = i < 7 ? a.Data[j] : SafeTensorDTypes.BFloat16ToSingle(SafeTensorDTypes.SingleToBFloat16(a.Data[j]));
                Assert.Equal(expected, b.Data[j]);
            }
        }

        // a weight_map entry pointing at a shard that lacks the tensor names both
        map["model.norm.weight"] = "model-00001-of-00002.safetensors";
        File.WriteAllText(dir.File("model.safetensors.index.json"), JsonSerializer.Serialize(new { weight_map = map }));
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains("model-00001-of-00002.safetensors", e.Message);

        // a tensor absent from the map is missing, named with the index file
        map.Remove("model.norm.weight");
        File.WriteAllText(dir.File("model.safetensors.index.json"), JsonSerializer.Serialize(new { weight_map = map }));
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains("model.safetensors.index.json", e.Message);

        // a shard name that leaves the directory is refused
        map["model.norm.weight"] = "../elsewhere.safetensors";
        File.WriteAllText(dir.File("model.safetensors.index.json"), JsonSerializer.Serialize(new { weight_map = map }));
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("model.norm.weight", e.Message);

        File.WriteAllText(dir.File("model.safetensors.index.json"), "{\"weight_map\": [");
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("model.safetensors.index.json", e.Message);
    }

    [Fact]
    public void AShardIndexWithInvalidUtf8IsRefusedNamingTheIndex()
    {
        // found by the libFuzzer harness (fuzz/regressions/safetensors-index): a byte 0x95 inside a tensor name or a shard
        // name escaped as System.Text.Json's InvalidOperationException ("Cannot transcode invalid UTF-8"), naming no file
        using var dir = new TempDirectory();
        var config = TestModels.Tiny();
        File.WriteAllText(dir.File("config.json"), config.ToJson());
        SafeTensorsWriter.Write(dir.File("model-00001-of-00001.safetensors"), TestModels.RandomWeights(config).Tensors);
        string index = dir.File("model.safetensors.index.json");
        foreach (string json in (string[])["{\"weight_map\":{\"model.\u0001\":\"model-00001-of-00001.safetensors\"}}",
                                           "{\"weight_map\":{\"model.norm.weight\":\"model-\u0001.safetensors\"}}"])
        {
            byte[] bytes = System.Text.Encoding.UTF8.GetBytes(json);
            bytes[Array.IndexOf(bytes, (byte)1)] = 0x95; // a lone continuation byte
            File.WriteAllBytes(index, bytes);
            var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(dir.Path));
            Assert.Contains(index, e.Message);
            Assert.Contains("UTF-8", e.Message);
        }
    }

    [Fact]
    public void MissingFilesAreReported()
    {
        using var dir = new TempDirectory();
        Assert.Throws<FileNotFoundException>(() => Checkpoint.Load(dir.Path));
        File.WriteAllText(dir.File("config.json"), TestModels.Tiny().ToJson());
        var e = Assert.Throws<FileNotFoundException>(() => Checkpoint.Load(dir.Path));
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void SaveRejectsWeightsThatDoNotMatchTheConfig()
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny();
        var weights = TestModels.RandomWeights(config with { IntermediateSize = 16 });
        var e = Assert.Throws<ArgumentException>(() => Checkpoint.Save(dir.File("c"), config, weights));
        Assert.Contains("mlp.gate_proj.weight", e.Message);
        Assert.False(Directory.Exists(dir.File("c")));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AnInterruptedSaveLeavesThePreviousCheckpointIntact(bool portableSwap)
    {
        using var dir = new TempDirectory();
        var config = TestModels.Tiny();
        var before = TestModels.RandomWeights(config, seed: 1);
        string ckpt = dir.File("latest");
        AtomicFile.DisableExchange = portableSwap;
        try
        {
            Checkpoint.Save(ckpt, config, before, writeExtra: d => File.WriteAllText(Path.Combine(d, "trainer.json"), "{\"v\":1}"));
            var after = TestModels.RandomWeights(config, seed: 2);
            var e = Assert.Throws<IOException>(() => Checkpoint.Save(ckpt, config, after, writeExtra: d =>
            {
                File.WriteAllText(Path.Combine(d, "trainer.json"), "{\"v\":2}");
                throw new IOException("disk full (simulated)");
            }));
            Assert.Contains("simulated", e.Message);
            var (_, loaded) = Checkpoint.Load(ckpt);
            TestModels.AssertBitEqual(before, loaded);
            Assert.Equal("{\"v\":1}", File.ReadAllText(Path.Combine(ckpt, "trainer.json")));
            Assert.Equal([ckpt], Directory.GetFileSystemEntries(dir.Path)); // no staging directory left behind

            // and a save that completes replaces it as a whole
            Checkpoint.Save(ckpt, config, after);
            var (_, loaded2) = Checkpoint.Load(ckpt);
            TestModels.AssertBitEqual(after, loaded2);
            Assert.False(File.Exists(Path.Combine(ckpt, "trainer.json")));
            Assert.Equal([ckpt], Directory.GetFileSystemEntries(dir.Path));
        }
        finally { AtomicFile.DisableExchange = false; }
    }

    [Fact]
    public void OnLinuxAnExistingCheckpointIsSwappedInOneStep()
    {
        if (!OperatingSystem.IsLinux()) return; // the portable path is covered by the interrupted-save test
        using var dir = new TempDirectory();
        string a = dir.File("a"), b = dir.File("b");
        Directory.CreateDirectory(a);
        Directory.CreateDirectory(b);
        File.WriteAllText(Path.Combine(a, "x"), "A");
        File.WriteAllText(Path.Combine(b, "x"), "B");
        Assert.True(AtomicFile.TryExchange(a, b), "renameat2(RENAME_EXCHANGE) failed on the temp file system");
        Assert.Equal("B", File.ReadAllText(Path.Combine(a, "x")));
        Assert.Equal("A", File.ReadAllText(Path.Combine(b, "x")));
    }
}
