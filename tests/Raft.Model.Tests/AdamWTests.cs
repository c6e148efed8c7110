namespace Raft.Model.Tests;

public class AdamWTests
{
    private static TensorSet Set(params Tensor[] tensors)
    {
        var s = new TensorSet();
        foreach (var t in tensors) s.Add(t);
        return s;
    }

    [Fact]
    public void TwoStepsMatchAHandDerivedUpdate()
    {
        const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
        var p = Set(new Tensor("w", [1, 3], [0.5f, -1.25f, 2f]), new Tensor("model.norm.weight", [2], [1f, -0.75f]));
        var opt = new AdamW(p, new AdamWOptions { Beta1 = b1, Beta2 = b2, Epsilon = eps, WeightDecay = wd }, LearningRateSchedule.Constant(lr));
        float[] g1w = [0.2f, -0.4f, 1.5f], g1n = [-0.3f, 0.05f];
        float[] g2w = [-0.1f, -0.2f, 0.7f], g2n = [0.6f, 0.0f];

        // by hand, in double: step 1 has m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε)
        double[] expW = [0.5, -1.25, 2.0], expN = [1.0, -0.75];
        double[] mW = new double[3], vW = new double[3], mN = new double[2], vN = new double[2];
        void HandStep(double[] x, double[] m, double[] v, float[] g, bool decay, int t)
        {
            for (int i = 0; i < x.Length; i++)
            {
                if (decay) x[i] *= 1 - lr * wd;
                m[i] = b1 * m[i] + (1 - b1) * g[i];
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
                double mh = m[i] / (1 - Math.Pow(b1, t)), vh = v[i] / (1 - Math.Pow(b2, t));
                x[i] -= lr * mh / (Math.Sqrt(vh) + eps);
            }
        }
        HandStep(expW, mW, vW, g1w, true, 1);
        HandStep(expN, mN, vN, g1n, false, 1);
        Assert.Equal(0.5 * (1 - 0.01) - 0.1, expW[0], 7); // the hand form of step 1, spelled out for one value
        Assert.Equal(lr, opt.Update(Set(new Tensor("w", [1, 3], g1w), new Tensor("model.norm.weight", [2], g1n))));
        for (int i = 0; i < 3; i++) Assert.Equal(expW[i], p["w"].Data[i], 5e-7);
        for (int i = 0; i < 2; i++) Assert.Equal(expN[i], p["model.norm.weight"].Data[i], 5e-7);

        HandStep(expW, mW, vW, g2w, true, 2);
        HandStep(expN, mN, vN, g2n, false, 2);
        opt.Update(Set(new Tensor("w", [1, 3], g2w), new Tensor("model.norm.weight", [2], g2n)));
        Assert.Equal(2, opt.StepCount);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(expW[i], p["w"].Data[i], 5e-7);
            Assert.Equal(mW[i], opt.FirstMoment["w"].Data[i], 1e-7);
            Assert.Equal(vW[i], opt.SecondMoment["w"].Data[i], 1e-9);
        }
        for (int i = 0; i < 2; i++) Assert.Equal(expN[i], p["model.norm.weight"].Data[i], 5e-7);
    }

    [Fact]
    public void WeightDecaySkipsNormsBiasesAndOneDimensionalTensors()
    {
        var p = Set(
            new Tensor("model.layers.0.mlp.up_proj.weight", [2, 2], [1f, 2f, 3f, 4f]),
            new Tensor("model.layers.0.input_layernorm.weight", [2], [1f, 2f]),
            new Tensor("model.layers.0.self_attn.q_proj.bias", [2], [1f, 2f]),
            new Tensor("odd.weight", [2], [1f, 2f]),
            new Tensor("odd2.bias", [1, 2], [1f, 2f]),
            new Tensor("model.norm.weight", [1, 2], [1f, 2f]));
        var before = p.Clone();
        var opt = new AdamW(p, new AdamWOptions { WeightDecay = 0.5 }, LearningRateSchedule.Constant(0.1));
        opt.Update(p.ZerosLike()); // zero gradient: only the decay moves anything
        float f = (float)(1 - 0.1 * 0.5);
        for (int i = 0; i < 4; i++) Assert.Equal(before.Tensors[0].Data[i] * f, p.Tensors[0].Data[i]);
        for (int t = 1; t < p.Count; t++) Assert.Equal(before.Tensors[t].Data, p.Tensors[t].Data);
        Assert.True(AdamW.IsDecayed(p.Tensors[0]));
        Assert.All(p.Tensors.Skip(1), t => Assert.False(AdamW.IsDecayed(t)));
    }

    [Fact]
    public void VectorKernelMatchesTheScalarReferenceBitForBit()
    {
        var rng = new Random(11);
        int n = 4096 + 37;
        float[] R(double scale) => Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale)).ToArray();
        float[] p = R(1), g = R(0.1), m = R(0.01), v = R(0.001).Select(Math.Abs).ToArray();
        float[] p2 = (float[])p.Clone(), m2 = (float[])m.Clone(), v2 = (float[])v.Clone();
        AdamW.VectorKernel(p, g, m, v, 0.999f, 0.9f, 0.95f, 0.003f, 0.2f, 1e-8f);
        AdamW.ScalarReference(p2, g, m2, v2, 0.999f, 0.9f, 0.95f, 0.003f, 0.2f, 1e-8f);
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(BitConverter.SingleToUInt32Bits(p2[i]), BitConverter.SingleToUInt32Bits(p[i]));
            Assert.Equal(BitConverter.SingleToUInt32Bits(m2[i]), BitConverter.SingleToUInt32Bits(m[i]));
            Assert.Equal(BitConverter.SingleToUInt32Bits(v2[i]), BitConverter.SingleToUInt32Bits(v[i]));
        }
    }

    [Fact]
    public void MismatchedGradientsAreRejected()
    {
        var p = Set(new Tensor("a", [2], [1f, 2f]));
        var opt = new AdamW(p, new AdamWOptions(), LearningRateSchedule.Constant(1e-3));
        var e = Assert.Throws<ArgumentException>(() => opt.Update(Set(new Tensor("b", [2], [1f, 2f]))));
        Assert.Contains("b", e.Message);
        Assert.Throws<ArgumentException>(() => opt.Update(Set(new Tensor("a", [1, 2], [1f, 2f]))));
        Assert.Equal(0, opt.StepCount);
        var e2 = Assert.Throws<ArgumentException>(() => new AdamW(p, new AdamWOptions { Beta2 = 1.0 }, LearningRateSchedule.Constant(1e-3)));
        Assert.Contains("Beta2", e2.Message);
        Assert.Contains("1", e2.Message);
    }

    /// <summary>A deterministic gradient that depends on the step and the parameters (so a wrong state shows).</summary>
    private static TensorSet Gradient(TensorSet p, int step)
    {
        var g = p.ZerosLike();
        for (int t = 0; t < p.Count; t++)
            for (int i = 0; i < p.Tensors[t].Length; i++)
                g.Tensors[t].Data[i] = p.Tensors[t].Data[i] * 0.3f + MathF.Sin(step * 1.7f + i * 0.31f + t);
        return g;
    }

    [Fact]
    public void ResumingFromACheckpointContinuesBitForBit()
    {
        var config = TestModels.Tiny();
        var schedule = new LearningRateSchedule { PeakLearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 2, TotalSteps = 7, Decay = LearningRateDecay.Cosine };
        var options = new AdamWOptions { Beta1 = 0.8, Beta2 = 0.95, Epsilon = 1e-6, WeightDecay = 0.05 };

        var straight = TestModels.RandomWeights(config, seed: 5);
        var opt = new AdamW(straight, options, schedule);
        for (int s = 0; s < 8; s++)
        {
            var g = Gradient(straight, s);
            GradientClipping.ClipByGlobalNorm(g, 3.0);
            opt.Update(g);
        }

        using var dir = new TempDirectory();
        var first = TestModels.RandomWeights(config, seed: 5);
        var opt1 = new AdamW(first, options, schedule);
        for (int s = 0; s < 4; s++)
        {
            var g = Gradient(first, s);
            GradientClipping.ClipByGlobalNorm(g, 3.0);
            opt1.Update(g);
        }
        Checkpoint.Save(dir.Path, config, first, opt1);

        var (_, resumed) = Checkpoint.Load(dir.Path);
        var opt2 = AdamW.LoadState(dir.Path, resumed);
        Assert.Equal(4, opt2.StepCount);
        Assert.Equal(options, opt2.Options);
        Assert.Equal(schedule, opt2.Schedule);
        TestModels.AssertBitEqual(opt1.FirstMoment, opt2.FirstMoment);
        TestModels.AssertBitEqual(opt1.SecondMoment, opt2.SecondMoment);
        for (int s = 4; s < 8; s++)
        {
            var g = Gradient(resumed, s);
            GradientClipping.ClipByGlobalNorm(g, 3.0);
            opt2.Update(g);
        }
        TestModels.AssertBitEqual(straight, resumed);
        TestModels.AssertBitEqual(opt.FirstMoment, opt2.FirstMoment);
        TestModels.AssertBitEqual(opt.SecondMoment, opt2.SecondMoment);
    }

    [Fact]
    public void LoadStateRejectsMismatchedParameters()
    {
        using var dir = new TempDirectory();
        var p = Set(new Tensor("a", [2, 2], [1f, 2f, 3f, 4f]));
        new AdamW(p, new AdamWOptions(), LearningRateSchedule.Constant(1e-3)).SaveState(dir.Path);
        var e = Assert.Throws<InvalidDataException>(() => AdamW.LoadState(dir.Path, Set(new Tensor("a", [4], [1f, 2f, 3f, 4f]))));
        Assert.Contains("exp_avg.a", e.Message);
        Assert.Contains(AdamW.StateFile, e.Message);
        e = Assert.Throws<InvalidDataException>(() => AdamW.LoadState(dir.Path, Set(new Tensor("b", [2, 2], [1f, 2f, 3f, 4f]))));
        Assert.Contains("exp_avg.b", e.Message);
    }

    [Fact]
    public void PowerBySquaringIsExactForSmallCases()
    {
        Assert.Equal(1.0, AdamW.Pow(0.9, 0));
        Assert.Equal(0.9, AdamW.Pow(0.9, 1));
        Assert.Equal(0.9 * 0.9, AdamW.Pow(0.9, 2));
        Assert.Equal(Math.Pow(0.999, 1000), AdamW.Pow(0.999, 1000), 1e-12);
    }
}
