using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace Raft.Gpu.Kernels;

/// <summary>
/// The loaded kernels of one accelerator (compiled once, cached for the accelerator's lifetime) and the launch
/// shapes: which grid and group each op gets. Everything runs on the accelerator's default stream, in order.
/// Empty views (no bias, no residual) are replaced by a one-element dummy buffer, so no backend is handed a view
/// without memory.
/// </summary>
internal sealed class ModelKernelSet
{
    private static readonly ConditionalWeakTable<Accelerator, ModelKernelSet> Cache = new();

    private readonly Accelerator _acc;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _dummy;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmParams> _gemm;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams> _rmsFwd;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams> _rmsBwd;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams> _colSums;
    private readonly Action<KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowParams> _embFwd, _embBwd;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, RopeParams> _rope;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, RowParams> _swigluFwd;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams> _swigluBwd;
    private readonly Action<KernelConfig, ArrayView<float>, float> _scale;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ColumnCopyParams> _copyCols;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttnParams> _attFwd;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttnParams> _attBwdQ;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttnParams> _attBwdK;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, LossParams> _ce;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<double>, LossParams> _normPartials;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<double>, ArrayView<double>, LossParams> _finish;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, AdamParams> _adamW;

    private readonly int _cas, _gemmThreads, _gemmTile, _tileShift, _rowGroup, _lossGroup, _attGroup, _elemGroup, _elemGrid, _targetBlocks;

    private ModelKernelSet(Accelerator a)
    {
        // GEMM groups: S² threads for 4S×4S tiles, S = 16 where the accelerator allows 256 threads (every GPU)
        int side = 16;
        while (side > 2 && side * side > a.MaxNumThreadsPerGroup) side /= 2;
        if (side * side > a.MaxNumThreadsPerGroup)
            throw new NotSupportedException($"the accelerator {a.Name} allows {a.MaxNumThreadsPerGroup} threads per group; the model's kernels need at least 4.");
        _gemmThreads = side * side;
        _gemmTile = 4 * side;
        _tileShift = System.Numerics.BitOperations.Log2((uint)_gemmTile);
        _acc = a;
        _cas = a.AcceleratorType == AcceleratorType.CPU ? 1 : 0;
        _dummy = a.Allocate1D<float>(1);
        int max = Math.Min(LayerKernels.MaxGroup, a.MaxNumThreadsPerGroup);
        int Pow2(int cap) { int s = 1; while (s * 2 <= Math.Min(cap, max)) s *= 2; return s; }
        _rowGroup = Pow2(128);
        _lossGroup = Pow2(256);
        _attGroup = Pow2(Math.Max(1, a.WarpSize));
        if (_attGroup < 32) _attGroup = Pow2(32);
        _elemGroup = Pow2(256);
        _elemGrid = Math.Max(1, a.NumMultiprocessors) * 16;
        _targetBlocks = Math.Max(16, 2 * a.NumMultiprocessors);

        _gemm = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmParams>(GemmKernel.Run);
        _rmsFwd = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(LayerKernels.RmsNormForward);
        _rmsBwd = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(LayerKernels.RmsNormBackward);
        _colSums = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(LayerKernels.ColumnSums);
        _embFwd = a.LoadStreamKernel<ArrayView<int>, ArrayView<float>, ArrayView<float>, RowParams>(LayerKernels.EmbeddingForward);
        _embBwd = a.LoadStreamKernel<ArrayView<int>, ArrayView<float>, ArrayView<float>, RowParams>(LayerKernels.EmbeddingBackward);
        _rope = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, RopeParams>(LayerKernels.Rope);
        _swigluFwd = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, RowParams>(LayerKernels.SwiGluForward);
        _swigluBwd = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(LayerKernels.SwiGluBackward);
        _scale = a.LoadStreamKernel<ArrayView<float>, float>(LayerKernels.Scale);
        _copyCols = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ColumnCopyParams>(LayerKernels.CopyColumns);
        _attFwd = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttnParams>(AttentionKernels.Forward);
        _attBwdQ = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttnParams>(AttentionKernels.BackwardQueries);
        _attBwdK = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttnParams>(AttentionKernels.BackwardKeys);
        _ce = a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, LossParams>(TrainKernels.CrossEntropy);
        _normPartials = a.LoadStreamKernel<ArrayView<float>, ArrayView<double>, LossParams>(TrainKernels.SquaredNormPartials);
        _finish = a.LoadStreamKernel<ArrayView<float>, ArrayView<double>, ArrayView<double>, LossParams>(TrainKernels.Finish);
        _adamW = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, AdamParams>(TrainKernels.AdamW);
    }

    /// <summary>The kernels of <paramref name="accelerator"/> (compiled on first call).</summary>
    public static ModelKernelSet For(Accelerator accelerator) => Cache.GetValue(accelerator, a => new ModelKernelSet(a));

