using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Raft.Kernels;

namespace Raft.Model.Ops;

/// <summary>
/// The linear layer with 16-bit weights (BF16 or F16 as stored): y[N, out] = x[N, in] · W[out, in]ᵀ (+ b[out]), x and
/// y in fp32, W widened to fp32 in registers, fp32 FMA accumulation. Decoding (N &lt; 16: batched decode up to 15
/// sequences) streams each W row once from memory (32 BF16 values per Vector512 load pair, 16 per Vector256 pair) against
/// the rows of x, 4 at a time (the W row stays in L1 for the next 4), threaded over 64-column blocks; with N ≥ 16 a tile widens its W block into the fp32 [depth, 64] panel that <see cref="Gemm"/>'s
/// outer-product micro-kernel reads (the widening is the packing <see cref="Matmul"/> does anyway), so W is read from
/// memory once per step for the whole batch. Every output element is summed by one task in a fixed order: the result
/// does not depend on the thread count. <see cref="ReferenceOps.Linear"/> over the widened weights is the specification.
/// </summary>
internal static unsafe class HalfMatmul
{
    private const int ColBlock = 64;
    private const int RowBlock = 64;
    private const int PackDepth = 128;
    private const int PackedMinRows = 16;   // below this (decoding, up to batch 15) each W row is streamed once from memory and dotted with the rows of x from L1/L2

    /// <summary>Every SIMD level this process runs, widest first, then scalar (the variants the tests iterate).</summary>
    public static IReadOnlyList<SimdLevel> Levels
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

    /// <summary>y[n, m] = x[n, k] · w[m, k]ᵀ + bias[m] (bias may be empty); with <paramref name="accumulate"/>, y += instead.</summary>
    public static void Forward(ReadOnlySpan<float> x, HalfMatrix w, ReadOnlySpan<float> bias, Span<float> y,
        int n, int k, int m, int threads, bool accumulate = false, SimdLevel? simd = null)
    {
        // x: [n, k]   w: [m, k] (16-bit)   bias: [m] or empty   y: [n, m]
        ArgumentNullException.ThrowIfNull(w);
        if (x.Length < (long)n * k) throw new ArgumentException($"x has {x.Length} values, needs [{n}, {k}].", nameof(x));
        if (w.Length < (long)m * k) throw new ArgumentException($"w ({w.Name}) has {w.Length} values, needs [{m}, {k}].", nameof(w));
        if (y.Length < (long)n * m) throw new ArgumentException($"y has {y.Length} values, needs [{n}, {m}].", nameof(y));
        if (!bias.IsEmpty && bias.Length < m) throw new ArgumentException($"bias has {bias.Length} values, needs [{m}].", nameof(bias));
        if (n == 0 || m == 0) return;
        var level = simd ?? Matmul.Best;
        if (level == SimdLevel.Vector512 && !Vector512.IsHardwareAccelerated || level == SimdLevel.Vector256 && !Vector256.IsHardwareAccelerated)
            throw new ArgumentException($"SIMD level {level} is not supported by this CPU.", nameof(simd));
        if (w.DType == SafeTensorDType.BF16) Run<Bf16Format>(x, w, bias, y, n, k, m, threads, accumulate, level);
        else Run<F16Format>(x, w, bias, y, n, k, m, threads, accumulate, level);
    }

    private static void Run<TF>(ReadOnlySpan<float> x, HalfMatrix w, ReadOnlySpan<float> bias, Span<float> y,
        int n, int k, int m, int threads, bool accumulate, SimdLevel level) where TF : struct, IHalfFormat
    {
        fixed (float* px = x, pb = bias, py = y)
        fixed (ushort* pw = w.Bits)
        {
            nint ax = (nint)px, aw = (nint)pw, ab = bias.IsEmpty ? 0 : (nint)pb, ay = (nint)py;
            int colBlocks = (m + ColBlock - 1) / ColBlock;
            if (n >= PackedMinRows && level != SimdLevel.Scalar)
            {
                int rowBlocks = (n + RowBlock - 1) / RowBlock;
                // W-major order: consecutive tiles share a W block (read from memory once for the batch)
                Par.For(rowBlocks * colBlocks, threads, tile =>
                {
                    int rb = tile % rowBlocks, cb = tile / rowBlocks;
                    int r0 = rb * RowBlock, r1 = Math.Min(n, r0 + RowBlock);
                    int c0 = cb * ColBlock, c1 = Math.Min(m, c0 + ColBlock);
                    PackedTile<TF>((float*)ax, (ushort*)aw, (float*)ab, (float*)ay, k, m, r0, r1, c0, c1, accumulate, level);
                });
            }
            else
            {
                Par.For(colBlocks, threads, cb =>
                {
                    int c0 = cb * ColBlock, c1 = Math.Min(m, c0 + ColBlock);
                    Columns<TF>((float*)ax, (ushort*)aw, (float*)ab, (float*)ay, n, k, m, c0, c1, accumulate, level);
                });
            }
        }
    }

