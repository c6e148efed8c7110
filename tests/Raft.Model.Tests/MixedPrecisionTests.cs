namespace Raft.Model.Tests;

/// <summary>
/// Mixed precision (<see cref="LlamaModel.SetComputeDType"/>): an fp32 model with 16-bit compute copies computes what the
/// fp32 model computes at the rounded weights — forward, KV-cached decoding and every gradient (the matrices' too) — up
/// to fp32 summation order (normwise relative error ≤ 2e-5 on logits, ≤ 1e-4 on gradients, as for stored 16-bit
/// weights), while its fp32 masters stay as they are and take the updates.
/// </summary>
public class MixedPrecisionTests
{
    private static ModelConfig Wide(bool tied) => new()
    {
        ModelType = "qwen2", HiddenSize = 72, IntermediateSize = 100, NumHiddenLayers = 2, NumAttentionHeads = 6, NumKeyValueHeads = 2,
        VocabSize = 131, RmsNormEps = 1e-6, RopeTheta = 10000, MaxPositionEmbeddings = 64, AttentionBias = true, TieWordEmbeddings = tied,
    };

    /// <summary>The fp32 weights with every matrix rounded to <paramref name="dtype"/> and widened back (exact).</summary>
    private static TensorSet Rounded(ModelConfig c, TensorSet weights, SafeTensorDType dtype)
    {
        var layout = DecoderLayout.For(c);
        var set = new TensorSet();
        foreach (var t in weights.Tensors)
            set.Add(layout.Tensors.Any(s => s.Name == t.Name && s.Role == TensorRole.Matrix)
                ? HalfMatrix.FromSingle(t, dtype).ToSingle()
                : new Tensor(t.Name, t.Shape, (float[])t.Data.Clone()));
        return set;
    }

    private static TensorSet Clone(TensorSet s)
    {
        var c = new TensorSet();
        foreach (var t in s.Tensors) c.Add(new Tensor(t.Name, t.Shape, (float[])t.Data.Clone()));
        return c;
    }

