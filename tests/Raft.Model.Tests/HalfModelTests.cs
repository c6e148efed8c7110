namespace Raft.Model.Tests;

/// <summary>
/// The inference-only model on 16-bit weights (BF16 / F16 as stored) against the fp32 model over the same, exactly
/// widened weights: full forward, prefill and KV-cached decoding, for every family of <see cref="FamilyTests.Configs"/>
/// and a wider model whose rows exercise the vector loops and tails. The two differ only in fp32 summation order, so the
/// tolerance is that of fp32 rounding through a few layers: max normwise relative error ≤ 2e-5 on the logits.
/// </summary>
public class HalfModelTests
{
    private const double Tolerance = 2e-5;

    private static ModelConfig Wide() => new()
    {
        ModelType = "qwen2", HiddenSize = 72, IntermediateSize = 100, NumHiddenLayers = 2, NumAttentionHeads = 6, NumKeyValueHeads = 2,
        VocabSize = 131, RmsNormEps = 1e-6, RopeTheta = 10000, MaxPositionEmbeddings = 64, AttentionBias = true,
    };

    public static TheoryData<string, SafeTensorDType> Cases()
    {
        var data = new TheoryData<string, SafeTensorDType>();
        foreach (var name in FamilyTests.Configs.Keys.Where(k => k != "rope dynamic").Append("wide qwen2"))
            foreach (var dt in new[] { SafeTensorDType.BF16, SafeTensorDType.F16 })
                data.Add(name, dt);
        return data;
    }

    private static ModelConfig ConfigFor(string name) => name == "wide qwen2" ? Wide() : FamilyTests.Configs[name];

    /// <summary>(the 16-bit model, the fp32 model over the widened matrices).</summary>
    private static (LlamaModel Half, LlamaModel Full) Pair(ModelConfig c, SafeTensorDType dtype, int seed)
    {
        var weights = TestModels.RandomWeights(c, seed);
        var layout = DecoderLayout.For(c);
        var small = new TensorSet();
        var halves = new List<HalfMatrix>();
        var widened = new TensorSet();
        foreach (var t in weights.Tensors)
        {
            bool matrix = layout.Tensors.Any(s => s.Name == t.Name && s.Role == TensorRole.Matrix);
            if (matrix)
            {
                var h = HalfMatrix.FromSingle(t, dtype);
                halves.Add(h);
                widened.Add(h.ToSingle());
            }
            else
            {
                small.Add(t);
                widened.Add(new Tensor(t.Name, t.Shape, (float[])t.Data.Clone()));
            }
        }
        return (new LlamaModel(c, small, halves) { Threads = 2 }, new LlamaModel(c, widened) { Threads = 2 });
    }

    [Fact]
    public void LoraAdaptersOverA16BitBaseMatchTheFp32ModelOfTheWidenedWeights()
    {
        var c = Wide();
        var (half, full) = Pair(c, SafeTensorDType.BF16, seed: 5);
        var adapters = LoraAdapters.Create(DecoderLayout.For(c), new LoraConfig { Rank = 4, Alpha = 8, TargetModules = LoraConfig.ModuleNames }, 6);
        var rng = new Random(7);
        foreach (var t in adapters.Parameters.Tensors)
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)(0.3 * (rng.NextDouble() * 2 - 1));
        half.Lora = adapters;
        full.Lora = adapters;
        var tokens = Enumerable.Range(0, 18).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var a = half.Forward(tokens, 2, 9);
        var b = full.Forward(tokens, 2, 9);
        double err = Tolerances.MaxRelError(a, b);
        Assert.True(err < Tolerance, $"forward with adapters: {err}");
        adapters.Enabled = false;
        Assert.True(Tolerances.MaxRelError(half.Forward(tokens, 2, 9), a) > 1e-3, "the adapters change the logits");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardAndDecodeMatchTheFp32ModelOfTheWidenedWeights(string name, SafeTensorDType dtype)
    {
        var c = ConfigFor(name);
        var (half, full) = Pair(c, dtype, seed: name.Length * 7 + (int)dtype);
        Assert.True(half.IsInferenceOnly);
        Assert.False(full.IsInferenceOnly);
        Assert.Equal(dtype == SafeTensorDType.BF16 ? "bf16" : "fp16", half.WeightsDescription);
        int batch = 3, t = 9;   // 27 rows: the packed (N ≥ 16) path; decoding below runs the streaming (N < 16) path
        var rng = new Random(name.Length);
        var tokens = Enumerable.Range(0, batch * t).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var a = half.Forward(tokens, batch, t);
        var b = full.Forward(tokens, batch, t);
        double err = Tolerances.MaxRelError(a, b);
        Assert.True(err < Tolerance, $"forward: {err}");

        // prefill 5 positions, then decode 4 steps, against the full model's cached decoding
        var ch = half.CreateKvCache(batch, 16);
        var cf = full.CreateKvCache(batch, 16);
        var la = new float[batch * c.VocabSize];
        var lb = new float[batch * c.VocabSize];
        var prompt = Enumerable.Range(0, batch * 5).Select(_ => rng.Next(c.VocabSize)).ToArray();
        half.Prefill(ch, prompt, 5, la);
        full.Prefill(cf, prompt, 5, lb);
        Assert.True(Tolerances.MaxRelError(la, lb) < Tolerance, $"prefill: {Tolerances.MaxRelError(la, lb)}");
        for (int s = 0; s < 4; s++)
        {
            var next = Enumerable.Range(0, batch).Select(_ => rng.Next(c.VocabSize)).ToArray();
            half.DecodeStep(ch, next, la);
            full.DecodeStep(cf, next, lb);
            Assert.True(Tolerances.MaxRelError(la, lb) < Tolerance, $"decode step {s}: {Tolerances.MaxRelError(la, lb)}");
        }
    }