    private ArrayView<float> F(ArrayView<float> v) => v.Length > 0 ? v : _dummy.View.BaseView.SubView(0, 0);

    private static KernelConfig Config(int grid, int group) => new(new Index3D(grid, 1, 1), new Index3D(group, 1, 1));

    private KernelConfig Elementwise(long total) =>
        Config((int)Math.Clamp((total + _elemGroup - 1) / _elemGroup, 1, _elemGrid * 8L), _elemGroup);

    private static int Cdiv(long a, int b) => (int)((a + b - 1) / b);

    // ------------------------------------------------------------------ linear layers (HF weights W[out, in])

    /// <summary>
    /// y[n, out] = r + x[n, in]·Wᵀ (+ bias); r may be empty (no residual) or another [n, out] view. Rows of y (and r) are
    /// <paramref name="ldy"/> apart (0: out), so y may be a column block of a wider matrix (r = y: y += x·Wᵀ in place).
    /// </summary>
    public void Linear(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, ArrayView<float> r,
        int n, int inF, int outF, int ldy = 0)
    {
        var p = new GemmParams
        {
            M = n, N = outF, K = inF, Ai = inF, Ak = 1, Bk = 1, Bj = inF, Ldc = ldy > 0 ? ldy : outF, KChunk = RoundK(inF), TileShift = _tileShift,
            HasR = r.Length > 0 ? 1 : 0, HasBias = bias.Length > 0 ? 1 : 0,
        };
        _gemm(new KernelConfig(new Index3D(Cdiv(outF, _gemmTile), Cdiv(n, _gemmTile), 1), new Index3D(_gemmThreads, 1, 1)),
            x, w, y, F(r), F(bias), p);
    }

    /// <summary>dx[n, in] (= or += with accumulate) dy[n, out]·W; rows of dy are <paramref name="ldDy"/> apart (0: out).</summary>
    public void LinearDx(ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx, bool accumulate, int n, int inF, int outF, int ldDy = 0)
    {
        var p = new GemmParams
        {
            M = n, N = inF, K = outF, Ai = ldDy > 0 ? ldDy : outF, Ak = 1, Bk = inF, Bj = 1, Ldc = inF, KChunk = RoundK(outF), TileShift = _tileShift,
            HasR = accumulate ? 1 : 0,
        };
        _gemm(new KernelConfig(new Index3D(Cdiv(inF, _gemmTile), Cdiv(n, _gemmTile), 1), new Index3D(_gemmThreads, 1, 1)),
            dy, w, dx, accumulate ? dx : F(default), F(default), p);
    }

    /// <summary>
    /// dW[out, in] += dy[n, out]ᵀ·x[n, in], split over the rows (atomic adds) when the output has few tiles; rows of dy
    /// are <paramref name="ldDy"/> apart (0: out). <paramref name="deterministic"/>: never split, so every element is
    /// summed in one fixed order (the same bits every run).
    /// </summary>
    public void LinearDw(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, int n, int inF, int outF, int ldDy = 0,
        bool deterministic = false)
    {
        int tiles = Cdiv(inF, _gemmTile) * Cdiv(outF, _gemmTile);
        int splits = deterministic ? 1 : Math.Clamp(Cdiv(_targetBlocks, tiles), 1, Math.Max(1, Cdiv(n, GemmKernel.TileK)));
        int chunk = RoundK(Cdiv(n, splits));
        splits = Cdiv(n, chunk);
        var p = new GemmParams
        {
            M = outF, N = inF, K = n, Ai = 1, Ak = ldDy > 0 ? ldDy : outF, Bk = inF, Bj = 1, Ldc = inF, KChunk = chunk, TileShift = _tileShift,
            Atomic = splits > 1 ? 1 + _cas : 0, HasR = splits > 1 ? 0 : 1,
        };
        _gemm(new KernelConfig(new Index3D(Cdiv(inF, _gemmTile), Cdiv(outF, _gemmTile), splits), new Index3D(_gemmThreads, 1, 1)),
            dy, x, dw, splits > 1 ? F(default) : dw, F(default), p);
    }

    private static int RoundK(int k) => Math.Max(GemmKernel.TileK, (k + GemmKernel.TileK - 1) / GemmKernel.TileK * GemmKernel.TileK);

    // ------------------------------------------------------------------ layer ops

    public void RmsNorm(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ArrayView<float> rstd, int rows, int cols, float eps) =>
        _rmsFwd(Config(rows, _rowGroup), x, w, y, rstd, new RowParams { Rows = rows, Cols = cols, Eps = eps });

    /// <summary>dx (= or +=) the RMSNorm input gradient, and dw += its weight gradient (none when dw is empty: a frozen weight).</summary>
    public void RmsNormBackward(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> w, ArrayView<float> rstd,
        ArrayView<float> dx, ArrayView<float> dw, int rows, int cols, bool accumulate)
    {
        _rmsBwd(Config(rows, _rowGroup), dy, x, w, rstd, dx, new RowParams { Rows = rows, Cols = cols, Flag = accumulate ? 1 : 0 });
        if (dw.Length > 0) ColumnSums(dy, x, rstd, dw, rows, cols, normWeight: true);
    }