    public static TheoryData<SafeTensorDType, bool, bool> Cases() => new()
    {
        { SafeTensorDType.BF16, false, false }, { SafeTensorDType.BF16, true, false }, { SafeTensorDType.F16, false, false },
        { SafeTensorDType.BF16, false, true },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardDecodeAndGradientsAreTheFp32ModelsAtTheRoundedWeights(SafeTensorDType dtype, bool tied, bool checkpointing)
    {
        var c = Wide(tied);
        var weights = TestModels.RandomWeights(c, seed: 21 + (int)dtype);
        var masters = Clone(weights);
        var mixed = new LlamaModel(c, masters) { Threads = 2 };
        mixed.SetComputeDType(dtype);
        var reference = new LlamaModel(c, Rounded(c, weights, dtype)) { Threads = 2 };
        Assert.Equal(dtype, mixed.ComputeDType);
        Assert.False(mixed.IsInferenceOnly);     // the masters train
        TestModels.AssertBitEqual(weights, masters); // and are not rounded

        var rng = new Random(5);
        int batch = 2, seq = 9, n = batch * seq;  // 18 rows: the packed path; decoding below the streaming one
        var tokens = Enumerable.Range(0, n).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var ma = new ModelActivations { GradientCheckpointing = checkpointing };
        var ra = new ModelActivations();
        var a = mixed.Forward(tokens, batch, seq, ma);
        var b = reference.Forward(tokens, batch, seq, ra);
        Assert.True(Tolerances.MaxRelError(a, b) < 2e-5, $"forward: {Tolerances.MaxRelError(a, b)}");
        var fp32 = new LlamaModel(c, weights) { Threads = 2 }.Forward(tokens, batch, seq);
        Assert.True(Tolerances.MaxRelError(a, fp32) > 1e-4, "the copies are rounded: the logits differ from the fp32 model's");

        var dLogits = Enumerable.Range(0, n * c.VocabSize).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var grads = masters.ZerosLike();
        var expected = masters.ZerosLike();
        mixed.Backward(ma, dLogits, grads);
        reference.Backward(ra, dLogits, expected);
        foreach (var g in grads.Tensors)
        {
            double err = Tolerances.MaxRelError(g.Data, expected[g.Name].Data);
            Assert.True(err < 1e-4, $"{g.Name}: {err}");
        }
        Assert.Contains(grads.Tensors, g => g.Name.EndsWith("q_proj.weight", StringComparison.Ordinal) && g.Data.Any(v => v != 0));

        // KV-cached decoding: prefill 4, then 3 steps
        var cm = mixed.CreateKvCache(batch, 16);
        var cr = reference.CreateKvCache(batch, 16);
        var lm = new float[batch * c.VocabSize];
        var lr = new float[batch * c.VocabSize];
        var prompt = Enumerable.Range(0, batch * 4).Select(_ => rng.Next(c.VocabSize)).ToArray();
        mixed.Prefill(cm, prompt, 4, lm);
        reference.Prefill(cr, prompt, 4, lr);
        Assert.True(Tolerances.MaxRelError(lm, lr) < 2e-5, $"prefill: {Tolerances.MaxRelError(lm, lr)}");
        for (int s = 0; s < 3; s++)
        {
            var next = Enumerable.Range(0, batch).Select(_ => rng.Next(c.VocabSize)).ToArray();
            mixed.DecodeStep(cm, next, lm);
            reference.DecodeStep(cr, next, lr);
            Assert.True(Tolerances.MaxRelError(lm, lr) < 2e-5, $"decode step {s}: {Tolerances.MaxRelError(lm, lr)}");
        }
    }

    [Fact]
    public void GradientsThroughTheCopiesMatchFiniteDifferencesAtTheRoundedWeights()
    {
        // L = Σ r ⊙ logits; a norm weight and a bias (fp32, not rounded) perturbed in the mixed model itself, central
        // differences in fp32 with step 1e-2: agreement to a few percent normwise (fp32 FD noise and O(h²))
        var c = Wide(tied: false);
        var model = new LlamaModel(c, TestModels.RandomWeights(c, seed: 3)) { Threads = 2 };
        model.SetComputeDType(SafeTensorDType.BF16);
        var rng = new Random(9);
        int batch = 2, seq = 5, n = batch * seq;
        var tokens = Enumerable.Range(0, n).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var r = Enumerable.Range(0, n * c.VocabSize).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        double Loss()
        {
            var logits = model.Forward(tokens, batch, seq);
            double s = 0;
            for (int i = 0; i < logits.Length; i++) s += (double)r[i] * logits[i];
            return s;
        }
        var acts = new ModelActivations();
        model.Forward(tokens, batch, seq, acts);
        var grads = model.Parameters.ZerosLike();
        model.Backward(acts, r, grads);
        foreach (var name in new[] { "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight", "model.layers.0.self_attn.q_proj.bias" })
        {
            var p = model.Parameters[name].Data;
            var idx = Enumerable.Range(0, 6).Select(_ => rng.Next(p.Length)).Distinct().ToArray();
            double num2 = 0, diff2 = 0;
            foreach (int i in idx)
            {
                float keep = p[i];
                const float h = 1e-2f;
                p[i] = keep + h; double up = Loss();
                p[i] = keep - h; double down = Loss();
                p[i] = keep;
                double fd = (up - down) / (2 * h), an = grads[name].Data[i];
                num2 += fd * fd; diff2 += (fd - an) * (fd - an);
            }
            Assert.True(num2 > 0, $"{name}: the loss depends on it");
            Assert.True(Math.Sqrt(diff2 / num2) < 3e-2, $"{name}: FD vs analytic {Math.Sqrt(diff2 / num2)}");
        }
    }

    [Fact]
    public void RefreshReRoundsTheUpdatedMastersAndRemovingTheCopiesGivesTheFp32ModelBitForBit()
    {
        var c = Wide(tied: true);
        var weights = TestModels.RandomWeights(c, seed: 8);
        var mixed = new LlamaModel(c, Clone(weights)) { Threads = 2 };
        var plain = new LlamaModel(c, Clone(weights)) { Threads = 2 };
        var rng = new Random(4);
        var tokens = Enumerable.Range(0, 16).Select(_ => rng.Next(c.VocabSize)).ToArray();
        mixed.SetComputeDType(SafeTensorDType.BF16);

        // an "update" of the masters: the copies still hold the old rounding until refreshed
        foreach (var model in new[] { mixed, plain })
            foreach (var t in model.Parameters.Tensors)
                for (int i = 0; i < t.Length; i++) t.Data[i] += 0.003f * MathF.Sin(i + t.Length);
        var stale = mixed.Forward(tokens, 2, 8);
        mixed.RefreshComputeCopies();
        var fresh = mixed.Forward(tokens, 2, 8);
        var expected = new LlamaModel(c, Rounded(c, plain.Parameters, SafeTensorDType.BF16)) { Threads = 2 }.Forward(tokens, 2, 8);
        Assert.True(Tolerances.MaxRelError(fresh, expected) < 2e-5, $"refreshed: {Tolerances.MaxRelError(fresh, expected)}");
        Assert.True(Tolerances.MaxRelError(stale, expected) > 1e-4, "before the refresh the copies are stale");

        // only the named matrices refresh
        var q0 = "model.layers.0.self_attn.q_proj.weight";
        foreach (var t in mixed.Parameters.Tensors) for (int i = 0; i < t.Length; i++) t.Data[i] *= 1.5f;
        mixed.RefreshComputeCopies(name => name == q0);
        mixed.SetComputeDType(null);
        Assert.Null(mixed.ComputeDType);
        foreach (var t in plain.Parameters.Tensors) for (int i = 0; i < t.Length; i++) t.Data[i] *= 1.5f;
        Assert.Equal(plain.Forward(tokens, 2, 8), mixed.Forward(tokens, 2, 8));   // bit for bit: the fp32 kernels again
    }

    [Fact]
    public void StoredHalfMatricesStayAsStoredAndTheirGradientIsStillRefused()
    {
        var c = Wide(tied: false);
        var weights = TestModels.RandomWeights(c, seed: 2);
        var q = "model.layers.1.self_attn.q_proj.weight";
        var half = HalfMatrix.FromSingle(weights[q], SafeTensorDType.F16);
        var rest = new TensorSet();
        foreach (var t in weights.Tensors) if (t.Name != q) rest.Add(t);
        var model = new LlamaModel(c, rest, [half]) { Threads = 2 };
        model.SetComputeDType(SafeTensorDType.BF16);
        Assert.Same(half, model.HalfMatrices[q]);
        Assert.True(model.IsInferenceOnly);
        model.SetComputeDType(null);
        Assert.Same(half, model.HalfMatrices[q]);
        Assert.Single(model.HalfMatrices);
    }

    [Fact]
    public void VectorisedBf16RoundingIsTheScalarBitForBit()
    {
        var rng = new Random(17);
        var special = new[]
        {
            0f, -0f, 1f, -1f, float.NaN, -float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon,
            float.MaxValue, float.MinValue, BitConverter.UInt32BitsToSingle(0x3F808000), BitConverter.UInt32BitsToSingle(0x3F818000),
            BitConverter.UInt32BitsToSingle(0x7F7FFFFF), BitConverter.UInt32BitsToSingle(0x7FC00001), BitConverter.UInt32BitsToSingle(0x7F800001),
            BitConverter.UInt32BitsToSingle(0x007FFFFF), BitConverter.UInt32BitsToSingle(0x3F80FFFF),
        };
        foreach (int len in new[] { 0, 1, 15, 16, 17, 33, 1000 })
        {
            var src = new float[len];
            for (int i = 0; i < len; i++)
                src[i] = i < special.Length && len > special.Length ? special[i] : BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(0, 1L << 32));
            var dst = new ushort[len];
            SafeTensorDTypes.SingleToBFloat16(src, dst);
            for (int i = 0; i < len; i++)
                Assert.True(SafeTensorDTypes.SingleToBFloat16(src[i]) == dst[i], $"len {len} [{i}] = 0x{BitConverter.SingleToUInt32Bits(src[i]):X8}: scalar 0x{SafeTensorDTypes.SingleToBFloat16(src[i]):X4}, vector 0x{dst[i]:X4}");
        }
    }
}
