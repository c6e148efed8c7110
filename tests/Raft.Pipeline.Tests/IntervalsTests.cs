using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Tests;

public sealed class IntervalsTests
{
    [Theory]
    [InlineData(1, 12.7062047)]
    [InlineData(2, 4.3026527)]
    [InlineData(3, 3.1824463)]
    [InlineData(4, 2.7764451)]
    [InlineData(5, 2.5705818)]
    [InlineData(10, 2.2281389)]
    [InlineData(30, 2.04227246)]
    [InlineData(1000, 1.9623391)]
    public void T_quantile_matches_the_published_table(int df, double expected) =>
        Assert.Equal(expected, Intervals.TQuantile975(df), 6);

    [Fact]
    public void T_cdf_matches_closed_forms_and_a_numerical_integral_of_the_density_at_random_points()
    {
        var rng = new Random();
        for (int i = 0; i < 50; i++)
        {
            double t = (rng.NextDouble() - 0.5) * 20;
            Assert.Equal(0.5 + Math.Atan(t) / Math.PI, Intervals.StudentTCdf(t, 1), 12);
            Assert.Equal(0.5 + t / (2 * Math.Sqrt(2 + t * t)), Intervals.StudentTCdf(t, 2), 12);
            double s3 = t / Math.Sqrt(3);
            Assert.Equal(0.5 + (s3 / (1 + s3 * s3) + Math.Atan(s3)) / Math.PI, Intervals.StudentTCdf(t, 3), 12);
            int df = rng.Next(1, 60);
            Assert.Equal(0.5 + Simpson(x => Density(x, df), 0, t, 20000), Intervals.StudentTCdf(t, df), 9);
        }
    }

    [Fact]
    public void Log_gamma_matches_factorials_and_the_half_integer_value()
    {
        double f = 1;
        for (int n = 1; n < 30; n++) { Assert.Equal(Math.Log(f), Intervals.LogGamma(n), 10); f *= n; }
        Assert.Equal(0.5 * Math.Log(Math.PI), Intervals.LogGamma(0.5), 13);
    }

    [Fact]
    public void Wilson_ends_solve_the_score_equation_for_random_counts()
    {
        var rng = new Random();
        for (int i = 0; i < 200; i++)
        {
            int n = rng.Next(1, 500), k = rng.Next(0, n + 1);
            var w = Intervals.Wilson(k, n);
            double p = (double)k / n, z = Intervals.Z975;
            Assert.Equal(p, w.Mean);
            Assert.True(w.Low <= p && p <= w.High, $"{k}/{n}: {w}");
            foreach (double end in new[] { w.Low, w.High })
                Assert.Equal(Math.Abs(p - end), z * Math.Sqrt(end * (1 - end) / n), 10);
            double inside = 0.5 * (w.Low + w.High);
            Assert.True(Math.Abs(p - inside) <= z * Math.Sqrt(inside * (1 - inside) / n));
        }
        var none = Intervals.Wilson(0, 10);
        Assert.Equal((0.0, 0.2775), (none.Low, Math.Round(none.High, 4)));
        var half = Intervals.Wilson(5, 10);
        Assert.Equal((0.2366, 0.7634), (Math.Round(half.Low, 4), Math.Round(half.High, 4)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Intervals.Wilson(3, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Intervals.Wilson(0, 0));
    }

    [Fact]
    public void Across_seeds_the_interval_is_mean_plus_minus_t_s_over_root_n_and_one_seed_gives_wilson()
    {
        var three = Intervals.OfProportion([(18, 100), (19, 100), (17, 100)]);
        Assert.Equal("t", three.Method);
        Assert.Equal(0.18, three.Mean, 12);
        Assert.Equal(4.3026527 * 0.01 / Math.Sqrt(3), three.High - three.Mean, 6);
        Assert.Equal(three.Mean - three.Low, three.High - three.Mean, 12);
        Assert.Equal("18.0 [15.5, 20.5]", three.ToPercent());
        var one = Intervals.OfProportion([(5, 10)]);
        Assert.Equal(Intervals.Wilson(5, 10), one);
        Assert.Equal(0.0, Intervals.OfProportion([(3, 10), (3, 10)]).High - 0.3, 12);
        Assert.Throws<ArgumentException>(() => Intervals.StudentT([0.5]));
    }

    private static double Density(double x, int df) =>
        Math.Exp(Intervals.LogGamma((df + 1) / 2.0) - Intervals.LogGamma(df / 2.0)) / Math.Sqrt(df * Math.PI)
        * Math.Pow(1 + x * x / df, -(df + 1) / 2.0);

    private static double Simpson(Func<double, double> f, double a, double b, int steps)
    {
        double h = (b - a) / steps, sum = f(a) + f(b);
        for (int i = 1; i < steps; i++) sum += f(a + i * h) * (i % 2 == 1 ? 4 : 2);
        return sum * h / 3;
    }
}

public sealed class IntervalTableTests
{
    [Fact]
    public void Prints_every_cell_with_its_interval_in_the_order_added()
    {
        var t = new IntervalTable();
        foreach (var (s, k) in new[] { (1, 18), (2, 19), (3, 17) }) { t.Add("raft", "domain", k, 100); t.Add("raft", "general", 50 + s, 100); }
        t.Add("base", "domain", 0, 100);
        Assert.Equal(["raft", "base"], t.Rows);
        Assert.Equal(["domain", "general"], t.Columns);
        string md = t.ToMarkdown();
        Assert.Contains("| method | domain | general |", md);
        Assert.Contains($"| raft | {Intervals.OfProportion([(18, 100), (19, 100), (17, 100)]).ToPercent()} | {Intervals.OfProportion([(51, 100), (52, 100), (53, 100)]).ToPercent()} |", md);
        Assert.Contains($"| base | {Intervals.Wilson(0, 100).ToPercent()} | — |", md);
        Assert.Equal("t", t.Cell("raft", "domain")!.Method);
        Assert.Null(t.Cell("base", "general"));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Add("x", "y", 5, 4));
    }
}
