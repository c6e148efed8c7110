using ILGPU;
using Raft.Kernels.Ilgpu;

namespace Raft.Gpu.Kernels;

/// <summary>Scalar arguments of the row and element-wise kernels.</summary>
/// <summary>A block of columns copied between two row-major matrices: dst[r, DstCol + c] = src[r, SrcCol + c].</summary>
internal struct ColumnCopyParams
{
    public int Rows, Cols, SrcStride, SrcCol, DstStride, DstCol;
}

internal struct RowParams
{
    public int Rows;
    public int Cols;
    public float Eps;
    /// <summary>RMSNorm backward: 1 adds into dx (residual), 0 overwrites it. Column sums: 1 sums dy·x·rstd, 0 sums dy.</summary>
    public int Flag;
    /// <summary>Column sums: rows per grid slice y.</summary>
    public int RowsPerSlice;
    /// <summary>1: float atomic adds as a compare-exchange loop on the bits (see <see cref="LayerKernels.AtomicAdd"/>).</summary>
    public int CasAtomics;
}

/// <summary>Scalar arguments of the RoPE kernel: rows of width <see cref="Stride"/>, heads of width HeadDim from column 0.</summary>
internal struct RopeParams
{
    public int Rows;
    public int SeqLen;
    public int Heads;
    public int Half;
    public int HeadDim;
    public int Stride;
    public float Sign;
    public int TablePositions;
}

/// <summary>
/// Element-wise and per-row kernels of the decoder layer (RMSNorm, embedding, RoPE, SwiGLU, column sums), each with
/// its backward, in the same fp32 operation order as <c>Raft.Model.Ops</c>. Shared-memory reductions need a
/// power-of-two group size ≤ <see cref="MaxGroup"/>; every global access is bounds-guarded.
/// </summary>
internal static class LayerKernels
{
    public const int MaxGroup = 256;

    // The group reductions are Raft.Kernels' (GroupMath), behind a leading barrier: these may be called right after
    // other uses of the same shared memory.

    /// <summary>Σ over the group (all threads must call it; starts and ends with a barrier).</summary>
    public static float GroupSum(ArrayView<float> sh, float v)
    {
        Group.Barrier();
        return GroupMath.Sum(sh, v);
    }

    /// <summary>Max over the group (all threads must call it).</summary>
    public static float GroupMax(ArrayView<float> sh, float v)
    {
        Group.Barrier();
        return GroupMath.Max(sh, v);
    }

    /// <summary>Σ over the group in double.</summary>
    public static double GroupSumDouble(ArrayView<double> sh, double v)
    {
        Group.Barrier();
        return GroupMath.SumDouble(sh, v);
    }

    /// <summary>
    /// view[index] += value atomically. casBits = 0: the hardware's float atomic add (CUDA). casBits = 1: a
    /// compare-exchange loop on the float's bits, for ILGPU's CPU simulator, whose float add loops forever once the
    /// target is NaN (its loop compares floats, and NaN ≠ NaN), which a non-finite step must survive.
    /// </summary>
    public static void AtomicAdd(ArrayView<float> view, long index, float value, int casBits)
    {
        if (casBits == 0)
        {
            Atomic.Add(ref view[index], value);
            return;
        }
        var bits = view.Cast<uint>();
        uint old = bits[index];
        while (true)
        {
            uint next = Interop.FloatAsInt(Interop.IntAsFloat(old) + value);
            uint seen = Atomic.CompareExchange(ref bits[index], old, next);
            if (seen == old) return;
            old = seen;
        }
    }

    private static long GlobalId => (long)Grid.IdxX * Group.DimX + Group.IdxX;
    private static long GlobalStride => (long)Grid.DimX * Group.DimX;

