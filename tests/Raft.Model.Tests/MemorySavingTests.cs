namespace Raft.Model.Tests;

/// <summary>
/// The memory-saving paths of the fp32 model against the plain ones: gradient checkpointing (the same gradients, bit for
/// bit, for every family and with LoRA dropout) and the lm_head a chunk of rows at a time (<see cref="LlamaModel.ForwardHidden"/>,
/// <see cref="LlamaModel.LmHead"/>, <see cref="LlamaModel.LmHeadBackward"/>, <see cref="LlamaModel.BackwardFromHidden"/>:
/// the logits and gradients of the whole-batch forward and backward), on fresh random weights.
/// </summary>
public class MemorySavingTests
{
    public static TheoryData<string> Families() => [.. FamilyTests.Configs.Keys];

    private static (float[] Logits, TensorSet Grads) ForwardBackward(LlamaModel m, int[] tokens, int batch, int t, float[] dLogits, bool checkpointing,
        TensorSet gradShapes)
    {
        var acts = new ModelActivations { GradientCheckpointing = checkpointing };
        var logits = m.Forward(tokens, batch, t, acts);
        var grads = gradShapes.ZerosLike();
        m.Backward(acts, dLogits, grads);
        return (logits, grads);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void GradientCheckpointingGivesTheSameGradientsBitForBit(string family)
    {
        var c = FamilyTests.Configs[family];
        var parameters = RandomData.RandomParameters(c, 41, 0.3);
        var m = new LlamaModel(c, parameters) { Threads = 2 };
        int batch = 2, t = Math.Min(6, c.MaxPositionEmbeddings), n = batch * t;
        var tokens = RandomData.RandomTokens(n, c.VocabSize, 42);
        var r = TestUtil.RandomFloats(n * c.VocabSize, 43);
        var plain = ForwardBackward(m, tokens, batch, t, r, checkpointing: false, parameters);
        var ckpt = ForwardBackward(m, tokens, batch, t, r, checkpointing: true, parameters);
        Assert.Equal(plain.Logits, ckpt.Logits);
        TestModels.AssertBitEqual(plain.Grads, ckpt.Grads);
        Assert.Contains(plain.Grads.Tensors, g => g.Data.Any(v => v != 0));
    }

    [Fact]
    public void GradientCheckpointingWithLoraDropoutGivesTheSameAdapterGradients()
    {
        var c = TestUtil.Medium(tied: true, bias: true);
        var parameters = RandomData.RandomParameters(c, 51, 0.2);
        var adapters = LoraAdapters.Create(DecoderLayout.For(c), new LoraConfig { Rank = 3, Alpha = 6, Dropout = 0.3, TargetModules = LoraConfig.ModuleNames }, 52);
        var rng = new Random(53);
        foreach (var p in adapters.Parameters.Tensors)
            for (int i = 0; i < p.Length; i++) p.Data[i] = (float)(0.3 * (rng.NextDouble() * 2 - 1));
        adapters.Training = true;
        adapters.DropoutSeed = 9;
        adapters.DropoutStep = 3;
        var m = new LlamaModel(c, parameters) { Threads = 2, Lora = adapters };
        int batch = 2, t = 7, n = batch * t;
        var tokens = RandomData.RandomTokens(n, c.VocabSize, 54);
        var r = TestUtil.RandomFloats(n * c.VocabSize, 55);
        var plain = ForwardBackward(m, tokens, batch, t, r, checkpointing: false, adapters.Parameters);
        var ckpt = ForwardBackward(m, tokens, batch, t, r, checkpointing: true, adapters.Parameters);
        TestModels.AssertBitEqual(plain.Grads, ckpt.Grads);
        Assert.Contains(plain.Grads.Tensors, g => g.Data.Any(v => v != 0));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]      // does not divide the 14 rows
    [InlineData(7)]
    [InlineData(14)]     // all rows
    [InlineData(100)]    // more than the rows
    public void TheLmHeadInChunksGivesTheWholeBatchLogitsAndGradients(int chunk)
    {
        foreach (bool tied in new[] { false, true })
        {
            var c = TestUtil.Medium(tied, bias: true);
            var parameters = RandomData.RandomParameters(c, 61 + (tied ? 1 : 0), 0.2);
            var m = new LlamaModel(c, parameters) { Threads = 2 };
            int batch = 2, t = 7, n = batch * t, v = c.VocabSize, d = c.HiddenSize;
            var tokens = RandomData.RandomTokens(n, v, 63);
            var r = TestUtil.RandomFloats(n * v, 64);
            var whole = ForwardBackward(m, tokens, batch, t, r, checkpointing: false, parameters);

            var acts = new ModelActivations();
            var hidden = m.ForwardHidden(tokens, batch, t, acts).ToArray();
            Assert.Equal(hidden, acts.Hidden.ToArray());
            var grads = parameters.ZerosLike();
            var dHidden = new float[n * d];
            for (int r0 = 0; r0 < n; r0 += chunk)
            {
                int rows = Math.Min(chunk, n - r0);
                var logits = new float[rows * v];
                m.LmHead(hidden.AsSpan(r0 * d, rows * d), rows, logits);
                double le = Tolerances.MaxRelError(logits, whole.Logits.AsSpan(r0 * v, rows * v).ToArray());
                Assert.True(le < 1e-6, $"chunk {chunk}, rows {r0}..: logits {le}");
                m.LmHeadBackward(r.AsSpan(r0 * v, rows * v), hidden.AsSpan(r0 * d, rows * d), rows, dHidden.AsSpan(r0 * d, rows * d), grads);
            }
            m.BackwardFromHidden(acts, dHidden, grads);
            foreach (var g in grads.Tensors)
            {
                double e = Tolerances.MaxRelError(g.Data, Array.ConvertAll(whole.Grads[g.Name].Data, x => (double)x));
                Assert.True(e < 1e-6, $"chunk {chunk}, tied {tied}: {g.Name} relative error {e}");
            }
        }
    }

    [Fact]
    public void TheHeadsArgumentsAreChecked()
    {
        var c = TestUtil.Tiny(false, false);
        var m = new LlamaModel(c, RandomData.RandomParameters(c, 1, 0.2));
        var e = Assert.Throws<ArgumentException>(() => m.LmHead(new float[c.HiddenSize], 2, new float[2 * c.VocabSize]));
        Assert.Equal("hidden", e.ParamName);
        var dLogits = new float[c.VocabSize];
        dLogits[3] = float.NaN;
        e = Assert.Throws<ArgumentException>(() => m.LmHeadBackward(dLogits, new float[c.HiddenSize], 1, new float[c.HiddenSize], m.Parameters.ZerosLike()));
        Assert.Contains("dLogits[0, 3]", e.Message);
        var acts = new ModelActivations();
        m.ForwardHidden([1, 2, 3], 1, 3, acts);
        e = Assert.Throws<ArgumentException>(() => m.BackwardFromHidden(acts, new float[c.HiddenSize], m.Parameters.ZerosLike()));
        Assert.Equal("dHidden", e.ParamName);
    }
}
