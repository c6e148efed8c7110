using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Raft.Kernels;

/// <summary>The vector width a CPU kernel variant uses; every level this machine supports is tested and benchmarked.</summary>
public enum SimdLevel
{
    /// <summary>Plain scalar loops (the fallback, and a variant for tests).</summary>
    Scalar = 0,
    /// <summary>256-bit vectors (AVX2).</summary>
    Vector256 = 256,
    /// <summary>512-bit vectors (AVX-512).</summary>
    Vector512 = 512,
}

/// <summary>
/// Row primitives of the CPU kernels, one loop per vector width. Rows are swept in blocks of
/// <see cref="Block"/> floats whose partial sums are accumulated in double (a horizontal add per 256
/// elements, next to 16 vector exps), so that sums over vocabularies of 150k entries stay within ~1e-7
/// of the double reference: the JSD gradient amplifies an error in log-sum-exp by up to 100×.
/// </summary>
internal static class CpuSimd
{
    public const int Block = 256;

    /// <summary>The widest level this process can run.</summary>
    public static SimdLevel Best =>
        Vector512.IsHardwareAccelerated ? SimdLevel.Vector512 :
        Vector256.IsHardwareAccelerated ? SimdLevel.Vector256 : SimdLevel.Scalar;

    /// <summary>Every level this process can run, widest first.</summary>
    public static IReadOnlyList<SimdLevel> Supported
    {
        get
        {
            var list = new List<SimdLevel>();
            if (Vector512.IsHardwareAccelerated) list.Add(SimdLevel.Vector512);
            if (Vector256.IsHardwareAccelerated) list.Add(SimdLevel.Vector256);
            list.Add(SimdLevel.Scalar);
            return list;
        }
    }

    /// <summary>
    /// max_i x_i and Σ_i (x_i − x_0) over a row: the sum is taken relative to the row's first element so that
    /// a large common offset (logits near 1e4) costs no precision. A NaN or ±∞ anywhere makes it non-finite.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float MaxSum(ReadOnlySpan<float> x, SimdLevel level, out double sumMinusFirst)
    {
        float max = float.NegativeInfinity;
        float pivot = x.IsEmpty ? 0f : x[0];
        double sum = 0;
        for (int start = 0; start < x.Length; start += Block)
        {
            var blk = x.Slice(start, Math.Min(Block, x.Length - start));
            max = MathF.Max(max, MaxSumBlock(blk, pivot, level, out float s));
            sum += s;
        }
        sumMinusFirst = float.IsFinite(pivot) ? sum : double.NaN;
        return max;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float MaxSumBlock(ReadOnlySpan<float> x, float pivot, SimdLevel level, out float sum)
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float max = float.NegativeInfinity;
        sum = 0;
        if (level == SimdLevel.Vector512 && n >= 32)
        {
            Vector512<float> m0 = Vector512.Create(float.NegativeInfinity), m1 = m0, s0 = default, s1 = default;
            var vp = Vector512.Create(pivot);
            for (; i <= n - 32; i += 32)
            {
                var a = Vector512.LoadUnsafe(ref r, (nuint)i);
                var b = Vector512.LoadUnsafe(ref r, (nuint)(i + 16));
                m0 = Vector512.MaxNative(m0, a); s0 += a - vp;
                m1 = Vector512.MaxNative(m1, b); s1 += b - vp;
            }
            var m = Vector512.MaxNative(m0, m1);
            for (int l = 0; l < 16; l++) max = MathF.Max(max, m[l]);
            sum = Vector512.Sum(s0 + s1);
        }
        else if (level >= SimdLevel.Vector256 && n >= 16)
        {
            Vector256<float> m0 = Vector256.Create(float.NegativeInfinity), m1 = m0, s0 = default, s1 = default;
            var vp = Vector256.Create(pivot);
            for (; i <= n - 16; i += 16)
            {
                var a = Vector256.LoadUnsafe(ref r, (nuint)i);
                var b = Vector256.LoadUnsafe(ref r, (nuint)(i + 8));
                m0 = Vector256.MaxNative(m0, a); s0 += a - vp;
                m1 = Vector256.MaxNative(m1, b); s1 += b - vp;
            }
            var m = Vector256.MaxNative(m0, m1);
            for (int l = 0; l < 8; l++) max = MathF.Max(max, m[l]);
            sum = Vector256.Sum(s0 + s1);
        }
        for (; i < n; i++)
        {
            float v = Unsafe.Add(ref r, i);
            max = MathF.Max(max, v);
            sum += v - pivot;
        }
        return max;
    }