    [Fact]
    public void BatchOf8DecodeMatchesFp32()
    {
        // batch 8 decoding: the streaming path, two groups of 4 rows per W row
        var c = Wide();
        var (half, full) = Pair(c, SafeTensorDType.BF16, seed: 5);
        var ch = half.CreateKvCache(8, 8);
        var cf = full.CreateKvCache(8, 8);
        var la = new float[8 * c.VocabSize];
        var lb = new float[8 * c.VocabSize];
        var rng = new Random(3);
        for (int s = 0; s < 3; s++)
        {
            var next = Enumerable.Range(0, 8).Select(_ => rng.Next(c.VocabSize)).ToArray();
            half.DecodeStep(ch, next, la);
            full.DecodeStep(cf, next, lb);
            Assert.True(Tolerances.MaxRelError(la, lb) < Tolerance, $"step {s}: {Tolerances.MaxRelError(la, lb)}");
        }
    }

    [Theory]
    [InlineData(SafeTensorDType.BF16, false)]
    [InlineData(SafeTensorDType.F16, false)]
    [InlineData(SafeTensorDType.BF16, true)]
    public void BackwardThroughFrozen16BitMatricesMatchesTheFp32ModelOfTheWidenedWeights(SafeTensorDType dtype, bool checkpointing)
    {
        // LoRA over a 16-bit base: the adapters' and the fp32 tensors' (norms, biases) gradients flow through dx = dy·W
        // with W widened inside the kernel; they equal the fp32 model's over the widened weights up to summation order
        var c = Wide();
        var (half, full) = Pair(c, dtype, seed: 11);
        var adapters = LoraAdapters.Create(DecoderLayout.For(c), new LoraConfig { Rank = 4, Alpha = 8, TargetModules = LoraConfig.ModuleNames }, 12);
        var rng = new Random(13);
        foreach (var t in adapters.Parameters.Tensors)
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)(0.3 * (rng.NextDouble() * 2 - 1));
        half.Lora = adapters;
        full.Lora = adapters;
        int batch = 2, seq = 9, n = batch * seq;
        var tokens = Enumerable.Range(0, n).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var dLogits = Enumerable.Range(0, n * c.VocabSize).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var grads = new TensorSet();
        foreach (var t in adapters.Parameters.Tensors) grads.Add(Tensor.Zeros(t.Name, t.Shape));
        foreach (var t in half.Parameters.Tensors) grads.Add(Tensor.Zeros(t.Name, t.Shape));   // norms and biases: fp32, trainable
        var expected = grads.ZerosLike();
        var ha = new ModelActivations { GradientCheckpointing = checkpointing };
        var fa = new ModelActivations();
        half.Forward(tokens, batch, seq, ha);
        full.Forward(tokens, batch, seq, fa);
        half.Backward(ha, dLogits, grads);
        full.Backward(fa, dLogits, expected);
        foreach (var g in grads.Tensors)
        {
            double err = Tolerances.MaxRelError(g.Data, expected[g.Name].Data);
            Assert.True(err < 1e-4, $"{g.Name}: {err}");
        }
        Assert.Contains(grads.Tensors, g => g.Name.Contains("lora_B") && g.Data.Any(v => v != 0));

