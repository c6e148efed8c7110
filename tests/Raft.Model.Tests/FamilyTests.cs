namespace Raft.Model.Tests;

/// <summary>
/// Every model family and math-changing config.json feature, table-driven: the double reference's gradients against
/// finite differences, the fast fp32 model against the reference (forward and backward), KV-cached decoding against the
/// full forward, at positions past the original context for the scaled RoPE variants.
/// </summary>
public class FamilyTests
{
    private static ModelConfig Base(string type) => new()
    {
        ModelType = type, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = 11, RmsNormEps = 1e-6, RopeTheta = 10000, MaxPositionEmbeddings = 64,
    };

    /// <summary>The feature sets: name → config (tiny: hidden 16, 4 heads over 2 KV heads, 2 layers).</summary>
    public static readonly Dictionary<string, ModelConfig> Configs = new()
    {
        ["llama"] = Base("llama"),
        ["llama attention_bias + mlp_bias"] = Base("llama") with { AttentionBias = true, MlpBias = true },
        ["llama head_dim 6"] = Base("llama") with { HeadDimOverride = 6 },
        ["mistral window 3"] = Base("mistral") with { SlidingWindow = 3 },
        ["qwen2"] = Base("qwen2"),
        ["qwen2 window 2 from layer 1"] = Base("qwen2") with { UseSlidingWindow = true, SlidingWindow = 2, MaxWindowLayers = 1 },
        ["qwen2 layer_types"] = Base("qwen2") with { UseSlidingWindow = true, SlidingWindow = 3, LayerTypes = ["sliding_attention", "full_attention"] },
        ["qwen3 head_dim 6"] = Base("qwen3") with { HeadDimOverride = 6, TieWordEmbeddings = true },
        ["qwen3 attention_bias"] = Base("qwen3") with { HeadDimOverride = 8, AttentionBias = true },
        ["rope linear"] = Base("llama") with { RopeScaling = new() { RopeType = "linear", Factor = 2.5 } },
        ["rope dynamic"] = Base("llama") with { MaxPositionEmbeddings = 4, RopeScaling = new() { RopeType = "dynamic", Factor = 3 } },
        ["rope llama3"] = Base("llama") with
        {
            MaxPositionEmbeddings = 32, RopeScaling = new() { RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 4 },
        },
        ["rope yarn"] = Base("qwen3") with
        {
            HeadDimOverride = 8, MaxPositionEmbeddings = 16, RopeScaling = new() { RopeType = "yarn", Factor = 4, OriginalMaxPositionEmbeddings = 4 },
        },
        ["rope yarn legacy type, mscale"] = Base("llama") with
        {
            RopeScaling = new() { LegacyType = "yarn", Factor = 3, Mscale = 0.7, MscaleAllDim = 1.3, BetaFast = 8, BetaSlow = 2, Truncate = false },
        },
        ["qwen3 yarn + window (transformers 5 rope_parameters)"] = Base("qwen3") with
        {
            HeadDimOverride = 8, UseSlidingWindow = true, SlidingWindow = 3, MaxWindowLayers = 0,
            RopeParameters = new() { RopeType = "yarn", Factor = 2, RopeTheta = 500, AttentionFactor = 1.3 },
        },
    };

    public static TheoryData<string> Names() => [.. Configs.Keys];

    // sequences of 9 positions starting at 3: positions 3..11 reach past every config's original context
    private const int Batch = 2, T = 9, Offset = 3;

    private static int[] Positions() => Enumerable.Range(0, Batch * T).Select(i => Offset + i % T).ToArray();