    /// <summary>
    /// One group per row: y = w ⊙ (x · r), r = 1/sqrt(mean(x²) + ε) saved into rstd.
    /// Shapes: x, y [Rows, Cols]; w [Cols]; rstd [Rows].
    /// </summary>
    public static void RmsNormForward(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ArrayView<float> rstd, RowParams p)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        int row = Grid.IdxX, t = Group.IdxX, g = Group.DimX, c = p.Cols;
        long b = (long)row * c;
        if (row >= p.Rows || b + c > x.Length || b + c > y.Length || c > w.Length || row >= rstd.Length) return;
        float ss = 0f;
        for (int i = t; i < c; i += g)
        {
            float v = x[b + i];
            ss += v * v;
        }
        ss = GroupSum(sh, ss);
        float r = 1f / MathF.Sqrt(ss / c + p.Eps);
        if (t == 0) rstd[row] = r;
        for (int i = t; i < c; i += g) y[b + i] = x[b + i] * r * w[i];
    }

    /// <summary>
    /// One group per row: dx (= or += with Flag) r·w⊙dy − x·r³·Σ(dy w x)/C. The weight gradient is
    /// <see cref="ColumnSums"/>'s. Shapes: dy, x, dx [Rows, Cols]; w [Cols]; rstd [Rows].
    /// </summary>
    public static void RmsNormBackward(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> w, ArrayView<float> rstd,
        ArrayView<float> dx, RowParams p)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        int row = Grid.IdxX, t = Group.IdxX, g = Group.DimX, c = p.Cols;
        long b = (long)row * c;
        if (row >= p.Rows || b + c > x.Length || b + c > dy.Length || b + c > dx.Length || c > w.Length || row >= rstd.Length) return;
        float s = 0f;
        for (int i = t; i < c; i += g) s += dy[b + i] * w[i] * x[b + i];
        s = GroupSum(sh, s);
        float r = rstd[row];
        float coef = -r * r * r * s / c;
        for (int i = t; i < c; i += g)
        {
            float tmp = dy[b + i] * w[i];
            float v = p.Flag != 0 ? dx[b + i] + tmp * r : tmp * r;
            dx[b + i] = v + x[b + i] * coef;
        }
    }

    /// <summary>
    /// out[c] += Σ_rows dy[n, c]·(x[n, c]·rstd[n]) (Flag = 1: an RMSNorm weight gradient) or Σ_rows dy[n, c]
    /// (Flag = 0: a bias gradient). Grid (⌈Cols/group⌉, row slices); one thread per column per slice, one atomic
    /// add per slice. Shapes: dy, x [Rows, Cols]; rstd [Rows]; out [Cols].
    /// </summary>
    public static void ColumnSums(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> rstd, ArrayView<float> output, RowParams p)
    {
        int col = Grid.IdxX * Group.DimX + Group.IdxX;
        if (col >= p.Cols || col >= output.Length) return;
        int r0 = Grid.IdxY * p.RowsPerSlice, r1 = Math.Min(p.Rows, r0 + p.RowsPerSlice);
        float acc = 0f;
        for (int n = r0; n < r1; n++)
        {
            long at = (long)n * p.Cols + col;
            if (at >= dy.Length) break;
            if (p.Flag != 0)
            {
                if (at >= x.Length || n >= rstd.Length) break;
                acc += dy[at] * (x[at] * rstd[n]);
            }
            else acc += dy[at];
        }
        AtomicAdd(output, col, acc, p.CasAtomics);
    }

    /// <summary>x[n, c] = table[tokens[n], c] (a token outside 0..vocab-1, checked on the host, leaves its row alone). Shapes: tokens [Rows]; table [V, Cols]; x [Rows, Cols].</summary>
    public static void EmbeddingForward(ArrayView<int> tokens, ArrayView<float> table, ArrayView<float> x, RowParams p)
    {
        long total = (long)p.Rows * p.Cols;
        for (long e = GlobalId; e < total; e += GlobalStride)
        {
            int n = (int)(e / p.Cols), c = (int)(e % p.Cols);
            if (n >= tokens.Length || e >= x.Length) return;
            long src = (long)tokens[n] * p.Cols + c;
            if (tokens[n] < 0 || src >= table.Length) continue;
            x[e] = table[src];
        }
    }

    /// <summary>dTable[tokens[n], c] += dx[n, c] (atomic adds). Shapes as <see cref="EmbeddingForward"/>.</summary>
    public static void EmbeddingBackward(ArrayView<int> tokens, ArrayView<float> dx, ArrayView<float> dTable, RowParams p)
    {
        long total = (long)p.Rows * p.Cols;
        for (long e = GlobalId; e < total; e += GlobalStride)
        {
            int n = (int)(e / p.Cols), c = (int)(e % p.Cols);
            if (n >= tokens.Length || e >= dx.Length) return;
            long dst = (long)tokens[n] * p.Cols + c;
            if (tokens[n] < 0 || dst >= dTable.Length) continue;
            AtomicAdd(dTable, dst, dx[e], p.CasAtomics);
        }
    }

    /// <summary>
    /// Rotary embedding (rotate_half) in place on the first Heads·HeadDim columns of every row (the packed q|k
    /// of the qkv projection), position = row mod SeqLen; Sign −1 applies the transposed rotation (the backward).
    /// Shapes: x [Rows, Stride]; cos, sin [TablePositions, Half].
    /// </summary>
    public static void Rope(ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, RopeParams p)
    {
        long total = (long)p.Rows * p.Heads * p.Half;
        for (long e = GlobalId; e < total; e += GlobalStride)
        {
            int i = (int)(e % p.Half);
            long rh = e / p.Half;
            int h = (int)(rh % p.Heads), row = (int)(rh / p.Heads);
            int pos = row % p.SeqLen;
            if (pos >= p.TablePositions) continue;
            long tab = (long)pos * p.Half + i;
            if (tab >= cos.Length || tab >= sin.Length) continue;
            long at = (long)row * p.Stride + h * p.HeadDim + i;
            if (at + p.Half >= x.Length) continue;
            float c = cos[tab], s = p.Sign * sin[tab];
            float x1 = x[at], x2 = x[at + p.Half];
            x[at] = x1 * c - x2 * s;
            x[at + p.Half] = x2 * c + x1 * s;
        }
    }

    /// <summary>h[n, j] = silu(g) · u with g = gu[n, j], u = gu[n, F + j]. Shapes: gu [Rows, 2F]; h [Rows, F] (Cols = F).</summary>
    public static void SwiGluForward(ArrayView<float> gu, ArrayView<float> h, RowParams p)
    {
        long total = (long)p.Rows * p.Cols;
        for (long e = GlobalId; e < total; e += GlobalStride)
        {
            long n = e / p.Cols, j = e % p.Cols;
            long gAt = n * 2 * p.Cols + j;
            if (gAt + p.Cols >= gu.Length || e >= h.Length) return;
            float g = gu[gAt], u = gu[gAt + p.Cols];
            float s = 1f / (1f + MathF.Exp(-g));
            h[e] = s * g * u;
        }
    }

    /// <summary>
    /// dst[r, DstCol + c] = src[r, SrcCol + c] for r &lt; Rows, c &lt; Cols (row strides SrcStride, DstStride): moves q or k
    /// between the packed qkv rows and a contiguous [rows·heads, head_dim] block (Qwen3's per-head norm).
    /// </summary>
    public static void CopyColumns(ArrayView<float> src, ArrayView<float> dst, ColumnCopyParams p)
    {
        long total = (long)p.Rows * p.Cols;
        for (long e = GlobalId; e < total; e += GlobalStride)
        {
            long r = e / p.Cols, c = e % p.Cols;
            long from = r * p.SrcStride + p.SrcCol + c, to = r * p.DstStride + p.DstCol + c;
            if (from >= src.Length || to >= dst.Length) return;
            dst[to] = src[from];
        }
    }

    /// <summary>dgu = [dh ⊙ u ⊙ σ(1 + g(1 − σ)) | dh ⊙ g σ]. Shapes: dh [Rows, F]; gu, dgu [Rows, 2F].</summary>
    public static void SwiGluBackward(ArrayView<float> dh, ArrayView<float> gu, ArrayView<float> dgu, RowParams p)
    {
        long total = (long)p.Rows * p.Cols;
        for (long e = GlobalId; e < total; e += GlobalStride)
        {
            long n = e / p.Cols, j = e % p.Cols;
            long gAt = n * 2 * p.Cols + j;
            if (gAt + p.Cols >= gu.Length || gAt + p.Cols >= dgu.Length || e >= dh.Length) return;
            float g = gu[gAt], u = gu[gAt + p.Cols], d = dh[e];
            float s = 1f / (1f + MathF.Exp(-g));
            dgu[gAt + p.Cols] = d * g * s;
            dgu[gAt] = d * u * s * (1f + g * (1f - s));
        }
    }

    /// <summary>x[i] *= factor over a view (scaling a loss gradient by its weight).</summary>
    public static void Scale(ArrayView<float> x, float factor)
    {
        for (long e = GlobalId; e < x.Length; e += GlobalStride) x[e] *= factor;
    }
}