        // a gradient asked of a 16-bit (frozen) matrix is an error naming it
        var q = half.HalfMatrices.Keys.First(k => k.EndsWith("q_proj.weight", StringComparison.Ordinal));
        var withQ = grads.ZerosLike();
        withQ.Add(Tensor.Zeros(q, half.HalfMatrices[q].Shape));
        var e = Assert.Throws<ArgumentException>(() => half.Backward(ha, dLogits, withQ));
        Assert.Contains(q, e.Message);
    }

    [Fact]
    public void NormsCannotBe16BitAndMatricesCannotBeGivenTwice()
    {
        var c = Wide();
        var w = TestModels.RandomWeights(c, 2);
        var norm = w.Tensors.First(t => t.Name.EndsWith("norm.weight", StringComparison.Ordinal));
        var rest = new TensorSet();
        foreach (var t in w.Tensors) if (t != norm) rest.Add(t);
        var e = Assert.Throws<ArgumentException>(() => new LlamaModel(c, rest, [HalfMatrix.FromSingle(norm, SafeTensorDType.BF16)]));
        Assert.Contains(norm.Name, e.Message);
        var q = w.Tensors.First(t => t.Name.EndsWith("q_proj.weight", StringComparison.Ordinal));
        e = Assert.Throws<ArgumentException>(() => new LlamaModel(c, w, [HalfMatrix.FromSingle(q, SafeTensorDType.BF16)]));
        Assert.Contains("both", e.Message);
    }

    [Theory]
    [InlineData(SafeTensorDType.BF16)]
    [InlineData(SafeTensorDType.F16)]
    public void CheckpointStoredIn16BitsIsKeptAsStored(SafeTensorDType dtype)
    {
        var c = Wide();
        var weights = TestModels.RandomWeights(c, 9);
        using var dir = new TempDirectory();
        Checkpoint.Save(dir.Path, c, weights, dtype: dtype);
        var (config, small, halves) = Checkpoint.LoadForInference(dir.Path, dtype);
        var layout = DecoderLayout.For(config);
        Assert.Equal(layout.Tensors.Count(t => t.Role == TensorRole.Matrix), halves.Count);
        Assert.All(small.Tensors, t => Assert.NotEqual(TensorRole.Matrix, layout.Tensors.Single(s => s.Name == t.Name).Role));
        // the bits are the file's: widening them gives exactly what the fp32 loader reads
        var (_, fp32) = Checkpoint.Load(dir.Path);
        foreach (var h in halves)
        {
            Assert.Equal(dtype, h.DType);
            TestModels.AssertBitEqual(Single(fp32[h.Name]), Single(h.ToSingle()));
        }
        var half = Checkpoint.LoadModel(dir.Path, dtype);
        half.Threads = 2;
        var full = new LlamaModel(config, fp32) { Threads = 2 };
        int[] tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8];
        double err = Tolerances.MaxRelError(half.Forward(tokens, 2, 6), full.Forward(tokens, 2, 6));
        Assert.True(err < Tolerance, $"{err}");
    }

    private static TensorSet Single(Tensor t) { var s = new TensorSet(); s.Add(t); return s; }

    [Fact]
    public void Fp32CheckpointIsRoundedToBf16AndOther16BitDTypeIsRefusedNamingTheTensor()
    {
        var c = Wide();
        var weights = TestModels.RandomWeights(c, 4);
        using var dir = new TempDirectory();
        Checkpoint.Save(dir.Path, c, weights);
        var (_, _, halves) = Checkpoint.LoadForInference(dir.Path, SafeTensorDType.BF16);
        foreach (var h in halves)
        {
            var src = weights[h.Name].Data;
            for (int i = 0; i < src.Length; i++) Assert.Equal(SafeTensorDTypes.SingleToBFloat16(src[i]), h.Bits[i]);
        }
        using var dir16 = new TempDirectory();
        Checkpoint.Save(dir16.Path, c, weights, dtype: SafeTensorDType.F16);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadForInference(dir16.Path, SafeTensorDType.BF16));
        Assert.Contains("model.embed_tokens.weight", e.Message);
        Assert.Contains("F16", e.Message);
        Assert.Contains("model.safetensors", e.Message);
    }
}