    private const int BackRowBlock = 64, BackColBlock = 128, BackDepthBlock = 256;   // Gemm's tiles, so the sums are Gemm's
    [ThreadStatic] private static float[]? t_panel;

    /// <summary>
    /// The input gradient of <see cref="Forward"/> for frozen 16-bit weights: dx[n, k] = dy[n, m] · W[m, k] (or += with
    /// <paramref name="accumulate"/>), W widened to fp32 inside the kernel a [256, 128] block at a time and fed to
    /// <see cref="Gemm"/>'s micro-kernel with Gemm's tiles and depth blocks, so the result is bit for bit
    /// <see cref="Matmul.Backward"/>'s dx over the widened weights. There is no weight gradient: 16-bit weights are frozen.
    /// </summary>
    public static void BackwardInput(ReadOnlySpan<float> dy, HalfMatrix w, Span<float> dx, int n, int k, int m, int threads,
        bool accumulate = false, SimdLevel? simd = null)
    {
        // dy: [n, m]   w: [m, k] (16-bit)   dx: [n, k]
        ArgumentNullException.ThrowIfNull(w);
        if (dy.Length < (long)n * m) throw new ArgumentException($"dy has {dy.Length} values, needs [{n}, {m}].", nameof(dy));
        if (w.Length < (long)m * k) throw new ArgumentException($"w ({w.Name}) has {w.Length} values, needs [{m}, {k}].", nameof(w));
        if (dx.Length < (long)n * k) throw new ArgumentException($"dx has {dx.Length} values, needs [{n}, {k}].", nameof(dx));
        if (n == 0 || k == 0) return;
        var level = simd ?? Matmul.Best;
        if (level == SimdLevel.Vector512 && !Vector512.IsHardwareAccelerated || level == SimdLevel.Vector256 && !Vector256.IsHardwareAccelerated)
            throw new ArgumentException($"SIMD level {level} is not supported by this CPU.", nameof(simd));
        bool bf16 = w.DType == SafeTensorDType.BF16;
        fixed (float* pdy = dy, pdx = dx)
        fixed (ushort* pw = w.Bits)
        {
            nint ady = (nint)pdy, adx = (nint)pdx, aw = (nint)pw;
            int rowBlocks = (n + BackRowBlock - 1) / BackRowBlock, colBlocks = (k + BackColBlock - 1) / BackColBlock;
            Par.For(rowBlocks * colBlocks, (long)n * k * m > 1 << 16 ? threads : 1, tile =>
            {
                int r0 = tile / colBlocks * BackRowBlock, r1 = Math.Min(n, r0 + BackRowBlock);
                int c0 = tile % colBlocks * BackColBlock, c1 = Math.Min(k, c0 + BackColBlock);
                if (bf16) BackwardTile<Bf16Format>((float*)ady, (ushort*)aw, (float*)adx, k, m, r0, r1, c0, c1, accumulate, level);
                else BackwardTile<F16Format>((float*)ady, (ushort*)aw, (float*)adx, k, m, r0, r1, c0, c1, accumulate, level);
            });
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardTile<TF>(float* dy, ushort* w, float* dx, int k, int m, int r0, int r1, int c0, int c1,
        bool accumulate, SimdLevel level) where TF : struct, IHalfFormat
    {
        const int ld = BackColBlock;
        var buffer = t_panel ??= new float[BackDepthBlock * BackColBlock];
        if (!accumulate)
            for (int r = r0; r < r1; r++) new Span<float>(dx + (long)r * k + c0, c1 - c0).Clear();
        fixed (float* panel = buffer)
        {
            for (int p0 = 0; p0 < m; p0 += BackDepthBlock)
            {
                int p1 = Math.Min(m, p0 + BackDepthBlock);
                // panel[(p − p0)·ld + (j − c0)] = W[p, j] widened
                for (int p = p0; p < p1; p++) WidenRow<TF>(w + (long)p * k + c0, panel + (p - p0) * ld, c1 - c0, level);
                float* b = panel - (long)p0 * ld - c0;   // b[p·ld + j] is W[p, j], j in c0..c1-1
                int r = r0;
                for (; r + 4 <= r1; r += 4) Gemm.Rows(dy, m, 1, b, ld, dx, k, r, 4, c0, c1, p0, p1, level);
                for (; r < r1; r++) Gemm.Rows(dy, m, 1, b, ld, dx, k, r, 1, c0, c1, p0, p1, level);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void PackedTile<TF>(float* x, ushort* w, float* bias, float* yOut, int k, int m,
        int r0, int r1, int c0, int c1, bool accumulate, SimdLevel level) where TF : struct, IHalfFormat
    {
        const int ld = ColBlock;
        int nc = c1 - c0;
        float* y = stackalloc float[RowBlock * ColBlock];
        float* panel = stackalloc float[PackDepth * ColBlock];
        float* row = stackalloc float[PackDepth];
        Matmul.StartTile(y, ld, yOut, bias, m, r0, r1, c0, nc, accumulate);
        float* xt = x + (long)r0 * k;
        int rows = r1 - r0;
        for (int p0 = 0; p0 < k; p0 += PackDepth)
        {
            int p1 = Math.Min(k, p0 + PackDepth), len = p1 - p0;
            for (int j = 0; j < nc; j++)
            {
                ushort* wr = w + (long)(c0 + j) * k + p0;
                WidenRow<TF>(wr, row, len, level);
                for (int p = 0; p < len; p++) panel[p * ld + j] = row[p];
            }
            float* b = panel - p0 * ld;   // b[p·ld + j] is W[c0 + j, p] widened
            int r = 0;
            for (; r + 4 <= rows; r += 4) Gemm.Rows(xt, k, 1, b, ld, y, ld, r, 4, 0, nc, p0, p1, level);
            for (; r < rows; r++) Gemm.Rows(xt, k, 1, b, ld, y, ld, r, 1, 0, nc, p0, p1, level);
        }
        for (int r = r0; r < r1; r++)
            new ReadOnlySpan<float>(y + (r - r0) * ld, nc).CopyTo(new Span<float>(yOut + (long)r * m + c0, nc));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WidenRow<TF>(ushort* src, float* dst, int len, SimdLevel level) where TF : struct, IHalfFormat
    {
        int p = 0;
        if (level == SimdLevel.Vector512)
            for (; p + 32 <= len; p += 32)
            {
                var (lo, hi) = TF.Load32(src + p);
                lo.Store(dst + p); hi.Store(dst + p + 16);
            }
        else if (level == SimdLevel.Vector256)
            for (; p + 16 <= len; p += 16)
            {
                var (lo, hi) = TF.Load16(src + p);
                lo.Store(dst + p); hi.Store(dst + p + 8);
            }
        for (; p < len; p++) dst[p] = TF.ToSingle(src[p]);
    }

    /// <summary>Columns c0..c1-1 of every row: each W row is loaded once and dotted with the rows of x, 4 at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Columns<TF>(float* x, ushort* w, float* bias, float* y, int n, int k, int m,
        int c0, int c1, bool accumulate, SimdLevel level) where TF : struct, IHalfFormat
    {
        float* s = stackalloc float[4];
        for (int c = c0; c < c1; c++)
        {
            ushort* wr = w + (long)c * k;
            float b0 = bias != null ? bias[c] : 0f;
            int r = 0;
            for (; r + 4 <= n; r += 4)
            {
                float* a = x + (long)r * k;
                if (level == SimdLevel.Vector512) Dot4V512<TF>(a, k, wr, s);
                else if (level == SimdLevel.Vector256) Dot4V256<TF>(a, k, wr, s);
                else Dot4Scalar<TF>(a, k, wr, 0, s, zero: true);
                for (int i = 0; i < 4; i++)
                {
                    float* yi = y + (long)(r + i) * m + c;
                    *yi = (accumulate ? *yi : b0) + s[i];
                }
            }
            for (; r < n; r++)
            {
                float* a = x + (long)r * k;
                float d = level == SimdLevel.Vector512 ? Dot1V512<TF>(a, wr, k)
                    : level == SimdLevel.Vector256 ? Dot1V256<TF>(a, wr, k) : Dot1Scalar<TF>(a, wr, 0, k, 0f);
                float* yr = y + (long)r * m + c;
                *yr = (accumulate ? *yr : b0) + d;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot1Scalar<TF>(float* a, ushort* w, int p, int len, float s) where TF : struct, IHalfFormat
    {
        for (; p < len; p++) s = MathF.FusedMultiplyAdd(a[p], TF.ToSingle(w[p]), s);
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4Scalar<TF>(float* a, int k, ushort* w, int p, float* s, bool zero) where TF : struct, IHalfFormat
    {
        if (zero) { s[0] = 0; s[1] = 0; s[2] = 0; s[3] = 0; }
        for (int i = 0; i < 4; i++) s[i] = Dot1Scalar<TF>(a + (long)i * k, w, p, k, s[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot1V512<TF>(float* a, ushort* w, int k) where TF : struct, IHalfFormat
    {
        Vector512<float> s0 = default, s1 = default;
        int p = 0;
        for (; p + 32 <= k; p += 32)
        {
            var (lo, hi) = TF.Load32(w + p);
            s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + p), lo, s0);
            s1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + p + 16), hi, s1);
        }
        return Dot1Scalar<TF>(a, w, p, k, Vector512.Sum(s0 + s1));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot1V256<TF>(float* a, ushort* w, int k) where TF : struct, IHalfFormat
    {
        Vector256<float> s0 = default, s1 = default;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var (lo, hi) = TF.Load16(w + p);
            s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + p), lo, s0);
            s1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + p + 8), hi, s1);
        }
        return Dot1Scalar<TF>(a, w, p, k, Vector256.Sum(s0 + s1));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4V512<TF>(float* a, int k, ushort* w, float* s) where TF : struct, IHalfFormat
    {
        Vector512<float> s00 = default, s01 = default, s10 = default, s11 = default;
        Vector512<float> s20 = default, s21 = default, s30 = default, s31 = default;
        float* a0 = a, a1 = a + k, a2 = a + 2L * k, a3 = a + 3L * k;
        int p = 0;
        for (; p + 32 <= k; p += 32)
        {
            var (lo, hi) = TF.Load32(w + p);
            s00 = Vector512.FusedMultiplyAdd(Vector512.Load(a0 + p), lo, s00); s01 = Vector512.FusedMultiplyAdd(Vector512.Load(a0 + p + 16), hi, s01);
            s10 = Vector512.FusedMultiplyAdd(Vector512.Load(a1 + p), lo, s10); s11 = Vector512.FusedMultiplyAdd(Vector512.Load(a1 + p + 16), hi, s11);
            s20 = Vector512.FusedMultiplyAdd(Vector512.Load(a2 + p), lo, s20); s21 = Vector512.FusedMultiplyAdd(Vector512.Load(a2 + p + 16), hi, s21);
            s30 = Vector512.FusedMultiplyAdd(Vector512.Load(a3 + p), lo, s30); s31 = Vector512.FusedMultiplyAdd(Vector512.Load(a3 + p + 16), hi, s31);
        }
        s[0] = Vector512.Sum(s00 + s01); s[1] = Vector512.Sum(s10 + s11);
        s[2] = Vector512.Sum(s20 + s21); s[3] = Vector512.Sum(s30 + s31);
        if (p < k) Dot4Scalar<TF>(a, k, w, p, s, zero: false);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4V256<TF>(float* a, int k, ushort* w, float* s) where TF : struct, IHalfFormat
    {
        Vector256<float> s00 = default, s01 = default, s10 = default, s11 = default;
        Vector256<float> s20 = default, s21 = default, s30 = default, s31 = default;
        float* a0 = a, a1 = a + k, a2 = a + 2L * k, a3 = a + 3L * k;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var (lo, hi) = TF.Load16(w + p);
            s00 = Vector256.FusedMultiplyAdd(Vector256.Load(a0 + p), lo, s00); s01 = Vector256.FusedMultiplyAdd(Vector256.Load(a0 + p + 8), hi, s01);
            s10 = Vector256.FusedMultiplyAdd(Vector256.Load(a1 + p), lo, s10); s11 = Vector256.FusedMultiplyAdd(Vector256.Load(a1 + p + 8), hi, s11);
            s20 = Vector256.FusedMultiplyAdd(Vector256.Load(a2 + p), lo, s20); s21 = Vector256.FusedMultiplyAdd(Vector256.Load(a2 + p + 8), hi, s21);
            s30 = Vector256.FusedMultiplyAdd(Vector256.Load(a3 + p), lo, s30); s31 = Vector256.FusedMultiplyAdd(Vector256.Load(a3 + p + 8), hi, s31);
        }
        s[0] = Vector256.Sum(s00 + s01); s[1] = Vector256.Sum(s10 + s11);
        s[2] = Vector256.Sum(s20 + s21); s[3] = Vector256.Sum(s30 + s31);
        if (p < k) Dot4Scalar<TF>(a, k, w, p, s, zero: false);
    }
}