    [Theory]
    [MemberData(nameof(Names))]
    public void ReferenceGradientsMatchFiniteDifferences(string name)
    {
        var c = Configs[name];
        int n = Batch * T;
        var model = new ReferenceModel(c, RandomData.RandomParameters(c, name.Length * 31 + 1));
        var tokens = RandomData.RandomTokens(n, c.VocabSize, name.Length);
        var r = TestUtil.RandomDoubles(n * c.VocabSize, name.Length + 5);
        var pos = Positions();
        double Loss()
        {
            var logits = model.Forward(tokens, Batch, T, out _, pos);
            double s = 0;
            for (int i = 0; i < logits.Length; i++) s += logits[i] * r[i];
            return s;
        }
        model.Forward(tokens, Batch, T, out var acts, pos);
        var grads = model.Backward(acts, r);
        Assert.Equal(c.TensorShapes().Select(s => s.Name).Order(), grads.Keys.Order());
        const double h = 1e-5;
        foreach (var (tensor, p) in model.Parameters)
        {
            var g = grads[tensor];
            double scale = Math.Max(1e-2, g.Max(Math.Abs));
            int stride = Math.Max(1, p.Length / 24);
            for (int i = (tensor.Length * 7) % stride; i < p.Length; i += stride)
            {
                double keep = p[i];
                p[i] = keep + h; double lp = Loss();
                p[i] = keep - h; double lm = Loss();
                p[i] = keep;
                double fd = (lp - lm) / (2 * h);
                Assert.True(Math.Abs(fd - g[i]) <= 1e-6 * scale, $"{name}: {tensor}[{i}]: analytic {g[i]}, finite difference {fd}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void FastModelMatchesReference(string name)
    {
        var c = Configs[name];
        int n = Batch * T;
        var parameters = RandomData.RandomParameters(c, name.Length * 17 + 3);
        var fast = new LlamaModel(c, parameters) { Threads = 2 };
        var reference = new ReferenceModel(c, parameters);
        var tokens = RandomData.RandomTokens(n, c.VocabSize, name.Length + 1);
        var r = TestUtil.RandomFloats(n * c.VocabSize, name.Length + 2);
        var pos = Positions();
        var acts = new ModelActivations();
        var logits = fast.Forward(tokens, Batch, T, acts, pos);
        var refLogits = reference.Forward(tokens, Batch, T, out var refActs, pos);
        double le = Tolerances.MaxRelError(logits, refLogits);
        Assert.True(le < 1e-5, $"{name}: logits relative error {le}");
        var grads = parameters.ZerosLike();
        fast.Backward(acts, r, grads);
        var refGrads = reference.Backward(refActs, Array.ConvertAll(r, v => (double)v));
        foreach (var g in grads.Tensors)
        {
            double e = Tolerances.MaxRelError(g.Data, refGrads[g.Name]);
            Assert.True(e < 1e-4, $"{name}: {g.Name}: relative error {e}");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void KvCachedDecodeMatchesFullForward(string name)
    {
        var c = Configs[name];
        var model = new LlamaModel(c, RandomData.RandomParameters(c, 7)) { Threads = 2 };
        int prompt = 3, total = 9, v = c.VocabSize;
        var seq = RandomData.RandomTokens(Batch * total, v, 4);
        var full = model.Forward(seq, Batch, total);
        var cache = model.CreateKvCache(Batch, total);
        var logits = new float[Batch * v];
        int[] Chunk(int from, int len) => Enumerable.Range(0, Batch).SelectMany(b => seq.Skip(b * total + from).Take(len)).ToArray();
        if (model.Layout.Rope.DependsOnLength)
        {
            // dynamic NTK: a cached decode past max_position_embeddings is refused by name, not computed differently
            model.Prefill(cache, Chunk(0, c.MaxPositionEmbeddings), c.MaxPositionEmbeddings, logits);
            var e = Assert.Throws<UnsupportedConfigException>(() => model.DecodeStep(cache, Chunk(c.MaxPositionEmbeddings, 1), logits));
            Assert.Equal("rope_scaling.rope_type", e.Key);
            return;
        }
        model.Prefill(cache, Chunk(0, prompt), prompt, logits);
        for (int s = prompt; ; s++)
        {
            for (int b = 0; b < Batch; b++)
            {
                double e = Tolerances.MaxRelError(logits.AsSpan(b * v, v), full.AsSpan((b * total + s - 1) * v, v));
                Assert.True(e < 1e-5, $"{name}: sequence {b}, position {s - 1}: relative error {e}");
            }
            if (s == total) break;
            model.DecodeStep(cache, Chunk(s, 1), logits);
        }
    }

    [Fact]
    public void SlidingWindowHidesKeysOutsideIt()
    {
        // a window of 2: query 5 sees keys 4 and 5 only, so changing token 3 leaves logits 0..2 (before it) and 5.. unchanged
        var c = Configs["mistral window 3"] with { SlidingWindow = 2, NumHiddenLayers = 1 };
        var model = new LlamaModel(c, RandomData.RandomParameters(c, 3));
        var a = RandomData.RandomTokens(8, c.VocabSize, 1);
        var b = (int[])a.Clone();
        b[3] = (a[3] + 1) % c.VocabSize;
        var la = model.Forward(a, 1, 8);
        var lb = model.Forward(b, 1, 8);
        int v = c.VocabSize;
        for (int i = 0; i < 8; i++)
        {
            bool same = la.AsSpan(i * v, v).SequenceEqual(lb.AsSpan(i * v, v));
            Assert.True(same == (i is < 3 or > 4), $"position {i}: logits {(same ? "unchanged" : "changed")}");
        }
    }

    [Theory]
    [InlineData("qwen2", 0, new[] { true, true })]
    [InlineData("qwen2", 1, new[] { false, true })]
    [InlineData("qwen2", 2, new[] { false, false })]
    [InlineData("qwen3", 1, new[] { false, true })]
    public void QwenWindowLayersFollowMaxWindowLayers(string type, int maxWindowLayers, bool[] windowed)
    {
        var c = Base(type) with { UseSlidingWindow = true, SlidingWindow = 5, MaxWindowLayers = maxWindowLayers };
        var layout = DecoderLayout.For(c);
        Assert.Equal(windowed, layout.Layers.Select(l => l.Features.SlidingWindow == 5).ToArray());
        Assert.All(DecoderLayout.For(c with { UseSlidingWindow = false }).Layers, l => Assert.Null(l.Features.SlidingWindow));
    }

    [Fact]
    public void FeatureTensorsAreNamedAsHuggingFaceNamesThem()
    {
        var l0 = DecoderLayout.For(Configs["qwen3 attention_bias"]).Layers[0];
        Assert.Equal("model.layers.0.self_attn.q_norm.weight", l0.QNorm);
        Assert.Equal("model.layers.0.self_attn.k_norm.weight", l0.KNorm);
        Assert.Equal("model.layers.0.self_attn.o_proj.bias", l0.OBias);
        Assert.Equal([8], l0.Tensors.Single(t => t.Name == l0.QNorm).Shape.ToArray());
        Assert.Equal([32, 16], l0.Tensors.Single(t => t.Name == l0.QProj).Shape.ToArray());   // head_dim decoupled: 4·8 × 16
        var m = DecoderLayout.For(Configs["llama attention_bias + mlp_bias"]).Layers[1];
        Assert.Equal("model.layers.1.mlp.gate_proj.bias", m.GateBias);
        Assert.Equal("model.layers.1.mlp.up_proj.bias", m.UpBias);
        Assert.Equal("model.layers.1.mlp.down_proj.bias", m.DownBias);
        Assert.Equal("model.layers.1.self_attn.o_proj.bias", m.OBias);
        Assert.Equal("model.layers.1.self_attn.q_proj.bias", m.QBias);
        var q2 = DecoderLayout.For(Configs["qwen2"]).Layers[0];
        Assert.NotNull(q2.QBias);
        Assert.Null(q2.OBias);
        Assert.Null(q2.GateBias);
    }
}
