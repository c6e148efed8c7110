namespace Raft.Model.Tests;

/// <summary>Each reference op's backward against central finite differences of L = Σ y·R, in double.</summary>
public class ReferenceOpGradientTests
{
    private const double H = 1e-5;

    /// <summary>Checks every entry of x: (L(x+h) − L(x−h)) / 2h against the analytic gradient.</summary>
    private static void CheckFd(double[] x, double[] analytic, Func<double> loss, string what)
    {
        double scale = Math.Max(1e-3, analytic.Max(Math.Abs));
        for (int i = 0; i < x.Length; i++)
        {
            double keep = x[i];
            x[i] = keep + H; double lp = loss();
            x[i] = keep - H; double lm = loss();
            x[i] = keep;
            double fd = (lp - lm) / (2 * H);
            Assert.True(Math.Abs(fd - analytic[i]) <= 1e-6 * scale,
                $"{what}[{i}]: analytic {analytic[i]}, finite difference {fd}");
        }
    }

    private static double Dot(double[] a, double[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += a[i] * b[i]; return s; }

    [Fact]
    public void Linear()
    {
        int n = 3, k = 5, m = 4;
        var x = TestUtil.RandomDoubles(n * k, 1); var w = TestUtil.RandomDoubles(m * k, 2); var b = TestUtil.RandomDoubles(m, 3);
        var r = TestUtil.RandomDoubles(n * m, 4);
        double L() => Dot(ReferenceOps.Linear(x, w, b, n, k, m), r);
        double[] dx = new double[x.Length], dw = new double[w.Length], db = new double[b.Length];
        ReferenceOps.LinearBackward(r, x, w, dx, dw, db, n, k, m);
        CheckFd(x, dx, L, "dx"); CheckFd(w, dw, L, "dw"); CheckFd(b, db, L, "db");
    }

    [Fact]
    public void Embedding()
    {
        int c = 3; var tokens = new[] { 2, 0, 2, 1 };
        var table = TestUtil.RandomDoubles(4 * c, 5); var r = TestUtil.RandomDoubles(tokens.Length * c, 6);
        double L() => Dot(ReferenceOps.Embedding(tokens, table, c), r);
        var dt = new double[table.Length];
        ReferenceOps.EmbeddingBackward(tokens, r, dt, c);
        CheckFd(table, dt, L, "dTable");
    }

    [Fact]
    public void RmsNorm()
    {
        int n = 3, c = 6; double eps = 1e-5;
        var x = TestUtil.RandomDoubles(n * c, 7); var w = TestUtil.RandomDoubles(c, 8); var r = TestUtil.RandomDoubles(n * c, 9);
        double L() => Dot(ReferenceOps.RmsNorm(x, w, n, c, eps), r);
        double[] dx = new double[x.Length], dw = new double[w.Length];
        ReferenceOps.RmsNormBackward(r, x, w, dx, dw, n, c, eps);
        CheckFd(x, dx, L, "dx"); CheckFd(w, dw, L, "dw");
    }

    [Fact]
    public void Rope()
    {
        int n = 4, heads = 2, hd = 6;
        var pos = new[] { 0, 1, 5, 17 };
        var x = TestUtil.RandomDoubles(n * heads * hd, 10); var r = TestUtil.RandomDoubles(x.Length, 11);
        double L() => Dot(ReferenceOps.Rope(x, pos, n, heads, hd, 10000), r);
        var dx = ReferenceOps.Rope(r, pos, n, heads, hd, 10000, inverse: true);
        CheckFd(x, dx, L, "dx");
    }

    [Fact]
    public void Attention()
    {
        int b = 2, t = 4, h = 4, kv = 2, hd = 3;
        var q = TestUtil.RandomDoubles(b * t * h * hd, 12); var k = TestUtil.RandomDoubles(b * t * kv * hd, 13);
        var v = TestUtil.RandomDoubles(b * t * kv * hd, 14); var r = TestUtil.RandomDoubles(q.Length, 15);
        double L() => Dot(ReferenceOps.Attention(q, k, v, b, t, h, kv, hd), r);
        double[] dq = new double[q.Length], dk = new double[k.Length], dv = new double[v.Length];
        ReferenceOps.AttentionBackward(r, q, k, v, dq, dk, dv, b, t, h, kv, hd);
        CheckFd(q, dq, L, "dq"); CheckFd(k, dk, L, "dk"); CheckFd(v, dv, L, "dv");
    }

    [Fact]
    public void SwiGlu()
    {
        var g = TestUtil.RandomDoubles(10, 16, 2); var u = TestUtil.RandomDoubles(10, 17); var r = TestUtil.RandomDoubles(10, 18);
        double L() => Dot(ReferenceOps.SwiGlu(g, u), r);
        double[] dg = new double[10], du = new double[10];
        ReferenceOps.SwiGluBackward(r, g, u, dg, du);
        CheckFd(g, dg, L, "dg"); CheckFd(u, du, L, "du");
    }

    [Fact]
    public void ResidualAdd()
    {
        var a = TestUtil.RandomDoubles(5, 19); var b = TestUtil.RandomDoubles(5, 20); var r = TestUtil.RandomDoubles(5, 21);
        double L() => Dot(ReferenceOps.Add(a, b), r);
        CheckFd(a, r, L, "da"); CheckFd(b, r, L, "db");
    }
}
