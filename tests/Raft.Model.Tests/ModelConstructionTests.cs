namespace Raft.Model.Tests;

public class ModelConstructionTests
{
    [Fact]
    public void MissingTensorIsNamed()
    {
        var c = TestUtil.Tiny(tied: false, bias: true);
        var full = RandomData.RandomParameters(c, 1);
        var partial = new TensorSet();
        foreach (var t in full.Tensors) if (t.Name != "model.layers.1.self_attn.k_proj.bias") partial.Add(t);
        var e = Assert.Throws<ArgumentException>(() => new LlamaModel(c, partial));
        Assert.Contains("model.layers.1.self_attn.k_proj.bias", e.Message);
    }

    [Fact]
    public void WrongShapeIsNamed()
    {
        var c = TestUtil.Tiny(tied: false, bias: false);
        var set = new TensorSet();
        foreach (var t in RandomData.RandomParameters(c, 1).Tensors)
            set.Add(t.Name == "model.layers.0.mlp.up_proj.weight" ? Tensor.Zeros(t.Name, 16, 24) : t);
        var e = Assert.Throws<ArgumentException>(() => new LlamaModel(c, set));
        Assert.Contains("model.layers.0.mlp.up_proj.weight", e.Message);
        Assert.Contains("[16, 24]", e.Message);
    }

    [Fact]
    public void UnsupportedBiasIsNamed()
    {
        var c = TestUtil.Tiny(tied: true, bias: true);
        var set = RandomData.RandomParameters(c, 1);
        set.Add(Tensor.Zeros("model.layers.0.self_attn.o_proj.bias", 16));
        var e = Assert.Throws<ArgumentException>(() => new LlamaModel(c, set));
        Assert.Contains("model.layers.0.self_attn.o_proj.bias", e.Message);
    }

    [Fact]
    public void CreateRandomFollowsTheInitRecipe()
    {
        var c = TestUtil.Tiny(tied: false, bias: true) with { HiddenSize = 64, NumAttentionHeads = 4, HeadDimOverride = 16, IntermediateSize = 128, VocabSize = 300 };
        var m = LlamaModel.CreateRandom(c, 7);
        Assert.All(m.Parameters["model.norm.weight"].Data, v => Assert.Equal(1f, v));
        Assert.All(m.Parameters["model.layers.0.self_attn.q_proj.bias"].Data, v => Assert.Equal(0f, v));
        var e = m.Parameters["model.embed_tokens.weight"].Data;
        double mean = e.Average(v => (double)v), std = Math.Sqrt(e.Average(v => (double)v * v) - mean * mean);
        Assert.InRange(std, 0.018, 0.022);
        Assert.InRange(mean, -0.002, 0.002);
        Assert.Equal(300 * 64, m.Parameters["lm_head.weight"].Data.Length);
        var again = LlamaModel.CreateRandom(c, 7);
        Assert.Equal(e, again.Parameters["model.embed_tokens.weight"].Data);
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        var c = TestUtil.Tiny(tied: true, bias: false);
        var m = LlamaModel.CreateRandom(c, 1);
        Assert.Equal("tokens", Assert.Throws<ArgumentException>(() => m.Forward(new int[5], 2, 3)).ParamName);
        Assert.Equal("tokens", Assert.Throws<ArgumentOutOfRangeException>(() => m.Forward([0, 11], 1, 2)).ParamName);
        var acts = new ModelActivations();
        m.Forward([1, 2], 1, 2, acts);
        Assert.Equal("dLogits", Assert.Throws<ArgumentException>(() => m.Backward(acts, new float[3], m.Parameters.ZerosLike())).ParamName);
        var nan = new float[2 * c.VocabSize];
        nan[c.VocabSize + 3] = float.NaN;
        var en = Assert.Throws<ArgumentException>(() => m.Backward(acts, nan, m.Parameters.ZerosLike()));
        Assert.Equal("dLogits", en.ParamName);
        Assert.Contains("[1, 3]", en.Message);
        var grads = new TensorSet();
        Assert.Contains("model.embed_tokens.weight",
            Assert.Throws<ArgumentException>(() => m.Backward(acts, new float[2 * c.VocabSize], grads)).Message);
        Assert.Equal("activations", Assert.Throws<ArgumentException>(() => m.Backward(new ModelActivations(), new float[2 * c.VocabSize], m.Parameters.ZerosLike())).ParamName);
    }
}
