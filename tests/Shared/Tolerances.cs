namespace Raft.Tests.Shared;

/// <summary>
/// The normwise relative error the tests compare against their tolerances: max_i |a_i − b_i| / max_i |b_i|, b the
/// reference (linked source, one copy). The variants differ in what they assert and in the precision of the
/// difference; each keeps the numbers and failures of the tests that were tuned on it.
/// </summary>
internal static class Tolerances
{
    /// <summary>
    /// max |a − b| / max |b| in double (max |a − b| when b is all zeros). Asserts equal lengths and that every value of
    /// <paramref name="a"/> is finite, naming the first that is not.
    /// </summary>
    public static double MaxRelError(ReadOnlySpan<float> a, ReadOnlySpan<double> b)
    {
        Assert.Equal(b.Length, a.Length);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.True(float.IsFinite(a[i]), $"value {i} is {a[i]}");
            maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
            maxRef = Math.Max(maxRef, Math.Abs(b[i]));
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }

    /// <summary><see cref="MaxRelError(ReadOnlySpan{float}, ReadOnlySpan{double})"/> with the reference widened to double.</summary>
    public static double MaxRelError(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var d = new double[b.Length];
        for (int i = 0; i < d.Length; i++) d[i] = b[i];
        return MaxRelError(a, d);
    }

    /// <summary>
    /// max |a − b| / max |b| with each difference taken in fp32, for comparing logits: asserts equal lengths, that both
    /// sides are finite, and that the reference is not degenerate (max |b| &gt; 0.1), so a pass is never vacuous.
    /// </summary>
    public static double MaxRelErrorFp32(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(b.Length, a.Length);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.True(float.IsFinite(a[i]) && float.IsFinite(b[i]), $"value {i}: {a[i]} vs {b[i]}");
            maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
            maxRef = Math.Max(maxRef, Math.Abs(b[i]));
        }
        Assert.True(maxRef > 0.1, $"reference logits are degenerate (max |b| = {maxRef})");
        return maxDiff / maxRef;
    }

    /// <summary>
    /// max |actual − expected| / max |expected| in double (max |Δ| when expected is all zeros) that asserts only equal
    /// lengths: a NaN or infinite difference makes it +∞, so the caller's own message (with its seed) reports the failure.
    /// </summary>
    public static double MaxRelErrorOrInfinity(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
            double d = Math.Abs((double)actual[i] - expected[i]);
            if (!(d <= maxDiff)) maxDiff = double.IsNaN(d) ? double.PositiveInfinity : Math.Max(maxDiff, d);
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }
}
