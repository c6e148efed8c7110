namespace Raft.Pipeline.Eval;

/// <summary>
/// 95 % intervals beside means (docs/demo.md): one seed, a proportion of items → Wilson's score interval; several
/// seeds → mean ± t₀.₉₇₅,ₙ₋₁ · s/√n over the seeds' proportions (s the sample standard deviation).
/// </summary>
public static class Intervals
{
    /// <summary>The standard normal's 0.975 quantile.</summary>
    public const double Z975 = 1.959963984540054;

    /// <summary>
    /// Wilson's score interval for <paramref name="successes"/> of <paramref name="n"/>: the p with
    /// |p̂ − p| ≤ z·√(p(1 − p)/n).
    /// </summary>
    public static Interval Wilson(int successes, int n, double z = Z975)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), n, "Wilson's interval needs at least one item.");
        if (successes < 0 || successes > n) throw new ArgumentOutOfRangeException(nameof(successes), successes, $"successes must be in [0, {n}].");
        double p = (double)successes / n, z2 = z * z;
        double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
        double half = z / (1 + z2 / n) * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n));
        // At 0 or n successes the end on that side is exactly p (the score equation's root); rounding must not move it past p.
        double low = successes == 0 ? 0 : Math.Min(p, centre - half), high = successes == n ? 1 : Math.Max(p, centre + half);
        return new Interval(p, low, high, "wilson");
    }

    /// <summary>Mean ± t₀.₉₇₅,ₙ₋₁ · s/√n of <paramref name="values"/> (n ≥ 2).</summary>
    public static Interval StudentT(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        int n = values.Count;
        if (n < 2) throw new ArgumentException($"the t interval needs at least 2 values, got {n}.", nameof(values));
        double mean = values.Average();
        double s = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (n - 1));
        double half = TQuantile975(n - 1) * s / Math.Sqrt(n);
        return new Interval(mean, mean - half, mean + half, "t");
    }

    /// <summary>
    /// The interval of a proportion measured per seed (<paramref name="perSeed"/>: successes and items of each seed):
    /// Wilson's over the items for one seed, the t interval over the seeds' proportions for several.
    /// </summary>
    public static Interval OfProportion(IReadOnlyList<(int Successes, int N)> perSeed)
    {
        ArgumentNullException.ThrowIfNull(perSeed);
        if (perSeed.Count == 0) throw new ArgumentException("no seed measured.", nameof(perSeed));
        if (perSeed.Count == 1) return Wilson(perSeed[0].Successes, perSeed[0].N);
        return StudentT([.. perSeed.Select(s => s.N < 1
            ? throw new ArgumentException("a seed with no items.", nameof(perSeed))
            : (double)s.Successes / s.N)]);
    }

    /// <summary>Student's t distribution's 0.975 quantile for <paramref name="df"/> degrees of freedom (bisection on <see cref="StudentTCdf"/>).</summary>
    public static double TQuantile975(int df) => TQuantile(0.975, df);

    /// <summary>Student's t distribution's <paramref name="q"/> quantile (q in (0.5, 1)) for <paramref name="df"/> ≥ 1 degrees of freedom.</summary>
    public static double TQuantile(double q, int df)
    {
        if (df < 1) throw new ArgumentOutOfRangeException(nameof(df), df, "degrees of freedom must be ≥ 1.");
        if (!(q > 0.5 && q < 1)) throw new ArgumentOutOfRangeException(nameof(q), q, "the quantile must be in (0.5, 1).");
        double lo = 0, hi = 1;
        while (StudentTCdf(hi, df) < q) hi *= 2;
        for (int i = 0; i < 100 && hi - lo > 1e-12 * hi; i++)
        {
            double mid = 0.5 * (lo + hi);
            if (StudentTCdf(mid, df) < q) lo = mid; else hi = mid;
        }
        return 0.5 * (lo + hi);
    }

    /// <summary>
    /// Student's t CDF at <paramref name="t"/> for <paramref name="df"/> degrees of freedom, through the regularised
    /// incomplete beta function: for t ≥ 0, 1 − ½·I_{ν/(ν+t²)}(ν/2, ½).
    /// </summary>
    public static double StudentTCdf(double t, int df)
    {
        if (df < 1) throw new ArgumentOutOfRangeException(nameof(df), df, "degrees of freedom must be ≥ 1.");
        double x = df / (df + t * t);
        double tail = 0.5 * RegularizedBeta(x, 0.5 * df, 0.5);
        return t >= 0 ? 1 - tail : tail;
    }

    /// <summary>The regularised incomplete beta function I_x(a, b) (Lentz's continued fraction).</summary>
    public static double RegularizedBeta(double x, double a, double b)
    {
        if (x <= 0) return 0;
        if (x >= 1) return 1;
        double lnFront = LogGamma(a + b) - LogGamma(a) - LogGamma(b) + a * Math.Log(x) + b * Math.Log(1 - x);
        // The fraction converges fast for x < (a + 1)/(a + b + 2); use the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) otherwise.
        if (x > (a + 1) / (a + b + 2)) return 1 - Math.Exp(lnFront) * BetaFraction(1 - x, b, a) / b;
        return Math.Exp(lnFront) * BetaFraction(x, a, b) / a;
    }

    private static double BetaFraction(double x, double a, double b)
    {
        const double tiny = 1e-300;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        d = Math.Abs(d) < tiny ? 1 / tiny : 1 / d;
        double h = d;
        for (int m = 1; m <= 500; m++)
        {
            double num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
            d = 1 + num * d; d = Math.Abs(d) < tiny ? 1 / tiny : 1 / d;
            c = 1 + num / c; if (Math.Abs(c) < tiny) c = tiny;
            h *= d * c;
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
            d = 1 + num * d; d = Math.Abs(d) < tiny ? 1 / tiny : 1 / d;
            c = 1 + num / c; if (Math.Abs(c) < tiny) c = tiny;
            double step = d * c;
            h *= step;
            if (Math.Abs(step - 1) < 1e-15) break;
        }
        return h;
    }

    /// <summary>ln Γ(x) for x &gt; 0 (Lanczos, g = 7, 9 terms; relative error ≈ 1e-15).</summary>
    public static double LogGamma(double x)
    {
        if (x < 0.5) return Math.Log(Math.PI / Math.Sin(Math.PI * x)) - LogGamma(1 - x);
        ReadOnlySpan<double> c =
        [
            0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
        ];
        x -= 1;
        double sum = c[0];
        for (int i = 1; i < 9; i++) sum += c[i] / (x + i);
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }
}
