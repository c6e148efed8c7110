namespace Raft.Model.Tests;

/// <summary>LoRA adapters in the fp32 model against the double reference, finite differences, merging and freezing.</summary>
public class LoraTests
{
    private static LoraConfig AllTargets(int rank = 3, double alpha = 6, double dropout = 0) =>
        new() { Rank = rank, Alpha = alpha, Dropout = dropout, TargetModules = LoraConfig.ModuleNames };

    /// <summary>Adapters with random A and B (B nonzero, unlike PEFT's init, so that every gradient path is exercised).</summary>
    private static LoraAdapters RandomAdapters(ModelConfig c, LoraConfig lc, int seed, double scale = 0.3)
    {
        var a = LoraAdapters.Create(DecoderLayout.For(c), lc, (ulong)seed);
        var rng = new Random(seed);
        foreach (var t in a.Parameters.Tensors)
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)(scale * Gauss.Next(rng));
        return a;
    }

    public static IEnumerable<object[]> Cases()
    {
        foreach (bool medium in new[] { false, true })
            foreach (var tb in TestUtil.TiedBias())
                foreach (double p in new[] { 0.0, 0.25 })
                    yield return [medium, tb[0], tb[1], p];
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardAndAdapterGradientsMatchReference(bool medium, bool tied, bool bias, double dropout)
    {
        var c = medium ? TestUtil.Medium(tied, bias) : TestUtil.Tiny(tied, bias);
        CheckAgainstReference(c, AllTargets(dropout: dropout), seed: 300 + (medium ? 10 : 0) + (tied ? 1 : 0) + (bias ? 2 : 0));
    }

    [Fact]
    public void Qwen3QkNormAndPartialTargetsMatchReference()
    {
        var c = TestUtil.Tiny(false, false) with { ModelType = "qwen3" };
        Assert.True(c.QkNorm);
        CheckAgainstReference(c, new LoraConfig { Rank = 2, Alpha = 16, Dropout = 0.1, TargetModules = ["q_proj", "v_proj", "down_proj"] }, seed: 77);
    }

    private static void CheckAgainstReference(ModelConfig c, LoraConfig lc, int seed)
    {
        int batch = 2, t = 5, n = batch * t;
        var parameters = RandomData.RandomParameters(c, seed, 0.2);
        var adapters = RandomAdapters(c, lc, seed + 1000);
        adapters.Training = true;
        adapters.DropoutSeed = (ulong)seed;
        adapters.DropoutStep = 4;
        var fast = new LlamaModel(c, parameters) { Threads = 2, Lora = adapters };
        var reference = new ReferenceModel(c, parameters);
        reference.AttachLora(adapters);
        var tokens = RandomData.RandomTokens(n, c.VocabSize, seed + 1);
        var r = TestUtil.RandomFloats(n * c.VocabSize, seed + 2);

        var acts = new ModelActivations();
        var logits = fast.Forward(tokens, batch, t, acts);
        var refLogits = reference.Forward(tokens, batch, t, out var refActs);
        double le = Tolerances.MaxRelError(logits, refLogits);
        Assert.True(le < 1e-4, $"logits: {le}");

        // adapter gradients only (the base frozen: absent from the set, so not computed)
        var grads = adapters.Parameters.ZerosLike();
        fast.Backward(acts, r, grads);
        var refGrads = reference.Backward(refActs, Array.ConvertAll(r, v => (double)v));
        foreach (var g in grads.Tensors)
        {
            Assert.True(g.Data.Any(v => v != 0), $"{g.Name}: all zero");
            double e = Tolerances.MaxRelError(g.Data, refGrads[g.Name]);
            Assert.True(e < 1e-4, $"{g.Name}: relative error {e}");
        }
        // with the base tensors in the set too, they get the reference's gradients (through the adapter paths)
        var all = parameters.ZerosLike();
        foreach (var g in adapters.Parameters.ZerosLike().Tensors) all.Add(g);
        fast.Backward(acts, r, all);
        foreach (var g in all.Tensors)
        {
            double e = Tolerances.MaxRelError(g.Data, refGrads[g.Name]);
            Assert.True(e < 1e-4, $"{g.Name}: relative error {e}");
        }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.3)]
    public void ReferenceAdapterGradientsMatchFiniteDifferences(double dropout)
    {
        var c = TestUtil.Tiny(tied: false, bias: true);
        int batch = 2, t = 4, n = batch * t;
        var parameters = RandomData.RandomParameters(c, 41, 0.3);
        var adapters = RandomAdapters(c, AllTargets(rank: 2, alpha: 5, dropout: dropout), 42);
        adapters.Training = true;
        adapters.DropoutSeed = 9;
        var reference = new ReferenceModel(c, parameters);
        reference.AttachLora(adapters);
        var tokens = RandomData.RandomTokens(n, c.VocabSize, 43);
        var r = TestUtil.RandomDoubles(n * c.VocabSize, 44);
        double Loss()
        {
            var y = reference.Forward(tokens, batch, t, out _);
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += r[i] * y[i];
            return s;
        }
        reference.Forward(tokens, batch, t, out var acts);
        var grads = reference.Backward(acts, r);
        var rng = new Random(45);
        int checkedCount = 0;
        foreach (var ten in adapters.Parameters.Tensors)
        {
            var p = reference.Parameters[ten.Name];
            for (int k = 0; k < 4; k++)
            {
                int i = rng.Next(p.Length);
                double h = 1e-5, old = p[i];
                p[i] = old + h; double up = Loss();
                p[i] = old - h; double down = Loss();
                p[i] = old;
                double fd = (up - down) / (2 * h), an = grads[ten.Name][i];
                double err = Math.Abs(fd - an) / Math.Max(1e-6, Math.Abs(fd) + Math.Abs(an));
                Assert.True(err < 1e-6, $"{ten.Name}[{i}]: analytic {an}, finite difference {fd}, relative error {err}");
                checkedCount++;
            }
        }
        Assert.Equal(adapters.Parameters.Count * 4, checkedCount);
    }

    [Fact]
    public void DropoutMaskFollowsRateAndIsOffInEval()
    {
        var c = TestUtil.Medium(false, false);
        var adapters = LoraAdapters.Create(DecoderLayout.For(c), AllTargets(dropout: 0.25), 1);
        int kept = 0, total = 20000;
        for (int i = 0; i < total; i++) if (adapters.Keeps(0, LoraTarget.QProj, i)) kept++;
        Assert.InRange(kept / (double)total, 0.74, 0.76);
        // eval mode (the default): the recorded forward equals the unrecorded one and the p = 0 adapters' forward, bit for bit
        var parameters = RandomData.RandomParameters(c, 3, 0.2);
        var a = RandomAdapters(c, AllTargets(dropout: 0.25), 5);
        var b = new LoraAdapters(DecoderLayout.For(c), AllTargets(dropout: 0), a.Parameters);
        var tokens = RandomData.RandomTokens(12, c.VocabSize, 6);
        var withDropout = new LlamaModel(c, parameters) { Threads = 1, Lora = a }.Forward(tokens, 2, 6, new ModelActivations());
        var without = new LlamaModel(c, parameters) { Threads = 1, Lora = b }.Forward(tokens, 2, 6);
        Assert.Equal(without, withDropout);
        a.Training = true;
        var trained = new LlamaModel(c, parameters) { Threads = 1, Lora = a }.Forward(tokens, 2, 6, new ModelActivations());
        Assert.NotEqual(without, trained);
    }

    [Fact]
    public void AdaptersOffOrFreshGiveExactlyTheBaseLogits()
    {
        var c = TestUtil.Medium(tied: false, bias: true);
        var parameters = RandomData.RandomParameters(c, 8, 0.2);
        var tokens = RandomData.RandomTokens(14, c.VocabSize, 9);
        var baseLogits = new LlamaModel(c, parameters) { Threads = 2 }.Forward(tokens, 2, 7);

        var trained = RandomAdapters(c, AllTargets(), 10);
        var model = new LlamaModel(c, parameters) { Threads = 2, Lora = trained };
        var on = model.Forward(tokens, 2, 7);
        Assert.True(Tolerances.MaxRelError(on, baseLogits.Select(v => (double)v).ToArray()) > 1e-3, "the adapters change the logits");
        trained.Enabled = false;
        var acts = new ModelActivations();
        Assert.Equal(baseLogits, model.Forward(tokens, 2, 7, acts));
        // a backward of the adapters-off record leaves the adapter gradients zero
        var g = trained.Parameters.ZerosLike();
        model.Backward(acts, TestUtil.RandomFloats(14 * c.VocabSize, 11), g);
        Assert.All(g.Tensors, t => Assert.All(t.Data, v => Assert.Equal(0f, v)));

        // PEFT's initialisation (B = 0): the adapted model starts as the base, bit for bit, cached decoding too
        var fresh = LoraAdapters.Create(DecoderLayout.For(c), AllTargets(), 12);
        var freshModel = new LlamaModel(c, parameters) { Threads = 2, Lora = fresh };
        Assert.Equal(baseLogits, freshModel.Forward(tokens, 2, 7));
    }

    [Fact]
    public void KaimingUniformInitialisationAsPeft()
    {
        var c = TestUtil.Medium(false, false);
        var layout = DecoderLayout.For(c);
        var a = LoraAdapters.Create(layout, AllTargets(rank: 8), 21);
        var again = LoraAdapters.Create(layout, AllTargets(rank: 8), 21);
        var other = LoraAdapters.Create(layout, AllTargets(rank: 8), 22);
        TestModels.AssertBitEqual(a.Parameters, again.Parameters);
        Assert.NotEqual(a.Parameters.Tensors[0].Data, other.Parameters.Tensors[0].Data);
        foreach (var m in a.Modules)
        {
            Assert.Equal([8, m.In], m.A.Shape);
            Assert.Equal([m.Out, 8], m.B.Shape);
            Assert.All(m.B.Data, v => Assert.Equal(0f, v));
            double bound = 1 / Math.Sqrt(m.In);
            Assert.All(m.A.Data, v => Assert.InRange(Math.Abs(v), 0, bound));
            // uniform(−b, b): mean 0, variance b²/3 (a sample of 8·in ≥ 512 values)
            double mean = m.A.Data.Average(v => (double)v), var = m.A.Data.Average(v => (double)v * v);
            Assert.InRange(mean, -0.15 * bound, 0.15 * bound);
            Assert.InRange(var / (bound * bound / 3), 0.85, 1.15);
        }
        Assert.Equal(2 * 7 * 2, a.Parameters.Count);
        Assert.Equal("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", a.Module(1, LoraTarget.QProj)!.A.Name);
        Assert.Equal("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", a.Module(0, LoraTarget.DownProj)!.B.Name);
    }

    [Fact]
    public void MergedForwardEqualsUnmerged()
    {
        var c = TestUtil.Medium(tied: true, bias: true);
        var parameters = RandomData.RandomParameters(c, 31, 0.2);
        var adapters = RandomAdapters(c, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "k_proj", "o_proj", "up_proj", "down_proj"] }, 32);
        var tokens = RandomData.RandomTokens(14, c.VocabSize, 33);
        var unmerged = new LlamaModel(c, parameters) { Threads = 2, Lora = adapters }.Forward(tokens, 2, 7);
        var snapshot = parameters.Clone();
        var merged = adapters.Merge(parameters);
        var mergedLogits = new LlamaModel(c, merged) { Threads = 2 }.Forward(tokens, 2, 7);
        double e = Tolerances.MaxRelError(mergedLogits, unmerged.Select(v => (double)v).ToArray());
        Assert.True(e < 1e-5, $"merged vs unmerged: relative error {e}");
        TestModels.AssertBitEqual(snapshot, parameters);   // merging writes new tensors
        Assert.Same(parameters["model.layers.0.mlp.gate_proj.weight"], merged["model.layers.0.mlp.gate_proj.weight"]);
        Assert.NotSame(parameters["model.layers.0.mlp.up_proj.weight"], merged["model.layers.0.mlp.up_proj.weight"]);
    }

    [Fact]
    public void TrainingStepsChangeOnlyTheAdaptersAndLowerTheLoss()
    {
        var c = TestUtil.Tiny(tied: false, bias: false);
        var parameters = RandomData.RandomParameters(c, 51, 0.3);
        var snapshot = parameters.Clone();
        var adapters = LoraAdapters.Create(DecoderLayout.For(c), AllTargets(rank: 4, alpha: 8, dropout: 0.1), 52);
        adapters.Training = true;
        var model = new LlamaModel(c, parameters) { Threads = 1, Lora = adapters };
        var opt = new AdamW(adapters.Parameters, new AdamWOptions { WeightDecay = 0.01 }, LearningRateSchedule.Constant(3e-2));
        int batch = 2, t = 6, n = batch * t;
        var tokens = RandomData.RandomTokens(n, c.VocabSize, 53);
        var acts = new ModelActivations();
        double first = 0, last = 0;
        for (int step = 0; step < 30; step++)
        {
            adapters.DropoutStep = (ulong)step;
            var logits = model.Forward(tokens, batch, t, acts);
            // next-token cross-entropy (mean): dL/dlogits = softmax − onehot
            var dl = new float[logits.Length];
            double loss = 0;
            for (int i = 0; i < n - 1; i++)
            {
                if ((i + 1) % t == 0) continue;
                int target = tokens[i + 1], v = c.VocabSize;
                double mx = double.NegativeInfinity;
                for (int j = 0; j < v; j++) mx = Math.Max(mx, logits[i * v + j]);
                double z = 0;
                for (int j = 0; j < v; j++) z += Math.Exp(logits[i * v + j] - mx);
                loss -= logits[i * v + target] - mx - Math.Log(z);
                for (int j = 0; j < v; j++) dl[i * v + j] = (float)(Math.Exp(logits[i * v + j] - mx) / z - (j == target ? 1 : 0));
            }
            if (step == 0) first = loss;
            last = loss;
            var grads = adapters.Parameters.ZerosLike();
            model.Backward(acts, dl, grads);
            opt.Update(grads);
        }
        Assert.True(last < 0.8 * first, $"loss {first} → {last}");
        TestModels.AssertBitEqual(snapshot, parameters);
        Assert.Contains(adapters.Parameters.Tensors, t => t.Name.EndsWith("lora_B.weight") && t.Data.Any(v => v != 0));
    }

    [Fact]
    public void BadConfigsAndTensorsAreNamed()
    {
        var layout = DecoderLayout.For(TestUtil.Tiny(false, false));
        Assert.Contains("r = 0", Assert.Throws<ArgumentOutOfRangeException>(() => LoraAdapters.Create(layout, AllTargets(rank: 0), 1)).Message);
        Assert.Contains("lora_alpha = -1", Assert.Throws<ArgumentOutOfRangeException>(() => LoraAdapters.Create(layout, AllTargets(alpha: -1), 1)).Message);
        Assert.Contains("lora_dropout = 1", Assert.Throws<ArgumentOutOfRangeException>(() => LoraAdapters.Create(layout, AllTargets(dropout: 1), 1)).Message);
        var bad = new LoraConfig { Rank = 2, Alpha = 2, TargetModules = ["q_proj", "lm_head"] };
        Assert.Contains("\"lm_head\"", Assert.Throws<ArgumentException>(() => LoraAdapters.Create(layout, bad, 1)).Message);
        var twice = new LoraConfig { Rank = 2, Alpha = 2, TargetModules = ["q_proj", "q_proj"] };
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => LoraAdapters.Create(layout, twice, 1)).Message);
        var good = LoraAdapters.Create(layout, new LoraConfig { Rank = 2, Alpha = 2, TargetModules = ["q_proj"] }, 1);
        var wrongShape = new TensorSet();
        foreach (var t in good.Parameters.Tensors) wrongShape.Add(t.Name.EndsWith("lora_A.weight") && t.Name.Contains("layers.1.") ? Tensor.Zeros(t.Name, 3, t.Shape[1]) : t);
        var e = Assert.Throws<ArgumentException>(() => new LoraAdapters(layout, good.Config, wrongShape));
        Assert.Contains("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight has shape [3, 16], expected [2, 16]", e.Message);
        Assert.Equal(LoraConfig.ModuleNames, LoraConfig.ParseTargets("all-linear", "lora_targets"));
        Assert.Equal(["q_proj", "v_proj"], LoraConfig.ParseTargets(" q_proj, v_proj ", "lora_targets"));
    }
}
