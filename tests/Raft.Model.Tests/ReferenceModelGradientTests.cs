namespace Raft.Model.Tests;

/// <summary>The whole reference model's parameter gradients against central finite differences of L = Σ logits·R.</summary>
public class ReferenceModelGradientTests
{
    [Theory]
    [MemberData(nameof(TestUtil.TiedBias), MemberType = typeof(TestUtil))]
    public void ParameterGradientsMatchFiniteDifferences(bool tied, bool bias)
    {
        var c = TestUtil.Tiny(tied, bias);
        int batch = 2, t = 5, n = batch * t;
        var model = new ReferenceModel(c, RandomData.RandomParameters(c, 100 + (tied ? 1 : 0) + (bias ? 2 : 0)));
        var tokens = RandomData.RandomTokens(n, c.VocabSize, 7);
        var r = TestUtil.RandomDoubles(n * c.VocabSize, 8);
        double Loss()
        {
            var logits = model.Forward(tokens, batch, t, out _);
            double s = 0;
            for (int i = 0; i < logits.Length; i++) s += logits[i] * r[i];
            return s;
        }
        model.Forward(tokens, batch, t, out var acts);
        var grads = model.Backward(acts, r);
        Assert.Equal(c.TensorShapes().Select(s => s.Name).OrderBy(s => s), grads.Keys.OrderBy(s => s));
        const double h = 1e-5;
        foreach (var (name, p) in model.Parameters)
        {
            var g = grads[name];
            double scale = Math.Max(1e-2, g.Max(Math.Abs));
            int stride = Math.Max(1, p.Length / 48);   // up to ~48 entries per tensor, spread over it
            for (int i = (name.Length * 7) % stride; i < p.Length; i += stride)
            {
                double keep = p[i];
                p[i] = keep + h; double lp = Loss();
                p[i] = keep - h; double lm = Loss();
                p[i] = keep;
                double fd = (lp - lm) / (2 * h);
                Assert.True(Math.Abs(fd - g[i]) <= 1e-6 * scale, $"{name}[{i}]: analytic {g[i]}, finite difference {fd}");
            }
        }
    }
}
