using Raft.Model.Ops;

namespace Raft.Model.Tests;

/// <summary>The fast fp32 model against the double reference on fresh random weights.</summary>
public class FastVsReferenceTests
{
    public static IEnumerable<object[]> Cases()
    {
        foreach (bool medium in new[] { false, true })
            foreach (var tb in TestUtil.TiedBias())
                yield return [medium, tb[0], tb[1]];
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitsAndGradientsMatchReference(bool medium, bool tied, bool bias)
    {
        var c = medium ? TestUtil.Medium(tied, bias) : TestUtil.Tiny(tied, bias);
        int batch = 2, t = medium ? 9 : 5, n = batch * t;
        var parameters = RandomData.RandomParameters(c, 200 + (medium ? 10 : 0) + (tied ? 1 : 0) + (bias ? 2 : 0), medium ? 0.15 : 0.3);
        var fast = new LlamaModel(c, parameters) { Threads = 2 };
        var reference = new ReferenceModel(c, parameters);
        var tokens = RandomData.RandomTokens(n, c.VocabSize, 3);
        var r = TestUtil.RandomFloats(n * c.VocabSize, 4);

        var acts = new ModelActivations();
        var logits = fast.Forward(tokens, batch, t, acts);
        var refLogits = reference.Forward(tokens, batch, t, out var refActs);
        Assert.True(Tolerances.MaxRelError(logits, refLogits) < 1e-4, $"logits: {Tolerances.MaxRelError(logits, refLogits)}");

        var grads = parameters.ZerosLike();
        fast.Backward(acts, r, grads);
        var refGrads = reference.Backward(refActs, Array.ConvertAll(r, v => (double)v));
        foreach (var g in grads.Tensors)
        {
            double e = Tolerances.MaxRelError(g.Data, refGrads[g.Name]);
            Assert.True(e < 1e-4, $"{g.Name}: relative error {e}");
        }
    }

    [Fact]
    public void BackwardWithIntermediateNarrowerThanAttention()
    {
        // intermediate_size (24) < H·head_dim (32): the scratch that holds dH and then dAtt must fit the wider one
        var c = TestUtil.Tiny(tied: false, bias: true) with { HiddenSize = 32 };
        int batch = 2, t = 5, n = batch * t;
        var parameters = RandomData.RandomParameters(c, 231);
        var fast = new LlamaModel(c, parameters) { Threads = 2 };
        var reference = new ReferenceModel(c, parameters);
        var tokens = RandomData.RandomTokens(n, c.VocabSize, 5);
        var r = TestUtil.RandomFloats(n * c.VocabSize, 6);
        var acts = new ModelActivations();
        fast.Forward(tokens, batch, t, acts);
        reference.Forward(tokens, batch, t, out var refActs);
        var grads = parameters.ZerosLike();
        fast.Backward(acts, r, grads);
        var refGrads = reference.Backward(refActs, Array.ConvertAll(r, v => (double)v));
        foreach (var g in grads.Tensors)
        {
            double e = Tolerances.MaxRelError(g.Data, refGrads[g.Name]);
            Assert.True(e < 1e-4, $"{g.Name}: relative error {e}");
        }
    }

    [Fact]
    public void BackwardAccumulatesAndIsDeterministicAcrossThreadCounts()
    {
        var c = TestUtil.Medium(tied: true, bias: true);
        var parameters = RandomData.RandomParameters(c, 5, 0.15);
        int batch = 2, t = 7, n = batch * t;
        var tokens = RandomData.RandomTokens(n, c.VocabSize, 6);
        var r = TestUtil.RandomFloats(n * c.VocabSize, 7);
        (float[] Logits, TensorSet Grads) Run(int threads, int times)
        {
            var m = new LlamaModel(c, parameters) { Threads = threads };
            var acts = new ModelActivations();
            var grads = parameters.ZerosLike();
            float[] logits = [];
            for (int i = 0; i < times; i++)
            {
                logits = m.Forward(tokens, batch, t, acts);
                m.Backward(acts, r, grads);
            }
            return (logits, grads);
        }
        var one = Run(1, 1);
        var two = Run(2, 1);
        var twice = Run(2, 2);
        Assert.Equal(one.Logits, two.Logits);
        foreach (var g in one.Grads.Tensors)
        {
            Assert.Equal(g.Data, two.Grads[g.Name].Data);
            var doubled = twice.Grads[g.Name].Data;
            for (int i = 0; i < g.Length; i++) Assert.Equal(2 * g.Data[i], doubled[i], 1e-5f * Math.Max(1f, Math.Abs(2 * g.Data[i])));
        }
    }

    [Fact]
    public void OpsMatchReference()
    {
        int b = 2, t = 6, h = 4, kv = 2, hd = 8, n = b * t, c = 24;
        // RMSNorm
        var x = TestUtil.RandomFloats(n * c, 1); var w = TestUtil.RandomFloats(c, 2); var dy = TestUtil.RandomFloats(n * c, 3);
        var y = new float[n * c]; var rstd = new float[n];
        RmsNorm.Forward(x, w, y, rstd, n, c, 1e-6f, 2);
        double[] xd = D(x), wd = D(w), dyd = D(dy);
        Assert.True(Tolerances.MaxRelError(y, ReferenceOps.RmsNorm(xd, wd, n, c, 1e-6)) < 1e-5);
        var dx = new float[n * c]; var dw = new float[c];
        RmsNorm.Backward(dy, x, w, rstd, dx, dw, n, c, 2, accumulateDx: false);
        double[] dxr = new double[n * c], dwr = new double[c];
        ReferenceOps.RmsNormBackward(dyd, xd, wd, dxr, dwr, n, c, 1e-6);
        Assert.True(Tolerances.MaxRelError(dx, dxr) < 1e-5);
        Assert.True(Tolerances.MaxRelError(dw, dwr) < 1e-5);

        // RoPE
        var pos = Enumerable.Range(0, n).Select(i => i % t * 3).ToArray();
        var rope = new RopeTable(hd, 10000);
        var q = TestUtil.RandomFloats(n * h * hd, 4);
        var qr = (float[])q.Clone();
        rope.Apply(qr, pos, n, h, inverse: false, 2);
        Assert.True(Tolerances.MaxRelError(qr, ReferenceOps.Rope(D(q), pos, n, h, hd, 10000)) < 1e-5);
        var back = (float[])qr.Clone();
        rope.Apply(back, pos, n, h, inverse: true, 2);
        Assert.True(Tolerances.MaxRelError(back, q) < 1e-5);

        // attention
        var k = TestUtil.RandomFloats(n * kv * hd, 5); var v = TestUtil.RandomFloats(n * kv * hd, 6);
        var o = new float[n * h * hd]; var lse = new float[b * h * t];
        Attention.Forward(q, k, v, KvLayout.Rows(t, kv, hd), o, lse, b, t, h, kv, hd, 0, 2);
        Assert.True(Tolerances.MaxRelError(o, ReferenceOps.Attention(D(q), D(k), D(v), b, t, h, kv, hd)) < 1e-5);
        var dout = TestUtil.RandomFloats(o.Length, 7);
        float[] dq = new float[q.Length], dk = new float[k.Length], dv = new float[v.Length];
        Attention.Backward(dout, q, k, v, o, lse, dq, dk, dv, b, t, h, kv, hd, 2);
        double[] dqr = new double[q.Length], dkr = new double[k.Length], dvr = new double[v.Length];
        ReferenceOps.AttentionBackward(D(dout), D(q), D(k), D(v), dqr, dkr, dvr, b, t, h, kv, hd);
        Assert.True(Tolerances.MaxRelError(dq, dqr) < 1e-5);
        Assert.True(Tolerances.MaxRelError(dk, dkr) < 1e-5);
        Assert.True(Tolerances.MaxRelError(dv, dvr) < 1e-5);

        // SwiGLU (length not a multiple of the vector width or the chunk)
        int len = 5000;
        var g = TestUtil.RandomFloats(len, 8, 3); var u = TestUtil.RandomFloats(len, 9); var dh = TestUtil.RandomFloats(len, 10);
        var hh = new float[len];
        SwiGlu.Forward(g, u, hh, 2);
        Assert.True(Tolerances.MaxRelError(hh, ReferenceOps.SwiGlu(D(g), D(u))) < 1e-5);
        float[] dg = new float[len], du = new float[len];
        SwiGlu.Backward(dh, g, u, dg, du, 2);
        double[] dgr = new double[len], dur = new double[len];
        ReferenceOps.SwiGluBackward(D(dh), D(g), D(u), dgr, dur);
        Assert.True(Tolerances.MaxRelError(dg, dgr) < 1e-5);
        Assert.True(Tolerances.MaxRelError(du, dur) < 1e-5);
    }

    [Theory]
    [InlineData(1, 130, 2, 1, 16)]   // three query blocks of 64, the last one partial
    [InlineData(2, 64, 6, 3, 8)]     // exactly one block
    [InlineData(1, 1, 2, 2, 4)]      // a single token
    public void AttentionMatchesReferenceAcrossQueryBlocks(int b, int t, int h, int kv, int hd)
    {
        int n = b * t;
        var q = TestUtil.RandomFloats(n * h * hd, 1); var k = TestUtil.RandomFloats(n * kv * hd, 2); var v = TestUtil.RandomFloats(n * kv * hd, 3);
        var o = new float[q.Length]; var lse = new float[b * h * t];
        Attention.Forward(q, k, v, KvLayout.Rows(t, kv, hd), o, lse, b, t, h, kv, hd, 0, 2);
        Assert.True(Tolerances.MaxRelError(o, ReferenceOps.Attention(D(q), D(k), D(v), b, t, h, kv, hd)) < 1e-5);
        var dout = TestUtil.RandomFloats(o.Length, 4);
        float[] dq = new float[q.Length], dk = new float[k.Length], dv = new float[v.Length];
        Attention.Backward(dout, q, k, v, o, lse, dq, dk, dv, b, t, h, kv, hd, 2);
        double[] dqr = new double[q.Length], dkr = new double[k.Length], dvr = new double[v.Length];
        ReferenceOps.AttentionBackward(D(dout), D(q), D(k), D(v), dqr, dkr, dvr, b, t, h, kv, hd);
        Assert.True(Tolerances.MaxRelError(dq, dqr) < 1e-5, $"dq {Tolerances.MaxRelError(dq, dqr)}");
        Assert.True(Tolerances.MaxRelError(dk, dkr) < 1e-5, $"dk {Tolerances.MaxRelError(dk, dkr)}");
        Assert.True(Tolerances.MaxRelError(dv, dvr) < 1e-5, $"dv {Tolerances.MaxRelError(dv, dvr)}");
    }

    private static double[] D(float[] a) => Array.ConvertAll(a, v => (double)v);
}
