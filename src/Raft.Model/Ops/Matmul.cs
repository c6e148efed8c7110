using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Raft.Kernels;

namespace Raft.Model.Ops;

/// <summary>
/// The linear layer, the hot path: y[N, out] = x[N, in] · W[out, in]ᵀ (+ b[out]), in PyTorch's nn.Linear layout.
/// Threaded over (64-row, 64-column) output tiles, each summed in a local buffer. With N ≥ 8 a tile packs its W
/// block into [depth slice, 64] panels and runs <see cref="Gemm"/>'s outer-product micro-kernel (4 rows × 64
/// columns, 16 Vector512 or Vector256 FMA accumulators); for decoding (N &lt; 8) it runs 4×4 tiles of dot products
/// along the contiguous "in" axis, which need no packing. Every output element is owned by one tile and summed
/// in a fixed order, so the result does not depend on the thread count. The backward (dx = dy · W,
/// dW += dyᵀ · x, db += Σ_rows dy) runs on <see cref="Gemm"/> directly, reading the transposed operand through strides.
/// </summary>
internal static unsafe class Matmul
{
    private const int RowBlock = 64;   // rows of x per tile
    private const int PackedRowBlock = 256;   // rows per packed tile when there are enough tiles for every thread
    private const int ColBlock = 64;   // rows of W (output columns) per tile
    private const int KBlock = 1024;   // reduction slice kept in L1/L2

    /// <summary>The widest SIMD level this process runs (the default of every op).</summary>
    public static readonly SimdLevel Best =
        Vector512.IsHardwareAccelerated ? SimdLevel.Vector512 :
        Vector256.IsHardwareAccelerated ? SimdLevel.Vector256 : SimdLevel.Scalar;

