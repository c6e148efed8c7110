using Raft.Model.Ops;

namespace Raft.Model.Tests;

/// <summary>Known answers, derived by hand, that pin Hugging Face's conventions (fast ops and reference alike).</summary>
public class ConventionTests
{
    [Fact]
    public void RopeAtPositionZeroIsIdentity()
    {
        var x = new float[] { 1, 2, 3, 4, 5, 6, 7, 8 };
        var y = (float[])x.Clone();
        new RopeTable(4, 10000).Apply(y, [0], 1, 2, inverse: false, 1);
        Assert.Equal(x, y);
        Assert.Equal(x.Select(v => (double)v), ReferenceOps.Rope(x.Select(v => (double)v).ToArray(), [0], 1, 2, 4, 10000));
    }

    [Fact]
    public void RopeRotatesFirstHalfAgainstSecondHalf()
    {
        // head_dim 4, θ = 10000: inv_freq = [1, 10000^(-2/4)] = [1, 0.01]; at position 1 the angles are 1 and 0.01.
        // rotate_half pairs x[i] with x[i + 2] (not adjacent elements): x = [1, 2, 3, 4] →
        // [1 cos1 − 3 sin1, 2 cos.01 − 4 sin.01, 3 cos1 + 1 sin1, 4 cos.01 + 2 sin.01]
        double[] want =
        [
            Math.Cos(1) - 3 * Math.Sin(1), 2 * Math.Cos(0.01) - 4 * Math.Sin(0.01),
            3 * Math.Cos(1) + Math.Sin(1), 4 * Math.Cos(0.01) + 2 * Math.Sin(0.01),
        ];
        var y = new float[] { 1, 2, 3, 4 };
        new RopeTable(4, 10000).Apply(y, [1], 1, 1, inverse: false, 1);
        for (int i = 0; i < 4; i++) Assert.Equal(want[i], y[i], 1e-6);
        var r = ReferenceOps.Rope([1, 2, 3, 4], [1], 1, 1, 4, 10000);
        for (int i = 0; i < 4; i++) Assert.Equal(want[i], r[i], 1e-12);
    }

    [Fact]
    public void RmsNormScalesByRootMeanSquareThenWeight()
    {
        // x = [1, 2, 3, 4]: mean(x²) = 30/4 = 7.5; y = w ⊙ x / sqrt(7.5 + ε)
        float[] x = [1, 2, 3, 4], w = [1, 1, 2, 0.5f];
        double rs = 1 / Math.Sqrt(7.5 + 1e-6);
        double[] want = [rs, 2 * rs, 6 * rs, 2 * rs];
        var y = new float[4]; var rstd = new float[1];
        RmsNorm.Forward(x, w, y, rstd, 1, 4, 1e-6f, 1);
        for (int i = 0; i < 4; i++) Assert.Equal(want[i], y[i], 1e-6);
        var r = ReferenceOps.RmsNorm([1, 2, 3, 4], [1, 1, 2, 0.5], 1, 4, 1e-6);
        for (int i = 0; i < 4; i++) Assert.Equal(want[i], r[i], 1e-12);
    }

    [Fact]
    public void AttentionIsCausalScaledAndGrouped()
    {
        // 2 tokens, 4 query heads over 2 KV heads, head_dim 2. Heads 0, 1 read KV head 0; heads 2, 3 read KV head 1.
        // Token 0 sees only itself: out = v₀. Token 1 with q = [1, 0] and k₀ = [0, 0], k₁ = [√2·ln 3, 0]:
        // scores (q·k / √2) are 0 and ln 3, so p = [1/4, 3/4] and out = v₀/4 + 3v₁/4.
        int t = 2, h = 4, kv = 2, hd = 2;
        double l3 = Math.Sqrt(2) * Math.Log(3);
        var q = new float[t * h * hd];
        for (int head = 0; head < h; head++) { q[(1 * h + head) * hd] = 1; q[(0 * h + head) * hd + 1] = 5; }
        float[] k = [0, 0, 0, 0, /* token 1 */ (float)l3, 0, (float)l3, 0];
        float[] v = [1, 0, 10, 0, /* token 1 */ 0, 1, 0, 10];   // kv head 1 is kv head 0 times 10
        var o = new float[q.Length];
        Attention.Forward(q, k, v, KvLayout.Rows(t, kv, hd), o, new float[h * t], 1, t, h, kv, hd, 0, 1);
        var r = ReferenceOps.Attention(D(q), D(k), D(v), 1, t, h, kv, hd);
        for (int head = 0; head < h; head++)
        {
            double f = head < 2 ? 1 : 10;
            double[] want0 = [f, 0], want1 = [0.25 * f, 0.75 * f];
            for (int d = 0; d < hd; d++)
            {
                Assert.Equal(want0[d], o[(0 * h + head) * hd + d], 1e-5);
                Assert.Equal(want1[d], o[(1 * h + head) * hd + d], 1e-5);
                // the reference reads the same fp32 inputs (√2·ln 3 rounded to float), hence 1e-7
                Assert.Equal(want0[d], r[(0 * h + head) * hd + d], 1e-7);
                Assert.Equal(want1[d], r[(1 * h + head) * hd + d], 1e-7);
            }
        }
    }

    [Fact]
    public void SwiGluIsSiluOfGateTimesUp()
    {
        // silu(1) · 2 = 2 / (1 + e^-1);  silu(-2) · 3 = −6 / (1 + e^2)
        float[] g = [1, -2], u = [2, 3]; var hh = new float[2];
        SwiGlu.Forward(g, u, hh, 1);
        Assert.Equal(2 / (1 + Math.Exp(-1)), hh[0], 1e-6);
        Assert.Equal(-6 / (1 + Math.Exp(2)), hh[1], 1e-6);
    }

    [Fact]
    public void OneTokenModelIsNormEmbedThroughBlocks()
    {
        // With zero projections every residual branch is zero, so logits = lm_head · RMSNorm(E[token]) ⊙ w_final.
        var c = TestUtil.Tiny(tied: true, bias: false);
        var p = RandomData.RandomParameters(c, 1);
        foreach (var t in p.Tensors)
            if (t.Name.Contains(".layers.", StringComparison.Ordinal) && t.Shape.Length == 2) Array.Clear(t.Data);
        var logits = new LlamaModel(c, p).Forward([3], 1, 1);
        var e = p["model.embed_tokens.weight"].Data; var w = p["model.norm.weight"].Data;
        int d = c.HiddenSize;
        double ms = 0; for (int i = 0; i < d; i++) ms += e[3 * d + i] * (double)e[3 * d + i];
        double rs = 1 / Math.Sqrt(ms / d + c.RmsNormEps);
        for (int tok = 0; tok < c.VocabSize; tok++)
        {
            double s = 0; for (int i = 0; i < d; i++) s += e[tok * d + i] * e[3 * d + i] * rs * w[i];
            Assert.Equal(s, logits[tok], 1e-5);
        }
    }

    private static double[] D(float[] a) => Array.ConvertAll(a, v => (double)v);
}