    /// <summary>Σ_i exp(x_i·scale − shift) over one block; when dst is not empty it also receives each term.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double ExpSumBlock(ReadOnlySpan<float> x, float scale, float shift, Span<float> dst, SimdLevel level)
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        ref float d = ref MemoryMarshal.GetReference(dst);
        bool store = !dst.IsEmpty;
        int n = x.Length, i = 0;
        double sum = 0;
        if (level == SimdLevel.Vector512 && n >= 16)
        {
            var vs = Vector512.Create(scale);
            var vm = Vector512.Create(shift);
            Vector512<float> s0 = default;
            for (; i <= n - 16; i += 16)
            {
                var e = Exp(Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r, (nuint)i), vs, -vm));
                if (store) e.StoreUnsafe(ref d, (nuint)i);
                s0 += e;
            }
            sum = Vector512.Sum(s0);
        }
        else if (level >= SimdLevel.Vector256 && n >= 8)
        {
            var vs = Vector256.Create(scale);
            var vm = Vector256.Create(shift);
            Vector256<float> s0 = default;
            for (; i <= n - 8; i += 8)
            {
                var e = Exp(Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r, (nuint)i), vs, -vm));
                if (store) e.StoreUnsafe(ref d, (nuint)i);
                s0 += e;
            }
            sum = Vector256.Sum(s0);
        }
        for (; i < n; i++)
        {
            float e = MathF.Exp(MathF.FusedMultiplyAdd(Unsafe.Add(ref r, i), scale, -shift));
            if (store) Unsafe.Add(ref d, i) = e;
            sum += e;
        }
        return sum;
    }

    /// <summary>
    /// Σ_i exp(x_i·scale − shift) with the exponentials taken in double: for the divergences whose gradient
    /// amplifies an error in log-sum-exp (the generalized JSD), at about twice the cost of the fp32 exponentials of <see cref="MaxExpSum"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double ExpSumPrecise(ReadOnlySpan<float> x, double scale, double shift, SimdLevel level)
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        double sum = 0;
        if (level == SimdLevel.Vector512 && n >= 16)
        {
            var vs = Vector512.Create(scale);
            var vm = Vector512.Create(shift);
            Vector512<double> acc = default;
            for (; i <= n - 16; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.LoadUnsafe(ref r, (nuint)i));
                acc += Vector512.Exp(Vector512.FusedMultiplyAdd(lo, vs, -vm)) + Vector512.Exp(Vector512.FusedMultiplyAdd(hi, vs, -vm));
            }
            sum = Vector512.Sum(acc);
        }
        else if (level >= SimdLevel.Vector256 && n >= 8)
        {
            var vs = Vector256.Create(scale);
            var vm = Vector256.Create(shift);
            Vector256<double> acc = default;
            for (; i <= n - 8; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref r, (nuint)i));
                acc += Vector256.Exp(Vector256.FusedMultiplyAdd(lo, vs, -vm)) + Vector256.Exp(Vector256.FusedMultiplyAdd(hi, vs, -vm));
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++) sum += Math.Exp(Unsafe.Add(ref r, i) * scale - shift);
        return sum;
    }

    /// <summary>
    /// One read of a row for its log-sum-exp: returns Σ_i exp(x_i·scale − m) with m = max_i(x_i)·scale (in
    /// <paramref name="shift"/>), the online way: each block's max is found first and the running sum is
    /// rescaled when the max grows, so the row streams from memory once and each block is re-read from L1.
    /// Also returns Σ_i (x_i − x_0) (non-finite when the row holds a NaN or ±∞; see <see cref="MaxSum"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double MaxExpSum(ReadOnlySpan<float> x, float scale, SimdLevel level, out float shift, out double sumMinusFirst)
    {
        float pivot = x.IsEmpty ? 0f : x[0];
        float runMax = float.NegativeInfinity, m = float.NegativeInfinity;
        double sum = 0, sumX = 0;
        for (int start = 0; start < x.Length; start += Block)
        {
            var blk = x.Slice(start, Math.Min(Block, x.Length - start));
            float bmax = MaxSumBlock(blk, pivot, level, out float bs);
            sumX += bs;
            if (bmax > runMax)
            {
                float mNew = bmax * scale;
                if (sum > 0) sum *= Math.Exp((double)m - mNew);
                runMax = bmax; m = mNew;
            }
            if (float.IsFinite(m)) sum += ExpSumBlock(blk, scale, m, default, level);
        }
        shift = m;
        sumMinusFirst = float.IsFinite(pivot) ? sumX : double.NaN;
        return sum;
    }

    /// <summary>dst_i = a·exp(x_i·scale − shift) + b (dst may be x itself).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ExpAffine(ReadOnlySpan<float> x, float scale, float shift, float a, float b, Span<float> dst, SimdLevel level)
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        ref float d = ref MemoryMarshal.GetReference(dst);
        int n = x.Length, i = 0;
        if (level == SimdLevel.Vector512 && n >= 16)
        {
            var vs = Vector512.Create(scale);
            var vm = Vector512.Create(-shift);
            var va = Vector512.Create(a);
            var vb = Vector512.Create(b);
            for (; i <= n - 16; i += 16)
            {
                var e = Exp(Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r, (nuint)i), vs, vm));
                Vector512.FusedMultiplyAdd(e, va, vb).StoreUnsafe(ref d, (nuint)i);
            }
        }
        else if (level >= SimdLevel.Vector256 && n >= 8)
        {
            var vs = Vector256.Create(scale);
            var vm = Vector256.Create(-shift);
            var va = Vector256.Create(a);
            var vb = Vector256.Create(b);
            for (; i <= n - 8; i += 8)
            {
                var e = Exp(Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r, (nuint)i), vs, vm));
                Vector256.FusedMultiplyAdd(e, va, vb).StoreUnsafe(ref d, (nuint)i);
            }
        }
        for (; i < n; i++)
            Unsafe.Add(ref d, i) = MathF.FusedMultiplyAdd(MathF.Exp(MathF.FusedMultiplyAdd(Unsafe.Add(ref r, i), scale, -shift)), a, b);
    }

    // exp(x) for fp32 vectors: x = n·ln2 + r with n = round(x/ln2) (Cody–Waite split of ln2), |r| ≤ ln2/2,
    // exp(r) by its Taylor series to degree 7 (truncation ≤ 5e-9 relative), 2^n built in the exponent bits.
    // Inputs are clamped to [−87, 88] (exp(−87) ≈ 1.6e-38 stands in for anything smaller: the kernels only
    // exponentiate x − max ≤ 0, where such terms are far below fp32 resolution of a sum ≥ 1). Fewer
    // operations than Vector512.Exp's fp32 path; accuracy within a few ulp (CpuSimdTests pins it).
    private const float ExpLo = -87f, ExpHi = 88f, Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693145751953125f, Ln2Lo = 1.42860682030941723212e-6f;
    private const float RoundMagic = 12582912f; // 1.5·2^23: adding it rounds to an integer held in the low mantissa bits
    private const float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720, C7 = 1f / 5040;

    /// <summary>exp of each lane (see the comment above for range and accuracy).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(ExpLo)), Vector512.Create(ExpHi));
        var t = Vector512.FusedMultiplyAdd(x, Vector512.Create(Log2E), Vector512.Create(RoundMagic));
        var n = t - Vector512.Create(RoundMagic);
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(C7), r, Vector512.Create(C6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C5));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        var bits = (t.AsInt32() - Vector512.Create(BitConverter.SingleToInt32Bits(RoundMagic)) + Vector512.Create(127)) << 23;
        return p * bits.AsSingle();
    }

    /// <summary>exp of each lane (see the comment above for range and accuracy).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(ExpLo)), Vector256.Create(ExpHi));
        var t = Vector256.FusedMultiplyAdd(x, Vector256.Create(Log2E), Vector256.Create(RoundMagic));
        var n = t - Vector256.Create(RoundMagic);
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(C7), r, Vector256.Create(C6));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        var bits = (t.AsInt32() - Vector256.Create(BitConverter.SingleToInt32Bits(RoundMagic)) + Vector256.Create(127)) << 23;
        return p * bits.AsSingle();
    }

    /// <summary>The first non-finite element of a row, or -1 (the error path only).</summary>
    public static int FindNonFinite(ReadOnlySpan<float> x)
    {
        for (int i = 0; i < x.Length; i++) if (!float.IsFinite(x[i])) return i;
        return -1;
    }

    /// <summary>An unsigned key whose order is the order of the floats (for finite values and ±∞).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint OrderKey(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        return (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
    }
}
