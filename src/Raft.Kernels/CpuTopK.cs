using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Raft.Kernels;

/// <summary>
/// Top-K selection of one row for the CPU kernels: a bounded heap of the K best seen so far, fed by a
/// vector scan that only looks at lanes above the heap's current threshold (after the first few thousand
/// elements almost no lane passes, so the scan runs at memory speed). Large K (more than
/// <see cref="HeapLimit"/>) sorts the whole row's keys instead. Order: descending value, ties to the lower
/// index, so the result equals <see cref="ReferenceKernels.TopKSoftmaxRow"/>'s.
/// </summary>
internal sealed class CpuTopK
{
    public const int HeapLimit = 2048;

    private readonly float[] _hv;
    private readonly int[] _hi;
    private readonly ulong[] _keys;

    public CpuTopK(int k, int vocab)
    {
        _hv = new float[k];
        _hi = new int[k];
        _keys = new ulong[k > HeapLimit ? vocab : k];
    }

    /// <summary>
    /// Selects the row's top k into <paramref name="indices"/> (sorted best first) and returns, through
    /// <paramref name="values"/>, their logits. Returns Σ of the row's values (non-finite when the row holds
    /// a NaN or ±∞) so the caller can report bad rows without a second pass.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public double Select(ReadOnlySpan<float> row, int k, SimdLevel level, Span<int> indices, Span<float> values)
    {
        if (k > HeapLimit) return SelectBySort(row, k, indices, values);
        int vocab = row.Length;
        var hv = _hv.AsSpan(0, k);
        var hi = _hi.AsSpan(0, k);
        double sum = 0;
        for (int i = 0; i < k; i++) { hv[i] = row[i]; hi[i] = i; sum += row[i]; }
        for (int i = k / 2 - 1; i >= 0; i--) SiftDown(hv, hi, i);

        ref float r = ref MemoryMarshal.GetReference(row);
        int j = k;
        if (level == SimdLevel.Vector512)
        {
            Vector512<float> acc = default;
            for (; j <= vocab - 16; j += 16)
            {
                var v = Vector512.LoadUnsafe(ref r, (nuint)j);
                acc += v;
                ulong mask = Vector512.GreaterThan(v, Vector512.Create(hv[0])).ExtractMostSignificantBits();
                while (mask != 0)
                {
                    int lane = BitOperations.TrailingZeroCount(mask);
                    Offer(hv, hi, Unsafe.Add(ref r, j + lane), j + lane);
                    mask &= mask - 1;
                }
            }
            sum += Vector512.Sum(acc);
        }
        else if (level == SimdLevel.Vector256)
        {
            Vector256<float> acc = default;
            for (; j <= vocab - 8; j += 8)
            {
                var v = Vector256.LoadUnsafe(ref r, (nuint)j);
                acc += v;
                uint mask = Vector256.GreaterThan(v, Vector256.Create(hv[0])).ExtractMostSignificantBits();
                while (mask != 0)
                {
                    int lane = BitOperations.TrailingZeroCount(mask);
                    Offer(hv, hi, Unsafe.Add(ref r, j + lane), j + lane);
                    mask &= mask - 1;
                }
            }
            sum += Vector256.Sum(acc);
        }
        for (; j < vocab; j++)
        {
            float v = Unsafe.Add(ref r, j);
            sum += v;
            Offer(hv, hi, v, j);
        }

        var keys = _keys.AsSpan(0, k);
        for (int i = 0; i < k; i++) keys[i] = Key(hv[i], hi[i]);
        keys.Sort();
        for (int i = 0; i < k; i++) { indices[i] = (int)(uint)keys[i]; values[i] = row[indices[i]]; }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private double SelectBySort(ReadOnlySpan<float> row, int k, Span<int> indices, Span<float> values)
    {
        var keys = _keys.AsSpan(0, row.Length);
        double sum = 0;
        for (int i = 0; i < row.Length; i++) { keys[i] = Key(row[i], i); sum += row[i]; }
        keys.Sort();
        for (int i = 0; i < k; i++) { indices[i] = (int)(uint)keys[i]; values[i] = row[indices[i]]; }
        return sum;
    }

    /// <summary>Ascending key order = descending value, then ascending index.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Key(float v, int i) => ((ulong)~CpuSimd.OrderKey(v) << 32) | (uint)i;

    /// <summary>A later element (higher index) enters only if strictly greater than the worst kept.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Offer(Span<float> hv, Span<int> hi, float v, int i)
    {
        if (!(v > hv[0])) return;
        hv[0] = v; hi[0] = i;
        SiftDown(hv, hi, 0);
    }

    /// <summary>Min-heap on "worse": lower value, or equal value and higher index.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Worse(float av, int ai, float bv, int bi) => av < bv || (av == bv && ai > bi);

    private static void SiftDown(Span<float> hv, Span<int> hi, int p)
    {
        int n = hv.Length;
        float v = hv[p]; int idx = hi[p];
        while (true)
        {
            int c = 2 * p + 1;
            if (c >= n) break;
            if (c + 1 < n && Worse(hv[c + 1], hi[c + 1], hv[c], hi[c])) c++;
            if (!Worse(hv[c], hi[c], v, idx)) break;
            hv[p] = hv[c]; hi[p] = hi[c];
            p = c;
        }
        hv[p] = v; hi[p] = idx;
    }
}
