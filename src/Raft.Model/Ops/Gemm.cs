using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Raft.Kernels;

namespace Raft.Model.Ops;

/// <summary>
/// C[rows, cols] (+)= A[rows, depth] · B[depth, cols] with B row-major and A read through strides
/// (A(i, p) = a[i·ai + p·ap]), so that A may be a matrix or a transposed one without copying. The micro-kernel
/// is an outer product: 4 broadcast values of A times 4 vectors of a B row (16 accumulators, FMA), blocked
/// over the depth so the B panel stays in L2, threaded over (row block, column block) tiles; every element of C is
/// summed in depth order by one thread, so results do not depend on the thread count. Used by the backward of
/// <see cref="Matmul"/>: dx = dy · W (A = dy) and dW += dyᵀ · x (A = dyᵀ through strides, B = x).
/// </summary>
internal static unsafe class Gemm
{
    private const int RowBlock = 64;
    private const int ColBlock = 256;
    private const int DepthBlock = 256;

    /// <summary>C (+)= A·B; see the class summary for the layouts.</summary>
    public static void Run(float* a, long ai, long ap, float* b, int ldb, float* c, int ldc,
        int rows, int cols, int depth, bool accumulate, int threads, SimdLevel level)
    {
        // A: [rows, depth] (strided)   B: [depth, cols] (row stride ldb)   C: [rows, cols] (row stride ldc)
        if (rows == 0 || cols == 0) return;
        nint pa = (nint)a, pb = (nint)b, pc = (nint)c;
        int rowBlocks = (rows + RowBlock - 1) / RowBlock, colBlocks = (cols + ColBlock - 1) / ColBlock;
        Par.For(rowBlocks * colBlocks, (long)rows * cols * depth > 1 << 16 ? threads : 1, tile =>
        {
            int r0 = tile / colBlocks * RowBlock, r1 = Math.Min(rows, r0 + RowBlock);
            int c0 = tile % colBlocks * ColBlock, c1 = Math.Min(cols, c0 + ColBlock);
            float* A = (float*)pa, B = (float*)pb, C = (float*)pc;
            if (!accumulate)
                for (int r = r0; r < r1; r++) new Span<float>(C + (long)r * ldc + c0, c1 - c0).Clear();
            for (int p0 = 0; p0 < depth; p0 += DepthBlock)
            {
                int p1 = Math.Min(depth, p0 + DepthBlock);
                int r = r0;
                for (; r + 4 <= r1; r += 4) Rows(A, ai, ap, B, ldb, C, ldc, r, 4, c0, c1, p0, p1, level);
                for (; r < r1; r++) Rows(A, ai, ap, B, ldb, C, ldc, r, 1, c0, c1, p0, p1, level);
            }
        });
    }

