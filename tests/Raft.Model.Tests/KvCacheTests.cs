namespace Raft.Model.Tests;

/// <summary>Incremental decoding with a KV cache gives the logits of a full forward of the same sequence.</summary>
public class KvCacheTests
{
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    [InlineData(true, false, 70)]   // a prompt longer than one 64-query attention block
    public void DecodeMatchesFullForward(bool medium, bool bias, int prompt = 4)
    {
        var c = medium ? TestUtil.Medium(tied: false, bias) : TestUtil.Tiny(tied: true, bias);
        var model = new LlamaModel(c, RandomData.RandomParameters(c, 42, medium ? 0.15 : 0.3)) { Threads = 2 };
        int batch = 2, steps = 6, total = prompt + steps, v = c.VocabSize;
        var seq = RandomData.RandomTokens(batch * total, v, 9);   // [B, total]
        var full = model.Forward(seq, batch, total);           // [B·total, V]

        var cache = model.CreateKvCache(batch, total);
        var promptTokens = new int[batch * prompt];
        for (int b = 0; b < batch; b++) Array.Copy(seq, b * total, promptTokens, b * prompt, prompt);
        var logits = new float[batch * v];
        model.Prefill(cache, promptTokens, prompt, logits);
        Check(prompt - 1);
        for (int s = prompt; s < total; s++)
        {
            var step = new int[batch];
            for (int b = 0; b < batch; b++) step[b] = seq[b * total + s];
            model.DecodeStep(cache, step, logits);
            Check(s);
        }
        Assert.Equal(total, cache.Length);
        Assert.Throws<InvalidOperationException>(() => model.DecodeStep(cache, new int[batch], logits));

        void Check(int position)
        {
            for (int b = 0; b < batch; b++)
            {
                var want = full.AsSpan((b * total + position) * v, v);
                double e = Tolerances.MaxRelError(logits.AsSpan(b * v, v), want);
                Assert.True(e < 1e-5, $"sequence {b}, position {position}: relative error {e}");
            }
        }
    }

    [Fact]
    public void ChunkedPrefillMatchesFullForward()
    {
        // a prompt fed in two chunks (3 then 4 tokens): the second chunk attends to the cached first one
        var c = TestUtil.Medium(tied: true, bias: true);
        var model = new LlamaModel(c, RandomData.RandomParameters(c, 8, 0.15));
        int batch = 2, t = 7, v = c.VocabSize;
        var seq = RandomData.RandomTokens(batch * t, v, 2);
        var full = model.Forward(seq, batch, t);
        var cache = model.CreateKvCache(batch, 16);
        var logits = new float[batch * v];
        int[] Chunk(int from, int len) => Enumerable.Range(0, batch).SelectMany(b => seq.Skip(b * t + from).Take(len)).ToArray();
        model.Prefill(cache, Chunk(0, 3), 3, logits);
        model.Prefill(cache, Chunk(3, 4), 4, logits);
        for (int b = 0; b < batch; b++)
            Assert.True(Tolerances.MaxRelError(logits.AsSpan(b * v, v), full.AsSpan((b * t + t - 1) * v, v)) < 1e-5);
        cache.Reset();
        Assert.Equal(0, cache.Length);
    }

    [Fact]
    public void ExplicitPositionsShiftRope()
    {
        // positions p..p+T-1 given explicitly equal the reference with the same positions
        var c = TestUtil.Tiny(tied: false, bias: true);
        var parameters = RandomData.RandomParameters(c, 3);
        var model = new LlamaModel(c, parameters);
        var tokens = RandomData.RandomTokens(6, c.VocabSize, 1);
        var pos = new[] { 3, 4, 5, 10, 11, 12 };
        var logits = model.Forward(tokens, 2, 3, positions: pos);
        var refLogits = new ReferenceModel(c, parameters).Forward(tokens, 2, 3, out _, pos);
        Assert.True(Tolerances.MaxRelError(logits, refLogits) < 1e-4);
    }
}