    /// <summary>out[c] += Σ_n dy[n, c]·x[n, c]·rstd[n] (normWeight) or Σ_n dy[n, c].</summary>
    public void ColumnSums(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> rstd, ArrayView<float> output, int rows, int cols, bool normWeight)
    {
        const int slice = 64;
        _colSums(new KernelConfig(new Index3D(Cdiv(cols, _rowGroup), Cdiv(rows, slice), 1), new Index3D(_rowGroup, 1, 1)),
            dy, F(x), F(rstd), output, new RowParams { Rows = rows, Cols = cols, Flag = normWeight ? 1 : 0, RowsPerSlice = slice, CasAtomics = _cas });
    }

    public void Embedding(ArrayView<int> tokens, ArrayView<float> table, ArrayView<float> x, int rows, int cols) =>
        _embFwd(Elementwise((long)rows * cols), tokens, table, x, new RowParams { Rows = rows, Cols = cols });

    public void EmbeddingBackward(ArrayView<int> tokens, ArrayView<float> dx, ArrayView<float> dTable, int rows, int cols) =>
        _embBwd(Elementwise((long)rows * cols), tokens, dx, dTable, new RowParams { Rows = rows, Cols = cols, CasAtomics = _cas });

    public void Rope(ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, RopeParams p) =>
        _rope(Elementwise((long)p.Rows * p.Heads * p.Half), x, cos, sin, p);

    /// <summary>dst[r, dstCol + c] = src[r, srcCol + c] for r &lt; rows, c &lt; cols.</summary>
    public void CopyColumns(ArrayView<float> src, int srcStride, int srcCol, ArrayView<float> dst, int dstStride, int dstCol, int rows, int cols) =>
        _copyCols(Elementwise((long)rows * cols), src, dst,
            new ColumnCopyParams { Rows = rows, Cols = cols, SrcStride = srcStride, SrcCol = srcCol, DstStride = dstStride, DstCol = dstCol });

    public void SwiGlu(ArrayView<float> gu, ArrayView<float> h, int rows, int f) =>
        _swigluFwd(Elementwise((long)rows * f), gu, h, new RowParams { Rows = rows, Cols = f });

    public void SwiGluBackward(ArrayView<float> dh, ArrayView<float> gu, ArrayView<float> dgu, int rows, int f) =>
        _swigluBwd(Elementwise((long)rows * f), dh, gu, dgu, new RowParams { Rows = rows, Cols = f });

    public void Scale(ArrayView<float> x, float factor)
    {
        if (x.Length > 0) _scale(Elementwise(x.Length), x, factor);
    }

    // ------------------------------------------------------------------ attention

    public void AttentionForward(ArrayView<float> qkv, ArrayView<float> att, ArrayView<float> lse, AttnParams p) =>
        _attFwd(new KernelConfig(new Index3D(p.Batch * p.Heads * p.SeqLen, 1, 1), new Index3D(_attGroup, 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(p.SeqLen + p.HeadDim)), qkv, att, lse, p);

    public void AttentionBackward(ArrayView<float> dout, ArrayView<float> qkv, ArrayView<float> att, ArrayView<float> lse,
        ArrayView<float> dqkv, ArrayView<float> dsum, AttnParams p)
    {
        _attBwdQ(new KernelConfig(new Index3D(p.Batch * p.Heads * p.SeqLen, 1, 1), new Index3D(_attGroup, 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(p.SeqLen + 2 * p.HeadDim)), dout, qkv, att, lse, dqkv, dsum, p);
        _attBwdK(new KernelConfig(new Index3D(p.Batch * p.KvHeads * p.SeqLen, 1, 1), new Index3D(_attGroup, 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(2 * p.SeqLen + 2 * p.HeadDim)), dout, qkv, lse, dsum, dqkv, p);
    }

    // ------------------------------------------------------------------ loss and optimizer

    public void CrossEntropy(ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> rowLoss, LossParams p) =>
        _ce(Config(p.Rows, _lossGroup), logits, targets, rowLoss, p);

    /// <summary>scalars = [loss, ‖grad‖, clip factor] (see <see cref="TrainKernels.Finish"/>).</summary>
    public void NormAndFinish(ArrayView<float> grad, ArrayView<float> rowLoss, ArrayView<double> partial, ArrayView<double> scalars, LossParams p)
    {
        _normPartials(Config(TrainKernels.NormGroups, _lossGroup), grad, partial, p);
        _finish(Config(1, _lossGroup), F(rowLoss), partial, scalars, p);
    }

    public void AdamW(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v, ArrayView<double> scalars, AdamParams k) =>
        _adamW(Elementwise(k.Length), param, grad, m, v, scalars, k);
}
