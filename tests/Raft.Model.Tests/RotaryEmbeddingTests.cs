using Raft.Model.Ops;

namespace Raft.Model.Tests;

/// <summary>
/// Each RoPE variant's inverse frequencies and cos/sin factor against values derived by hand from Hugging Face's
/// modeling_rope_utils formulas (head_dim 8, θ = 10000: the default frequencies are exactly 1, 0.1, 0.01, 0.001), and the
/// rotation they give at positions past the original context.
/// </summary>
public class RotaryEmbeddingTests
{
    private static ModelConfig Config(RopeScalingConfig? rs, int maxPositions = 16) => new()
    {
        ModelType = "llama", HiddenSize = 32, IntermediateSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 4,
        VocabSize = 5, RopeTheta = 10000, MaxPositionEmbeddings = maxPositions, RopeScaling = rs,
    };

    private static void Near(double[] want, double[] got, double tol = 1e-12)
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(want[i] - got[i]) <= tol * Math.Abs(want[i]), $"inv_freq[{i}]: want {want[i]:R}, got {got[i]:R}");
    }

    [Fact]
    public void DefaultIsThetaToTheMinusTwoIOverD()
    {
        var rope = RotaryEmbedding.For(Config(null));
        Near([1, 0.1, 0.01, 0.001], rope.InverseFrequencies(16));
        Assert.Equal(1.0, rope.AttentionScaling);
        // the fp32 frequencies are exactly the ones the engine always used
        var f = rope.InverseFrequenciesF32(16);
        for (int i = 0; i < 4; i++) Assert.Equal(1f / MathF.Pow(10000f, (float)(2 * i) / 8), f[i]);
    }

    [Fact]
    public void LinearDividesByTheFactor()
    {
        var rope = RotaryEmbedding.For(Config(new() { RopeType = "linear", Factor = 4 }));
        Near([0.25, 0.025, 0.0025, 0.00025], rope.InverseFrequencies(16));
    }

    [Fact]
    public void Llama3KeepsHighInterpolatesLowAndSmoothsTheBand()
    {
        // factor 8, low 1, high 4, original 16: wavelengths 2π/inv = 2π, 20π, 200π, 2000π; low_freq_wavelen = 16,
        // high_freq_wavelen = 4. Pair 0 (2π ≈ 6.28) lies in the band: smooth = (16/(2π) − 1)/(4 − 1), inv = (1−s)/8 + s.
        // Pairs 1..3 (wavelength > 16) are divided by 8.
        var rope = RotaryEmbedding.For(Config(new()
        {
            RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 16,
        }, maxPositions: 128));
        double s = (16 / (2 * Math.PI) - 1) / 3;
        Near([(1 - s) / 8 + s, 0.1 / 8, 0.01 / 8, 0.001 / 8], rope.InverseFrequencies(128));
        // with original 2: wavelength 2π > low_freq_wavelen 2 for every pair → all divided by 8;
        // with original 1024, low 1, high 4: high_freq_wavelen 256 > 2π, 20π, 200π(≈628 > 256, < 1024: band), 2000π > 1024
        var all = RotaryEmbedding.For(Config(new() { RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 2 }));
        Near([1.0 / 8, 0.1 / 8, 0.01 / 8, 0.001 / 8], all.InverseFrequencies(16));
        var mixed = RotaryEmbedding.For(Config(new() { RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 1024 }, 4096));
        double s2 = (1024 / (200 * Math.PI) - 1) / 3;
        Near([1, 0.1, (1 - s2) * 0.01 / 8 + s2 * 0.01, 0.001 / 8], mixed.InverseFrequencies(4096));
    }

    [Fact]
    public void YarnRampsBetweenExtrapolationAndInterpolationAndScalesCosSin()
    {
        // factor 4, original 16, β_fast 32, β_slow 1, d = 8, θ = 10⁴:
        // correction dim(r) = 8·ln(16 / (2πr)) / (2 ln 10⁴): r = 32 → −1.099… → floor −2 → clamp 0; r = 1 → 0.4059… → ceil 1.
        // ramp over pairs i = 0..3: clamp((i − 0)/(1 − 0)) = 0, 1, 1, 1 → pair 0 extrapolated (kept), the rest ÷ 4.
        // attention factor 0.1·ln 4 + 1.
        var rope = RotaryEmbedding.For(Config(new() { RopeType = "yarn", Factor = 4, OriginalMaxPositionEmbeddings = 16 }, 64));
        Assert.Equal((0.0, 1.0), rope.YarnRange());
        Near([1, 0.1 / 4, 0.01 / 4, 0.001 / 4], rope.InverseFrequencies(64));
        Assert.Equal(0.1 * Math.Log(4) + 1, rope.AttentionScaling, 15);

        // without truncation the range is the raw [0 (clamped), 0.4059…]: pair 0 ramp 0, pairs ≥ 1 ramp 1
        double high = 8 * Math.Log(16 / (2 * Math.PI)) / (2 * Math.Log(10000));
        var raw = RotaryEmbedding.For(Config(new() { RopeType = "yarn", Factor = 4, OriginalMaxPositionEmbeddings = 16, Truncate = false }, 64));
        Assert.Equal(0.0, raw.YarnRange().Low);
        Assert.Equal(high, raw.YarnRange().High, 12);

        // original_max_position_embeddings absent: max_position_embeddings is the original; mscale/mscale_all_dim set the factor
        var ms = RotaryEmbedding.For(Config(new() { RopeType = "yarn", Factor = 4, Mscale = 0.5, MscaleAllDim = 2 }, 16));
        Assert.Equal((0.1 * 0.5 * Math.Log(4) + 1) / (0.1 * 2 * Math.Log(4) + 1), ms.AttentionScaling, 15);
        Assert.Equal(16, ms.OriginalMaxPositionEmbeddings);
        // an explicit attention_factor wins; an absent factor is max / original (transformers 5)
        var af = RotaryEmbedding.For(Config(new() { RopeType = "yarn", OriginalMaxPositionEmbeddings = 8, AttentionFactor = 0.75 }, 32));
        Assert.Equal(4.0, af.Factor);
        Assert.Equal(0.75, af.AttentionScaling);
    }

    [Fact]
    public void DynamicRescalesTheBaseOnlyPastMaxPositions()
    {
        // factor 2, max 16, d 8: a call reaching position 31 (S = 32): θ' = 10⁴·(2·32/16 − 1)^(8/6) = 10⁴·3^(4/3)
        var rope = RotaryEmbedding.For(Config(new() { RopeType = "dynamic", Factor = 2 }));
        Assert.Equal(16, rope.TableLength(3));
        Assert.Equal(16, rope.TableLength(15));
        Assert.Equal(32, rope.TableLength(31));
        Near([1, 0.1, 0.01, 0.001], rope.InverseFrequencies(16));
        double b = 10000 * Math.Pow(3, 4.0 / 3);
        Assert.Equal(b, rope.DynamicBase(32), 6);
        Near([1, Math.Pow(b, -0.25), Math.Pow(b, -0.5), Math.Pow(b, -0.75)], rope.InverseFrequencies(32));
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("llama3")]
    [InlineData("yarn")]
    [InlineData("dynamic")]
    public void TheFastTableRotatesAsTheFormulaPastTheOriginalContext(string type)
    {
        RopeScalingConfig rs = type switch
        {
            "linear" => new() { RopeType = type, Factor = 4 },
            "llama3" => new() { RopeType = type, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 16 },
            "yarn" => new() { RopeType = type, Factor = 4, OriginalMaxPositionEmbeddings = 16 },
            _ => new() { RopeType = type, Factor = 2 },
        };
        var rope = RotaryEmbedding.For(Config(rs, 16));
        int[] positions = [3, 40, 100];   // 40 and 100: beyond the original 16
        int length = rope.TableLength(positions.Max());
        var inv = rope.InverseFrequencies(length);
        var table = new RopeTable(rope, length);
        var x = TestUtil.RandomFloats(positions.Length * 8, 5);
        var y = (float[])x.Clone();
        table.Apply(y, positions, positions.Length, 1, inverse: false, 1);
        for (int r = 0; r < positions.Length; r++)
            for (int i = 0; i < 4; i++)
            {
                double a = positions[r] * inv[i], m = rope.AttentionScaling;
                double x1 = x[r * 8 + i], x2 = x[r * 8 + i + 4];
                Assert.Equal(m * (x1 * Math.Cos(a) - x2 * Math.Sin(a)), y[r * 8 + i], 4e-5);
                Assert.Equal(m * (x2 * Math.Cos(a) + x1 * Math.Sin(a)), y[r * 8 + i + 4], 4e-5);
            }
        // and the double reference op agrees with the same formula
        var yr = ReferenceOps.Rope(Array.ConvertAll(x, v => (double)v), positions, positions.Length, 1, 8, inv, rope.AttentionScaling);
        Assert.True(Tolerances.MaxRelError(y, yr) < 1e-5);
    }
}
