namespace Raft.GpuBench;

/// <summary>Seeded random inputs for the correctness check (SplitMix64 → Box–Muller; never zeros).</summary>
internal static class HostData
{
    /// <summary><paramref name="count"/> normal numbers with standard deviation <paramref name="sd"/>.</summary>
    public static float[] Normals(long count, double sd, ulong seed)
    {
        var result = new float[count];
        ulong state = seed;
        for (long i = 0; i < count; i += 2)
        {
            double u1 = (Next(ref state) >> 11) * (1.0 / (1ul << 53));
            double u2 = (Next(ref state) >> 11) * (1.0 / (1ul << 53));
            double r = Math.Sqrt(-2 * Math.Log(1 - u1)) * sd;
            result[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < count) result[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
        return result;
    }

    private static ulong Next(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15ul;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
        return z ^ (z >> 31);
    }
}