    /// <summary>
    /// y[n, m] = x[n, k] · w[m, k]ᵀ + bias[m] (bias may be empty); with <paramref name="accumulate"/>, y += instead.
    /// </summary>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y,
        int n, int k, int m, int threads, bool accumulate = false, SimdLevel? simd = null)
    {
        // x: [n, k]   w: [m, k]   bias: [m] or empty   y: [n, m]
        if (x.Length < (long)n * k) throw new ArgumentException($"x has {x.Length} values, needs [{n}, {k}].", nameof(x));
        if (w.Length < (long)m * k) throw new ArgumentException($"w has {w.Length} values, needs [{m}, {k}].", nameof(w));
        if (y.Length < (long)n * m) throw new ArgumentException($"y has {y.Length} values, needs [{n}, {m}].", nameof(y));
        if (!bias.IsEmpty && bias.Length < m) throw new ArgumentException($"bias has {bias.Length} values, needs [{m}].", nameof(bias));
        if (n == 0 || m == 0) return;
        fixed (float* px = x, pw = w, pb = bias, py = y)
        {
            nint ax = (nint)px, aw = (nint)pw, ab = bias.IsEmpty ? 0 : (nint)pb, ay = (nint)py;
            var level = simd ?? Best;
            bool packed = n >= PackedMinRows && level != SimdLevel.Scalar;
            int colBlocks = (m + ColBlock - 1) / ColBlock;
            // taller packed tiles pack each W panel fewer times, as long as every thread still gets ~4 tiles
            int rowBlock = packed && (long)((n + PackedRowBlock - 1) / PackedRowBlock) * colBlocks >= 4L * Par.Resolve(threads)
                ? PackedRowBlock : RowBlock;
            int rowBlocks = (n + rowBlock - 1) / rowBlock;
            // Consecutive tiles share the larger operand's block, so it is read from memory once and the smaller
            // operand is the one swept again (lm_head: W is [vocab, C], x only [N, C]).
            bool wMajor = (long)m > n;
            Par.For(rowBlocks * colBlocks, threads, tile =>
            {
                int rb = wMajor ? tile % rowBlocks : tile / colBlocks, cb = wMajor ? tile / rowBlocks : tile % colBlocks;
                int r0 = rb * rowBlock, r1 = Math.Min(n, r0 + rowBlock);
                int c0 = cb * ColBlock, c1 = Math.Min(m, c0 + ColBlock);
                if (packed)
                    PackedTile((float*)ax, (float*)aw, (float*)ab, (float*)ay, k, m, r0, r1, c0, c1, accumulate, level);
                else
                    Tile((float*)ax, (float*)aw, (float*)ab, (float*)ay, k, m, r0, r1, c0, c1, accumulate, level);
            });
        }
    }

    private const int PackDepth = 128;   // depth slice of the packed W panel: [PackDepth, ColBlock] = 32 KiB
    private const int PackedMinRows = 8;  // below this (decoding) the dot-product tile wins: no packing to amortize

    /// <summary>
    /// One tile by packing: the W block [ColBlock rows, depth slice] is transposed into a [depth, ColBlock] panel,
    /// then <see cref="Gemm"/>'s outer-product micro-kernel runs on it (broadcast x, vector loads of the panel; no
    /// horizontal sums). The packing costs 1/(2·rows) of the tile's FLOPs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void PackedTile(float* x, float* w, float* bias, float* yOut, int k, int m,
        int r0, int r1, int c0, int c1, bool accumulate, SimdLevel level)
    {
        const int ld = ColBlock;
        int nc = c1 - c0;
        float* y = stackalloc float[PackedRowBlock * ColBlock];
        float* panel = stackalloc float[PackDepth * ColBlock];
        StartTile(y, ld, yOut, bias, m, r0, r1, c0, nc, accumulate);
        float* xt = x + (long)r0 * k;
        int rows = r1 - r0;
        for (int p0 = 0; p0 < k; p0 += PackDepth)
        {
            int p1 = Math.Min(k, p0 + PackDepth);
            for (int j = 0; j < nc; j++)
            {
                float* wr = w + (long)(c0 + j) * k;
                for (int p = p0; p < p1; p++) panel[(p - p0) * ld + j] = wr[p];
            }
            float* b = panel - p0 * ld;   // so that b[p·ld + j] is W[c0 + j, p]
            int r = 0;
            for (; r + 4 <= rows; r += 4) Gemm.Rows(xt, k, 1, b, ld, y, ld, r, 4, 0, nc, p0, p1, level);
            for (; r < rows; r++) Gemm.Rows(xt, k, 1, b, ld, y, ld, r, 1, 0, nc, p0, p1, level);
        }
        for (int r = r0; r < r1; r++)
            new ReadOnlySpan<float>(y + (r - r0) * ld, nc).CopyTo(new Span<float>(yOut + (long)r * m + c0, nc));
    }

    /// <summary>
    /// Fills a tile's accumulator rows r0..r1 (stride <paramref name="ld"/>, <paramref name="nc"/> columns from c0) with
    /// what the products add to: the output as it is (accumulate), the bias, or zero. Shared by both tile kernels here
    /// and <see cref="HalfMatmul"/>'s.
    /// </summary>
    internal static void StartTile(float* y, int ld, float* yOut, float* bias, int m, int r0, int r1, int c0, int nc, bool accumulate)
    {
        for (int r = r0; r < r1; r++)
        {
            var dst = new Span<float>(y + (r - r0) * ld, nc);
            if (accumulate) new ReadOnlySpan<float>(yOut + (long)r * m + c0, nc).CopyTo(dst);
            else if (bias != null) new ReadOnlySpan<float>(bias + c0, nc).CopyTo(dst);
            else dst.Clear();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Tile(float* x, float* w, float* bias, float* yOut, int k, int m,
        int r0, int r1, int c0, int c1, bool accumulate, SimdLevel level)
    {
        // The tile is summed in a small local buffer (row stride ColBlock): rows of a wide y (lm_head: 49152
        // columns) are a power-of-two-ish stride apart and would otherwise fight over the same L1 sets.
        const int ld = ColBlock;
        int nc = c1 - c0;
        float* y = stackalloc float[RowBlock * ColBlock];
        StartTile(y, ld, yOut, bias, m, r0, r1, c0, nc, accumulate);
        for (int p0 = 0; p0 < k; p0 += KBlock)
        {
            int len = Math.Min(KBlock, k - p0);
            int r = r0;
            for (; r + 4 <= r1; r += 4)
            {
                float* a = x + (long)r * k + p0;
                float* yr = y + (r - r0) * ld;
                int c = c0;
                for (; c + 4 <= c1; c += 4)
                {
                    float* b = w + (long)c * k + p0;
                    float* d = yr + (c - c0);
                    if (level == SimdLevel.Vector512) Kernel4x4V512(a, b, k, len, d, ld);
                    else if (level == SimdLevel.Vector256) Kernel4x4V256(a, b, k, len, d, ld);
                    else Kernel4x4Scalar(a, b, k, len, d, ld);
                }
                for (; c < c1; c++)
                    for (int i = 0; i < 4; i++)
                        yr[i * ld + (c - c0)] += Dot(a + (long)i * k, w + (long)c * k + p0, len, level);
            }
            for (; r < r1; r++)
            {
                float* a = x + (long)r * k + p0;
                float* yr = y + (r - r0) * ld;
                for (int c = c0; c < c1; c++)
                    yr[c - c0] += Dot(a, w + (long)c * k + p0, len, level);
            }
        }
        for (int r = r0; r < r1; r++)
            new ReadOnlySpan<float>(y + (r - r0) * ld, nc).CopyTo(new Span<float>(yOut + (long)r * m + c0, nc));
    }

    /// <summary>Σ a[i]·b[i] over len values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(float* a, float* b, int len, SimdLevel level)
    {
        int p = 0;
        float s = 0;
        if (level == SimdLevel.Vector512 && len >= 16)
        {
            Vector512<float> s0 = default, s1 = default;
            for (; p + 32 <= len; p += 32)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + p), Vector512.Load(b + p), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + p + 16), Vector512.Load(b + p + 16), s1);
            }
            for (; p + 16 <= len; p += 16) s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + p), Vector512.Load(b + p), s0);
            s = Vector512.Sum(s0 + s1);
        }
        else if (level >= SimdLevel.Vector256 && len >= 8)
        {
            Vector256<float> s0 = default, s1 = default;
            for (; p + 16 <= len; p += 16)
            {
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + p), Vector256.Load(b + p), s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + p + 8), Vector256.Load(b + p + 8), s1);
            }
            for (; p + 8 <= len; p += 8) s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + p), Vector256.Load(b + p), s0);
            s = Vector256.Sum(s0 + s1);
        }
        for (; p < len; p++) s = MathF.FusedMultiplyAdd(a[p], b[p], s);
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x4V512(float* a, float* b, int ld, int len, float* d, int ldd)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        float* a0 = a, a1 = a + ld, a2 = a + 2L * ld, a3 = a + 3L * ld;
        float* b0 = b, b1 = b + ld, b2 = b + 2L * ld, b3 = b + 3L * ld;
        int p = 0;
        for (; p + 16 <= len; p += 16)
        {
            var x0 = Vector512.Load(a0 + p); var x1 = Vector512.Load(a1 + p);
            var x2 = Vector512.Load(a2 + p); var x3 = Vector512.Load(a3 + p);
            var w = Vector512.Load(b0 + p);
            c00 = Vector512.FusedMultiplyAdd(x0, w, c00); c10 = Vector512.FusedMultiplyAdd(x1, w, c10);
            c20 = Vector512.FusedMultiplyAdd(x2, w, c20); c30 = Vector512.FusedMultiplyAdd(x3, w, c30);
            w = Vector512.Load(b1 + p);
            c01 = Vector512.FusedMultiplyAdd(x0, w, c01); c11 = Vector512.FusedMultiplyAdd(x1, w, c11);
            c21 = Vector512.FusedMultiplyAdd(x2, w, c21); c31 = Vector512.FusedMultiplyAdd(x3, w, c31);
            w = Vector512.Load(b2 + p);
            c02 = Vector512.FusedMultiplyAdd(x0, w, c02); c12 = Vector512.FusedMultiplyAdd(x1, w, c12);
            c22 = Vector512.FusedMultiplyAdd(x2, w, c22); c32 = Vector512.FusedMultiplyAdd(x3, w, c32);
            w = Vector512.Load(b3 + p);
            c03 = Vector512.FusedMultiplyAdd(x0, w, c03); c13 = Vector512.FusedMultiplyAdd(x1, w, c13);
            c23 = Vector512.FusedMultiplyAdd(x2, w, c23); c33 = Vector512.FusedMultiplyAdd(x3, w, c33);
        }
        float* s = stackalloc float[16];
        s[0] = Vector512.Sum(c00); s[1] = Vector512.Sum(c01); s[2] = Vector512.Sum(c02); s[3] = Vector512.Sum(c03);
        s[4] = Vector512.Sum(c10); s[5] = Vector512.Sum(c11); s[6] = Vector512.Sum(c12); s[7] = Vector512.Sum(c13);
        s[8] = Vector512.Sum(c20); s[9] = Vector512.Sum(c21); s[10] = Vector512.Sum(c22); s[11] = Vector512.Sum(c23);
        s[12] = Vector512.Sum(c30); s[13] = Vector512.Sum(c31); s[14] = Vector512.Sum(c32); s[15] = Vector512.Sum(c33);
        Finish(a, b, ld, p, len, s, d, ldd);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x4V256(float* a, float* b, int ld, int len, float* d, int ldd)
    {
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector256<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector256<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector256<float> c30 = default, c31 = default, c32 = default, c33 = default;
        float* a0 = a, a1 = a + ld, a2 = a + 2L * ld, a3 = a + 3L * ld;
        float* b0 = b, b1 = b + ld, b2 = b + 2L * ld, b3 = b + 3L * ld;
        int p = 0;
        for (; p + 8 <= len; p += 8)
        {
            var x0 = Vector256.Load(a0 + p); var x1 = Vector256.Load(a1 + p);
            var x2 = Vector256.Load(a2 + p); var x3 = Vector256.Load(a3 + p);
            var w = Vector256.Load(b0 + p);
            c00 = Vector256.FusedMultiplyAdd(x0, w, c00); c10 = Vector256.FusedMultiplyAdd(x1, w, c10);
            c20 = Vector256.FusedMultiplyAdd(x2, w, c20); c30 = Vector256.FusedMultiplyAdd(x3, w, c30);
            w = Vector256.Load(b1 + p);
            c01 = Vector256.FusedMultiplyAdd(x0, w, c01); c11 = Vector256.FusedMultiplyAdd(x1, w, c11);
            c21 = Vector256.FusedMultiplyAdd(x2, w, c21); c31 = Vector256.FusedMultiplyAdd(x3, w, c31);
            w = Vector256.Load(b2 + p);
            c02 = Vector256.FusedMultiplyAdd(x0, w, c02); c12 = Vector256.FusedMultiplyAdd(x1, w, c12);
            c22 = Vector256.FusedMultiplyAdd(x2, w, c22); c32 = Vector256.FusedMultiplyAdd(x3, w, c32);
            w = Vector256.Load(b3 + p);
            c03 = Vector256.FusedMultiplyAdd(x0, w, c03); c13 = Vector256.FusedMultiplyAdd(x1, w, c13);
            c23 = Vector256.FusedMultiplyAdd(x2, w, c23); c33 = Vector256.FusedMultiplyAdd(x3, w, c33);
        }
        float* s = stackalloc float[16];
        s[0] = Vector256.Sum(c00); s[1] = Vector256.Sum(c01); s[2] = Vector256.Sum(c02); s[3] = Vector256.Sum(c03);
        s[4] = Vector256.Sum(c10); s[5] = Vector256.Sum(c11); s[6] = Vector256.Sum(c12); s[7] = Vector256.Sum(c13);
        s[8] = Vector256.Sum(c20); s[9] = Vector256.Sum(c21); s[10] = Vector256.Sum(c22); s[11] = Vector256.Sum(c23);
        s[12] = Vector256.Sum(c30); s[13] = Vector256.Sum(c31); s[14] = Vector256.Sum(c32); s[15] = Vector256.Sum(c33);
        Finish(a, b, ld, p, len, s, d, ldd);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x4Scalar(float* a, float* b, int ld, int len, float* d, int ldd)
    {
        float* s = stackalloc float[16];
        for (int i = 0; i < 16; i++) s[i] = 0;
        Finish(a, b, ld, 0, len, s, d, ldd);
    }

    /// <summary>Adds the scalar tail p..len to the 4×4 partial sums and adds them into d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(float* a, float* b, int ld, int p, int len, float* s, float* d, int ldd)
    {
        for (int i = 0; i < 4; i++)
        {
            float* ai = a + (long)i * ld;
            for (int j = 0; j < 4; j++)
            {
                float* bj = b + (long)j * ld;
                float t = s[i * 4 + j];
                for (int q = p; q < len; q++) t = MathF.FusedMultiplyAdd(ai[q], bj[q], t);
                d[(long)i * ldd + j] += t;
            }
        }
    }

    /// <summary>
    /// Backward of <see cref="Forward"/>: dx[n, k] = dy · w (or += with <paramref name="accumulateDx"/>; skipped when
    /// dx is empty), dw[m, k] += dyᵀ · x, db[m] += Σ_rows dy (skipped when empty).
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        Span<float> dx, Span<float> dw, Span<float> db, int n, int k, int m, int threads, bool accumulateDx = false, SimdLevel? simd = null)
    {
        // dy: [n, m]   x: [n, k]   w: [m, k]   dx: [n, k]   dw: [m, k]   db: [m]
        if (n == 0) return;
        if (dy.Length < (long)n * m) throw new ArgumentException($"dy has {dy.Length} values, needs [{n}, {m}].", nameof(dy));
        if (x.Length < (long)n * k) throw new ArgumentException($"x has {x.Length} values, needs [{n}, {k}].", nameof(x));
        if (w.Length < (long)m * k) throw new ArgumentException($"w has {w.Length} values, needs [{m}, {k}].", nameof(w));
        if (!dx.IsEmpty && dx.Length < (long)n * k) throw new ArgumentException($"dx has {dx.Length} values, needs [{n}, {k}].", nameof(dx));
        if (!dw.IsEmpty && dw.Length < (long)m * k) throw new ArgumentException($"dw has {dw.Length} values, needs [{m}, {k}].", nameof(dw));
        var level = simd ?? Best;
        fixed (float* pdy = dy, px = x, pw = w, pdx = dx, pdw = dw)
        {
            // dx[n, k] = dy[n, m] · w[m, k]: A = dy (row stride m), B = w
            if (!dx.IsEmpty) Gemm.Run(pdy, m, 1, pw, k, pdx, k, n, k, m, accumulateDx, threads, level);
            // dw[m, k] += dy[n, m]ᵀ · x[n, k]: A = dyᵀ read through strides (1, m), B = x
            if (!dw.IsEmpty) Gemm.Run(pdy, 1, m, px, k, pdw, k, m, k, n, accumulate: true, threads, level);
        }
        if (!db.IsEmpty)
        {
            for (int r = 0; r < n; r++) Vec.AddInPlace(db[..m], dy.Slice(r * m, m));
        }
    }
}
