using System.Runtime.CompilerServices;

namespace Raft.Model;

/// <summary>
/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a counter-based generator.
/// Each (key, counter) gives four independent 32-bit words with no state to carry, so the randomness of a token is a
/// pure function of (seed, sequence index, step) and is the same on every process of a distributed run.
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /// <summary>The ten-round block function: four output words for a 128-bit counter and a 64-bit key.</summary>
    public static (uint X0, uint X1, uint X2, uint X3) Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            if (round > 0) { k0 += W0; k1 += W1; }
            ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
            uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0, hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>
    /// A uniform double in [0, 1) (53 random bits) for (seed, sequence, step): key = seed, counter = (step, sequence)
    /// as four 32-bit words, low word first. <paramref name="lane"/> picks one of two independent draws of the block.
    /// </summary>
    public static double Uniform(ulong seed, ulong sequence, ulong step, int lane = 0)
    {
        if ((uint)lane > 1) throw new ArgumentOutOfRangeException(nameof(lane), lane, "lane must be 0 or 1.");
        var (x0, x1, x2, x3) = Block((uint)step, (uint)(step >> 32), (uint)sequence, (uint)(sequence >> 32), (uint)seed, (uint)(seed >> 32));
        return lane == 0 ? ToUnit(x0, x1) : ToUnit(x2, x3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double ToUnit(uint a, uint b) => (((ulong)(a >> 5) << 26) | (b >> 6)) * (1.0 / (1UL << 53));
}
