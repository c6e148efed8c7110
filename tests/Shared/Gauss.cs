namespace Raft.Tests.Shared;

/// <summary>
/// The normal samplers of the tests (and of raft-gpubench's correctness check), one copy: linked source, compiled into
/// each project that draws Gaussian data. Each method keeps the exact draw order and rounding its callers were tuned
/// on: a test that compares against a tolerance gets the same numbers as before.
/// </summary>
internal static class Gauss
{
    /// <summary>
    /// One N(0, 1) draw by Box–Muller, cosine branch only: two <see cref="Random.NextDouble"/> calls, u1 = 1 − first
    /// (in (0, 1], so the logarithm is finite), u2 = second; returns √(−2 ln u1)·cos(2π u2).
    /// </summary>
    public static double Next(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>
    /// The draw of <see cref="Next(Random)"/> scaled by <paramref name="scale"/>, multiplied left to right:
    /// (scale·√(−2 ln u1))·cos(2π u2). That rounding can differ in the last bit from <c>scale * Next(rng)</c>; the CLI
    /// tests' logits were always made this way.
    /// </summary>
    public static double Next(Random rng, double scale)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return scale * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>
    /// <paramref name="count"/> normals of standard deviation <paramref name="sd"/> from a SplitMix64 stream seeded
    /// with <paramref name="seed"/> (no <see cref="Random"/>, so the same on every runtime): 53-bit uniforms, Box–Muller
    /// with both branches, the cosine value first and the sine value second. Never zeros.
    /// </summary>
    public static float[] SplitMix64(long count, double sd, ulong seed)
    {
        var result = new float[count];
        ulong state = seed;
        for (long i = 0; i < count; i += 2)
        {
            double u1 = (NextSplitMix64(ref state) >> 11) * (1.0 / (1ul << 53));
            double u2 = (NextSplitMix64(ref state) >> 11) * (1.0 / (1ul << 53));
            double r = Math.Sqrt(-2 * Math.Log(1 - u1)) * sd;
            result[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < count) result[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
        return result;
    }

    private static ulong NextSplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15ul;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
        return z ^ (z >> 31);
    }
}