    /// <summary>Rows r..r+nr-1 (nr = 4 or 1) of C, columns c0..c1-1, depth p0..p1-1.</summary>
    internal static void Rows(float* a, long ai, long ap, float* b, int ldb, float* c, int ldc,
        int r, int nr, int c0, int c1, int p0, int p1, SimdLevel level)
    {
        int col = c0;
        float* ar = a + r * ai;
        float* cr = c + (long)r * ldc;
        if (level == SimdLevel.Vector512)
        {
            if (nr == 4)
            {
                for (; col + 64 <= c1; col += 64) K4x64(ar, ai, ap, b + col, ldb, cr + col, ldc, p0, p1);
                for (; col + 16 <= c1; col += 16) K4x16(ar, ai, ap, b + col, ldb, cr + col, ldc, p0, p1);
            }
            else
                for (; col + 16 <= c1; col += 16) K1x16(ar, ap, b + col, ldb, cr + col, p0, p1);
        }
        else if (level == SimdLevel.Vector256)
        {
            if (nr == 4)
            {
                for (; col + 32 <= c1; col += 32) K4x32(ar, ai, ap, b + col, ldb, cr + col, ldc, p0, p1);
                for (; col + 8 <= c1; col += 8) K4x8(ar, ai, ap, b + col, ldb, cr + col, ldc, p0, p1);
            }
            else
                for (; col + 8 <= c1; col += 8) K1x8(ar, ap, b + col, ldb, cr + col, p0, p1);
        }
        // scalar remainder columns (and the scalar level)
        for (int i = 0; i < nr; i++)
            for (int j = col; j < c1; j++)
            {
                float s = 0;
                for (int p = p0; p < p1; p++) s = MathF.FusedMultiplyAdd(ar[i * ai + p * ap], b[(long)p * ldb + j], s);
                cr[(long)i * ldc + j] += s;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> L(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> F(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> L8(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> F8(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);

    private static void K4x64(float* a, long ai, long ap, float* b, int ldb, float* c, int ldc, int p0, int p1)
    {
        float* c1 = c + ldc, c2 = c + 2L * ldc, c3 = c + 3L * ldc;
        Vector512<float> s00 = L(c), s01 = L(c + 16), s02 = L(c + 32), s03 = L(c + 48);
        Vector512<float> s10 = L(c1), s11 = L(c1 + 16), s12 = L(c1 + 32), s13 = L(c1 + 48);
        Vector512<float> s20 = L(c2), s21 = L(c2 + 16), s22 = L(c2 + 32), s23 = L(c2 + 48);
        Vector512<float> s30 = L(c3), s31 = L(c3 + 16), s32 = L(c3 + 32), s33 = L(c3 + 48);
        for (int p = p0; p < p1; p++)
        {
            float* bp = b + (long)p * ldb;
            float* pa = a + p * ap;
            var b0 = L(bp); var b1 = L(bp + 16); var b2 = L(bp + 32); var b3 = L(bp + 48);
            var x = Vector512.Create(pa[0]);
            s00 = F(x, b0, s00); s01 = F(x, b1, s01); s02 = F(x, b2, s02); s03 = F(x, b3, s03);
            x = Vector512.Create(pa[ai]);
            s10 = F(x, b0, s10); s11 = F(x, b1, s11); s12 = F(x, b2, s12); s13 = F(x, b3, s13);
            x = Vector512.Create(pa[2 * ai]);
            s20 = F(x, b0, s20); s21 = F(x, b1, s21); s22 = F(x, b2, s22); s23 = F(x, b3, s23);
            x = Vector512.Create(pa[3 * ai]);
            s30 = F(x, b0, s30); s31 = F(x, b1, s31); s32 = F(x, b2, s32); s33 = F(x, b3, s33);
        }
        s00.Store(c); s01.Store(c + 16); s02.Store(c + 32); s03.Store(c + 48);
        s10.Store(c1); s11.Store(c1 + 16); s12.Store(c1 + 32); s13.Store(c1 + 48);
        s20.Store(c2); s21.Store(c2 + 16); s22.Store(c2 + 32); s23.Store(c2 + 48);
        s30.Store(c3); s31.Store(c3 + 16); s32.Store(c3 + 32); s33.Store(c3 + 48);
    }

    private static void K4x16(float* a, long ai, long ap, float* b, int ldb, float* c, int ldc, int p0, int p1)
    {
        Vector512<float> s0 = L(c), s1 = L(c + ldc), s2 = L(c + 2L * ldc), s3 = L(c + 3L * ldc);
        for (int p = p0; p < p1; p++)
        {
            var bv = L(b + (long)p * ldb);
            float* pa = a + p * ap;
            s0 = F(Vector512.Create(pa[0]), bv, s0); s1 = F(Vector512.Create(pa[ai]), bv, s1);
            s2 = F(Vector512.Create(pa[2 * ai]), bv, s2); s3 = F(Vector512.Create(pa[3 * ai]), bv, s3);
        }
        s0.Store(c); s1.Store(c + ldc); s2.Store(c + 2L * ldc); s3.Store(c + 3L * ldc);
    }

    private static void K1x16(float* a, long ap, float* b, int ldb, float* c, int p0, int p1)
    {
        var s = L(c);
        for (int p = p0; p < p1; p++) s = F(Vector512.Create(a[p * ap]), L(b + (long)p * ldb), s);
        s.Store(c);
    }

    private static void K4x32(float* a, long ai, long ap, float* b, int ldb, float* c, int ldc, int p0, int p1)
    {
        float* c1 = c + ldc, c2 = c + 2L * ldc, c3 = c + 3L * ldc;
        Vector256<float> s00 = L8(c), s01 = L8(c + 8), s02 = L8(c + 16), s03 = L8(c + 24);
        Vector256<float> s10 = L8(c1), s11 = L8(c1 + 8), s12 = L8(c1 + 16), s13 = L8(c1 + 24);
        Vector256<float> s20 = L8(c2), s21 = L8(c2 + 8), s22 = L8(c2 + 16), s23 = L8(c2 + 24);
        Vector256<float> s30 = L8(c3), s31 = L8(c3 + 8), s32 = L8(c3 + 16), s33 = L8(c3 + 24);
        for (int p = p0; p < p1; p++)
        {
            float* bp = b + (long)p * ldb;
            float* pa = a + p * ap;
            var b0 = L8(bp); var b1 = L8(bp + 8); var b2 = L8(bp + 16); var b3 = L8(bp + 24);
            var x = Vector256.Create(pa[0]);
            s00 = F8(x, b0, s00); s01 = F8(x, b1, s01); s02 = F8(x, b2, s02); s03 = F8(x, b3, s03);
            x = Vector256.Create(pa[ai]);
            s10 = F8(x, b0, s10); s11 = F8(x, b1, s11); s12 = F8(x, b2, s12); s13 = F8(x, b3, s13);
            x = Vector256.Create(pa[2 * ai]);
            s20 = F8(x, b0, s20); s21 = F8(x, b1, s21); s22 = F8(x, b2, s22); s23 = F8(x, b3, s23);
            x = Vector256.Create(pa[3 * ai]);
            s30 = F8(x, b0, s30); s31 = F8(x, b1, s31); s32 = F8(x, b2, s32); s33 = F8(x, b3, s33);
        }
        s00.Store(c); s01.Store(c + 8); s02.Store(c + 16); s03.Store(c + 24);
        s10.Store(c1); s11.Store(c1 + 8); s12.Store(c1 + 16); s13.Store(c1 + 24);
        s20.Store(c2); s21.Store(c2 + 8); s22.Store(c2 + 16); s23.Store(c2 + 24);
        s30.Store(c3); s31.Store(c3 + 8); s32.Store(c3 + 16); s33.Store(c3 + 24);
    }

    private static void K4x8(float* a, long ai, long ap, float* b, int ldb, float* c, int ldc, int p0, int p1)
    {
        Vector256<float> s0 = L8(c), s1 = L8(c + ldc), s2 = L8(c + 2L * ldc), s3 = L8(c + 3L * ldc);
        for (int p = p0; p < p1; p++)
        {
            var bv = L8(b + (long)p * ldb);
            float* pa = a + p * ap;
            s0 = F8(Vector256.Create(pa[0]), bv, s0); s1 = F8(Vector256.Create(pa[ai]), bv, s1);
            s2 = F8(Vector256.Create(pa[2 * ai]), bv, s2); s3 = F8(Vector256.Create(pa[3 * ai]), bv, s3);
        }
        s0.Store(c); s1.Store(c + ldc); s2.Store(c + 2L * ldc); s3.Store(c + 3L * ldc);
    }

    private static void K1x8(float* a, long ap, float* b, int ldb, float* c, int p0, int p1)
    {
        var s = L8(c);
        for (int p = p0; p < p1; p++) s = F8(Vector256.Create(a[p * ap]), L8(b + (long)p * ldb), s);
        s.Store(c);
    }
}
