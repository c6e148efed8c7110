using ILGPU;

namespace Raft.Gpu.Kernels;

/// <summary>
/// Scalar arguments of <see cref="GemmKernel.Run"/>: C[M, N] = R + A·B (+ bias), or C += A·B with atomic adds
/// (split-K). Element A(i, k) lives at i·Ai + k·Ak, B(k, j) at k·Bk + j·Bj, C(i, j) at i·Ldc + j, so one kernel
/// serves the three layouts of a linear layer with HF weights W[out, in]: y = x·Wᵀ, dx = dy·W, dW += dyᵀ·x.
/// </summary>
internal struct GemmParams
{
    public int M, N, K;
    public int Ai, Ak, Bk, Bj, Ldc;
    /// <summary>The k range of one grid slice z: [z·KChunk, min(K, (z+1)·KChunk)); a multiple of <see cref="GemmKernel.TileK"/>.</summary>
    public int KChunk;
    /// <summary>1 or 2: C += A·B with atomic adds (several k slices), no R and no bias (2: compare-exchange on the bits, see <see cref="LayerKernels.AtomicAdd"/>).</summary>
    public int Atomic;
    /// <summary>1: add R (which may be C itself) to the product.</summary>
    public int HasR;
    /// <summary>1: add bias[j].</summary>
    public int HasBias;
    /// <summary>log2 of the block tile (6: 64×64 with 256 threads; 4: 16×16 with 16 threads).</summary>
    public int TileShift;
}

/// <summary>
/// A tiled shared-memory SGEMM: a group of 256 threads computes a 64×64 block of C, each thread a 4×4 register
/// tile (rows ty + 16·r, columns tx + 16·c, so that shared reads are conflict-free and stores coalesced), over
/// k tiles of 16 staged in shared memory (padded rows). The tile loads follow whichever of A's and B's
/// dimensions is contiguous, so global reads are coalesced in all three layouts. Every global access is
/// bounds-guarded (out-of-range tile elements load as 0).
/// </summary>
internal static class GemmKernel
{
    public const int Tile = 64;
    public const int TileK = 16;
    public const int Threads = 256;
    private const int Pad = Tile + 1;

    /// <summary>
    /// Grid (⌈N/tile⌉, ⌈M/tile⌉, k slices) with tile = 4·S for groups of S² threads (S = 16 on GPUs: 256 threads,
    /// 64×64 tiles; smaller S on ILGPU's CPU simulator, same code). <paramref name="p"/>.TileShift = log2(tile).
    /// </summary>
    public static void Run(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> r,
        ArrayView<float> bias, GemmParams p)
    {
        var sa = SharedMemory.Allocate<float>(TileK * Pad);
        var sb = SharedMemory.Allocate<float>(TileK * Pad);
        int tid = Group.IdxX, threads = Group.DimX;
        int tile = 1 << p.TileShift, side = tile >> 2;          // side = S, threads = S²
        if (threads != side * side || tile > Tile) return;
        int tx = tid % side, ty = tid / side;
        int i0 = Grid.IdxY * tile, j0 = Grid.IdxX * tile;
        int kBegin = Grid.IdxZ * p.KChunk;
        int kEnd = Math.Min(p.K, kBegin + p.KChunk);
        bool aK = p.Ak == 1, bK = p.Bk == 1;
        int loads = tile * TileK / threads;

        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int k0 = kBegin; k0 < kEnd; k0 += TileK)
        {
            for (int l = 0; l < loads; l++)
            {
                int e = tid + threads * l;
                int ii, kk;
                if (aK) { kk = e & (TileK - 1); ii = e >> 4; } else { ii = e & (tile - 1); kk = e >> p.TileShift; }
                int gi = i0 + ii, gk = k0 + kk;
                float v = 0f;
                if (gi < p.M && gk < kEnd)
                {
                    long at = (long)gi * p.Ai + (long)gk * p.Ak;
                    if (at < a.Length) v = a[at];
                }
                sa[kk * Pad + ii] = v;
                int jj;
                if (bK) { kk = e & (TileK - 1); jj = e >> 4; } else { jj = e & (tile - 1); kk = e >> p.TileShift; }
                int gj = j0 + jj;
                gk = k0 + kk;
                float w = 0f;
                if (gj < p.N && gk < kEnd)
                {
                    long at = (long)gk * p.Bk + (long)gj * p.Bj;
                    if (at < b.Length) w = b[at];
                }
                sb[kk * Pad + jj] = w;
            }
            Group.Barrier();
            for (int kk = 0; kk < TileK; kk++)
            {
                int o = kk * Pad;
                float a0 = sa[o + ty], a1 = sa[o + ty + side], a2 = sa[o + ty + 2 * side], a3 = sa[o + ty + 3 * side];
                float b0 = sb[o + tx], b1 = sb[o + tx + side], b2 = sb[o + tx + 2 * side], b3 = sb[o + tx + 3 * side];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }
        int i = i0 + ty, j = j0 + tx, s1 = side, s2 = 2 * side, s3 = 3 * side;
        Put(c, r, bias, p, i, j, c00); Put(c, r, bias, p, i, j + s1, c01); Put(c, r, bias, p, i, j + s2, c02); Put(c, r, bias, p, i, j + s3, c03);
        i += side;
        Put(c, r, bias, p, i, j, c10); Put(c, r, bias, p, i, j + s1, c11); Put(c, r, bias, p, i, j + s2, c12); Put(c, r, bias, p, i, j + s3, c13);
        i += side;
        Put(c, r, bias, p, i, j, c20); Put(c, r, bias, p, i, j + s1, c21); Put(c, r, bias, p, i, j + s2, c22); Put(c, r, bias, p, i, j + s3, c23);
        i += side;
        Put(c, r, bias, p, i, j, c30); Put(c, r, bias, p, i, j + s1, c31); Put(c, r, bias, p, i, j + s2, c32); Put(c, r, bias, p, i, j + s3, c33);
    }

    private static void Put(ArrayView<float> c, ArrayView<float> r, ArrayView<float> bias, GemmParams p, int i, int j, float v)
    {
        if (i >= p.M || j >= p.N) return;
        long at = (long)i * p.Ldc + j;
        if (at >= c.Length) return;
        if (p.Atomic != 0)
        {
            LayerKernels.AtomicAdd(c, at, v, p.Atomic - 1);
            return;
        }
        if (p.HasBias != 0 && j < bias.Length) v += bias[j];
        if (p.HasR != 0 && at < r.Length) v = r[at] + v;
        c[at] = v;
    }
}
