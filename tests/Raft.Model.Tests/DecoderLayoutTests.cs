namespace Raft.Model.Tests;

/// <summary>
/// The layout against Hugging Face's names, written out literally here (an independent check of the naming, not a
/// copy of the layout's code).
/// </summary>
public class DecoderLayoutTests
{
    private static readonly string[] LayerNames =
    [
        "input_layernorm.weight",
        "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
        "self_attn.o_proj.weight",
        "post_attention_layernorm.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    ];

    /// <summary>What a Hugging Face LlamaForCausalLM / Qwen2ForCausalLM state dict holds for <see cref="TestUtil.Tiny"/>, in checkpoint order.</summary>
    private static List<(string Name, int[] Shape)> Expected(bool tied, bool bias)
    {
        // hidden 16, 4 heads × head_dim 4 = 16, 2 kv heads × 4 = 8, intermediate 24, vocab 11
        var list = new List<(string, int[])> { ("model.embed_tokens.weight", [11, 16]) };
        for (int l = 0; l < 2; l++)
        {
            string p = $"model.layers.{l}.";
            list.Add((p + "input_layernorm.weight", [16]));
            list.Add((p + "self_attn.q_proj.weight", [16, 16]));
            list.Add((p + "self_attn.k_proj.weight", [8, 16]));
            list.Add((p + "self_attn.v_proj.weight", [8, 16]));
            if (bias)
            {
                list.Add((p + "self_attn.q_proj.bias", [16]));
                list.Add((p + "self_attn.k_proj.bias", [8]));
                list.Add((p + "self_attn.v_proj.bias", [8]));
            }
            list.Add((p + "self_attn.o_proj.weight", [16, 16]));
            list.Add((p + "post_attention_layernorm.weight", [16]));
            list.Add((p + "mlp.gate_proj.weight", [24, 16]));
            list.Add((p + "mlp.up_proj.weight", [24, 16]));
            list.Add((p + "mlp.down_proj.weight", [16, 24]));
        }
        list.Add(("model.norm.weight", [16]));
        if (!tied) list.Add(("lm_head.weight", [11, 16]));
        return list;
    }

    [Theory]
    [MemberData(nameof(TestUtil.TiedBias), MemberType = typeof(TestUtil))]
    public void NamesAndShapesAreHuggingFaces(bool tied, bool bias)
    {
        var layout = DecoderLayout.For(TestUtil.Tiny(tied, bias));
        var expected = Expected(tied, bias);
        Assert.Equal(expected.Select(e => e.Name), layout.Tensors.Select(t => t.Name));
        for (int i = 0; i < expected.Count; i++)
            Assert.True(expected[i].Shape.SequenceEqual(layout.Tensors[i].Shape), $"{expected[i].Name}: {layout.Tensors[i].ShapeText}");
        // TensorShapes is the layout's list
        var shapes = TestUtil.Tiny(tied, bias).TensorShapes();
        Assert.Equal(expected.Select(e => e.Name), shapes.Select(s => s.Name));
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i].Shape, shapes[i].Shape);
        foreach (var (name, _) in expected) Assert.True(layout.Contains(name), name);
    }

    [Theory]
    [MemberData(nameof(TestUtil.TiedBias), MemberType = typeof(TestUtil))]
    public void ModelAndLayerEntriesNameTheRightTensors(bool tied, bool bias)
    {
        var layout = DecoderLayout.For(TestUtil.Tiny(tied, bias));
        Assert.Equal(tied, layout.TiedEmbeddings);
        Assert.Equal(4, layout.HeadDim);
        Assert.Equal("model.embed_tokens.weight", layout.Embedding.Name);
        Assert.Equal(TensorRole.Matrix, layout.Embedding.Role);
        Assert.Equal("model.norm.weight", layout.FinalNorm.Name);
        Assert.Equal(TensorRole.NormWeight, layout.FinalNorm.Role);
        if (tied)
        {
            Assert.Null(layout.LmHead);
            Assert.Equal("model.embed_tokens.weight", layout.OutputProjection);
        }
        else
        {
            Assert.Equal("lm_head.weight", layout.LmHead!.Name);
            Assert.Equal("lm_head.weight", layout.OutputProjection);
            Assert.Equal("[11, 16]", layout.LmHead.ShapeText);
        }

        Assert.Equal(2, layout.Layers.Count);
        var l1 = layout.Layers[1];
        Assert.Equal(1, l1.Index);
        Assert.Equal("model.layers.1.", l1.Prefix);
        Assert.Equal(new DecoderLayerFeatures(QkvBias: bias), l1.Features);
        Assert.Equal("model.layers.1.input_layernorm.weight", l1.InputNorm);
        Assert.Equal("model.layers.1.self_attn.q_proj.weight", l1.QProj);
        Assert.Equal("model.layers.1.self_attn.k_proj.weight", l1.KProj);
        Assert.Equal("model.layers.1.self_attn.v_proj.weight", l1.VProj);
        Assert.Equal("model.layers.1.self_attn.o_proj.weight", l1.OProj);
        Assert.Equal("model.layers.1.post_attention_layernorm.weight", l1.PostAttentionNorm);
        Assert.Equal("model.layers.1.mlp.gate_proj.weight", l1.GateProj);
        Assert.Equal("model.layers.1.mlp.up_proj.weight", l1.UpProj);
        Assert.Equal("model.layers.1.mlp.down_proj.weight", l1.DownProj);
        Assert.Equal(["model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight"],
            l1.QkvProjections);
        Assert.Equal(["model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight"], l1.GateUpProjections);
        if (bias)
        {
            Assert.Equal("model.layers.1.self_attn.q_proj.bias", l1.QBias);
            Assert.Equal("model.layers.1.self_attn.k_proj.bias", l1.KBias);
            Assert.Equal("model.layers.1.self_attn.v_proj.bias", l1.VBias);
            Assert.Equal(["model.layers.1.self_attn.q_proj.bias", "model.layers.1.self_attn.k_proj.bias", "model.layers.1.self_attn.v_proj.bias"],
                l1.QkvBiases);
        }
        else
        {
            Assert.Null(l1.QBias); Assert.Null(l1.KBias); Assert.Null(l1.VBias); Assert.Null(l1.QkvBiases);
        }
        // every tensor of the layer starts with its prefix and the roles follow the names
        Assert.All(l1.Tensors, t => Assert.StartsWith("model.layers.1.", t.Name, StringComparison.Ordinal));
        Assert.All(l1.Tensors, t => Assert.Equal(
            t.Name.EndsWith("layernorm.weight", StringComparison.Ordinal) ? TensorRole.NormWeight
            : t.Name.EndsWith(".bias", StringComparison.Ordinal) ? TensorRole.Bias : TensorRole.Matrix, t.Role));
    }

    [Theory]
    [MemberData(nameof(TestUtil.TiedBias), MemberType = typeof(TestUtil))]
    public void LayerTensorNamesAreTheWeightsThenTheBiases(bool tied, bool bias)
    {
        var m = LlamaModel.CreateRandom(TestUtil.Tiny(tied, bias), 1);
        var expected = LayerNames.Select(n => "model.layers.0." + n).ToList();
        if (bias) expected.AddRange(["model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias", "model.layers.0.self_attn.v_proj.bias"]);
        Assert.Equal(expected, m.LayerTensorNames(0));
        Assert.Same(m.Layout.Layers[0].QProj, m.Layout.Layers[0].QkvProjections[0]);
    }

    [Fact]
    public void HeadDimOverrideShapesTheAttentionTensors()
    {
        // Qwen3-style: head_dim given, heads × head_dim ≠ hidden
        var c = TestUtil.Tiny(tied: true, bias: true) with { HeadDimOverride = 6 };
        var layer = DecoderLayout.For(c).Layers[0];
        string Shape(string name) => layer.Tensors.Single(t => t.Name == name).ShapeText;
        Assert.Equal("[24, 16]", Shape("model.layers.0.self_attn.q_proj.weight"));
        Assert.Equal("[12, 16]", Shape("model.layers.0.self_attn.k_proj.weight"));
        Assert.Equal("[12]", Shape("model.layers.0.self_attn.v_proj.bias"));
        Assert.Equal("[16, 24]", Shape("model.layers.0.self_attn.o_proj.weight"));
        Assert.Equal(6, DecoderLayout.For(c).HeadDim);
    }

    [Fact]
    public void CheckpointExtrasAreIgnorableOnlyWhereHuggingFaceWritesThem()
    {
        var tied = DecoderLayout.For(TestUtil.Tiny(tied: true, bias: false));
        var untied = DecoderLayout.For(TestUtil.Tiny(tied: false, bias: false));
        Assert.True(tied.IsIgnorable("lm_head.weight"));
        Assert.False(untied.IsIgnorable("lm_head.weight"));
        Assert.True(untied.Contains("lm_head.weight"));
        Assert.True(tied.IsIgnorable("model.layers.0.self_attn.rotary_emb.inv_freq"));
        Assert.False(tied.IsIgnorable("model.layers.0.self_attn.o_proj.bias"));
        Assert.False(tied.Contains("model.layers.0.self_attn.o_proj.bias"));
        Assert.True(tied.TryGet("model.norm.weight", out var norm));
        Assert.Equal(16, norm.ElementCount);
        Assert.False(tied.TryGet("model.layers.2.input_layernorm.weight", out _));
    }

    [Fact]
    public void AnInvalidConfigIsRejectedAsTensorShapesRejectsIt()
    {
        var bad = TestUtil.Tiny(tied: true, bias: false) with { NumKeyValueHeads = 3 };
        var a = Assert.Throws<ArgumentException>(() => DecoderLayout.For(bad));
        var b = Assert.Throws<ArgumentException>(() => bad.TensorShapes());
        Assert.Equal(b.Message, a.Message);
        Assert.Contains("num_key_value_heads", a.Message);
        Assert.Throws<ArgumentNullException>(() => DecoderLayout.For(null!));
    }
}
