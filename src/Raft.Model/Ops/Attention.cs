using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Raft.Kernels;

namespace Raft.Model.Ops;

/// <summary>Where keys and values live: element (b, kv head, position s, d) is at b·SeqStride + h·HeadStride + s·PosStride + d.</summary>
internal readonly record struct KvLayout(long SeqStride, long HeadStride, long PosStride)
{
    /// <summary>The projection layout [B·T, KV·hd] of a full forward.</summary>
    public static KvLayout Rows(int t, int kvHeads, int headDim) => new((long)t * kvHeads * headDim, headDim, (long)kvHeads * headDim);
}

/// <summary>
/// Causal grouped-query attention, as Hugging Face's eager path: query head h reads key/value head
/// h / (H / KV); scores q·k / sqrt(head_dim), a causal mask (query t sees keys 0..past+t), softmax in fp32 with
/// the row max subtracted, out = Σ p·v. The forward saves the log-sum-exp of every row; the backward recomputes
/// the probabilities from it (memory O(T), not O(T²)) and computes, with D = dout·out:
/// dv_s += p_s dout, ds_s = p_s (dout·v_s − D), dq += scale Σ ds_s k_s, dk_s += scale ds_s q.
/// With a sliding window w &gt; 0 query i (its index in the key sequence) sees only keys s with i − s &lt; w (Hugging Face's
/// sliding_window_overlay: kv_idx &gt; q_idx − w); masked entries are exactly 0 in both passes.
/// </summary>
internal static unsafe class Attention
{
    /// <summary>
    /// out[B·T, H·hd] for queries q[B·T, H·hd] at positions past..past+T-1 over keys/values 0..past+T-1
    /// stored as <paramref name="layout"/> says; lse[B, H, T] (may be empty) receives each row's log-sum-exp.
    /// </summary>
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, KvLayout layout,
        Span<float> output, Span<float> lse, int batch, int t, int heads, int kvHeads, int headDim, int past, int threads, int window = 0)
    {
        // q: [B, T, H, hd]   k, v: per layout, past + T positions   out: [B, T, H, hd]   lse: [B, H, T]
        int group = heads / kvHeads, keys = past + t;
        float scale = 1f / MathF.Sqrt(headDim);
        var level = Matmul.Best;
        bool saveLse = !lse.IsEmpty;
        fixed (float* pq = q, pk = k, pv = v, po = output, pl = lse)
        {
            nint aq = (nint)pq, ak = (nint)pk, av = (nint)pv, ao = (nint)po, al = (nint)pl;
            // one task per (sequence, head, block of 64 queries): the blocks are independent in the forward
            int blocks = (t + QueryBlock - 1) / QueryBlock;
            Par.For(batch * heads * blocks, (long)t * keys * heads > 1 << 12 ? threads : 1, task =>
                ForwardBlock((float*)aq, (float*)ak, (float*)av, (float*)ao, saveLse ? (float*)al : null, layout,
                    task / blocks, task % blocks * QueryBlock, t, heads, group, headDim, past, scale, level, window));
        }
    }

    /// <summary>
    /// Backward of a full causal forward (past = 0, keys/values in the [B·T, KV·hd] row layout):
    /// dq[B·T, H·hd], dk, dv[B·T, KV·hd] (all overwritten) from dout and the saved output and lse.
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> output, ReadOnlySpan<float> lse, Span<float> dq, Span<float> dk, Span<float> dv,
        int batch, int t, int heads, int kvHeads, int headDim, int threads, int window = 0)
    {
        // dout, q, out, dq: [B, T, H, hd]   k, v, dk, dv: [B, T, KV, hd]   lse: [B, H, T]
        int group = heads / kvHeads, kvWidth = kvHeads * headDim;
        float scale = 1f / MathF.Sqrt(headDim);
        var level = Matmul.Best;
        // per query head key/value gradients, reduced over each group afterwards in a fixed order
        long scratchLen = (long)batch * heads * t * headDim;
        float[] dkh = ArrayPool<float>.Shared.Rent((int)scratchLen), dvh = ArrayPool<float>.Shared.Rent((int)scratchLen);
        fixed (float* pdo = dout, pq = q, pk = k, pv = v, po = output, pl = lse, pdq = dq, pdkh = dkh, pdvh = dvh)
        {
            nint ado = (nint)pdo, aq = (nint)pq, ak = (nint)pk, av = (nint)pv, ao = (nint)po, al = (nint)pl, adq = (nint)pdq,
                adkh = (nint)pdkh, advh = (nint)pdvh;
            Par.For(batch * heads, (long)t * t * heads > 1 << 12 ? threads : 1, bh =>
                BackwardHead((float*)ado, (float*)aq, (float*)ak, (float*)av, (float*)ao, (float*)al, (float*)adq,
                    (float*)adkh, (float*)advh, bh, t, heads, group, headDim, kvWidth, scale, level, window));
        }
        // dk[b, s, kvh, :] = Σ over the group's query heads, in head order
        for (int b = 0; b < batch; b++)
            for (int s = 0; s < t; s++)
                for (int kvh = 0; kvh < kvHeads; kvh++)
                {
                    var dks = dk.Slice(((b * t) + s) * kvWidth + kvh * headDim, headDim);
                    var dvs = dv.Slice(((b * t) + s) * kvWidth + kvh * headDim, headDim);
                    dks.Clear(); dvs.Clear();
                    for (int j = 0; j < group; j++)
                    {
                        int bh = b * heads + kvh * group + j;
                        Vec.AddInPlace(dks, dkh.AsSpan((int)(((long)bh * t + s) * headDim), headDim));
                        Vec.AddInPlace(dvs, dvh.AsSpan((int)(((long)bh * t + s) * headDim), headDim));
                    }
                }
        ArrayPool<float>.Shared.Return(dkh);
        ArrayPool<float>.Shared.Return(dvh);
    }

    private const int QueryBlock = 64;

    /// <summary>
    /// One (sequence, head) and a block of up to 64 queries starting at q0: S = Q·Kᵀ over the keys the block's
    /// last query sees (Kᵀ transposed into scratch), row softmax with the causal mask (masked entries become
    /// exactly 0), then O = P·V, both products on <see cref="Gemm"/>'s kernel.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlock(float* q, float* k, float* v, float* output, float* lse, KvLayout layout,
        int bh, int q0, int t, int heads, int group, int headDim, int past, float scale, SimdLevel level, int window)
    {
        int b = bh / heads, h = bh % heads, kvh = h / group, width = heads * headDim;
        int nq = Math.Min(QueryBlock, t - q0), kmax = past + q0 + nq;
        float* kb = k + b * layout.SeqStride + kvh * layout.HeadStride;
        float* vb = v + b * layout.SeqStride + kvh * layout.HeadStride;
        var pool = ArrayPool<float>.Shared;
        float[] ktArr = pool.Rent(headDim * kmax), sArr = pool.Rent(nq * kmax);
        fixed (float* kt = ktArr, sc = sArr)
        {
            for (int s = 0; s < kmax; s++)                       // kt: [hd, kmax]
                for (int d = 0; d < headDim; d++) kt[(long)d * kmax + s] = kb[s * layout.PosStride + d];
            float* qBlk = q + ((long)b * t + q0) * width + h * headDim;
            float* oBlk = output + ((long)b * t + q0) * width + h * headDim;
            Gemm.Run(qBlk, width, 1, kt, kmax, sc, kmax, nq, kmax, headDim, false, 1, level);   // S: [nq, kmax]
            for (int i = 0; i < nq; i++)
            {
                var row = new Span<float>(sc + (long)i * kmax, kmax);
                int visible = past + q0 + i + 1, first = window > 0 ? Math.Max(0, visible - window) : 0;
                var vis = row[first..visible];
                TensorPrimitives.Multiply(vis, scale, vis);
                float max = TensorPrimitives.Max(vis);
                TensorPrimitives.Subtract(vis, max, vis);
                TensorPrimitives.Exp(vis, vis);
                float sum = TensorPrimitives.Sum(vis);
                TensorPrimitives.Multiply(vis, 1f / sum, vis);
                row[..first].Clear();
                row[visible..].Clear();
                if (lse != null) lse[((long)b * heads + h) * t + q0 + i] = max + MathF.Log(sum);
            }
            Gemm.Run(sc, kmax, 1, vb, (int)layout.PosStride, oBlk, width, nq, headDim, kmax, false, 1, level);  // O = P·V
        }
        pool.Return(ktArr);
        pool.Return(sArr);
    }

    /// <summary>
    /// Backward of one (sequence, head), per block of up to 64 queries: P = exp(Q·Kᵀ·scale − lse) (masked to 0),
    /// dP = dO·Vᵀ, dS = P ⊙ (dP − D)·scale with D_i = dO_i·O_i; dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardHead(float* dout, float* q, float* k, float* v, float* output, float* lse, float* dq,
        float* dkh, float* dvh, int bh, int t, int heads, int group, int headDim, int kvWidth, float scale, SimdLevel level, int window)
    {
        int b = bh / heads, h = bh % heads, kvh = h / group, width = heads * headDim;
        float* kb = k + (long)b * t * kvWidth + kvh * headDim;
        float* vb = v + (long)b * t * kvWidth + kvh * headDim;
        float* dkb = dkh + (long)bh * t * headDim;   // [T, hd] for this (b, h)
        float* dvb = dvh + (long)bh * t * headDim;
        new Span<float>(dkb, t * headDim).Clear();
        new Span<float>(dvb, t * headDim).Clear();
        var pool = ArrayPool<float>.Shared;
        int blk = Math.Min(QueryBlock, t);
        float[] ktArr = pool.Rent(headDim * t), vtArr = pool.Rent(headDim * t), pArr = pool.Rent(blk * t), dpArr = pool.Rent(blk * t);
        fixed (float* kt = ktArr, vt = vtArr, pm = pArr, dpm = dpArr)
        {
            for (int s = 0; s < t; s++)                          // kt, vt: [hd, T]
                for (int d = 0; d < headDim; d++)
                {
                    kt[(long)d * t + s] = kb[(long)s * kvWidth + d];
                    vt[(long)d * t + s] = vb[(long)s * kvWidth + d];
                }
            for (int q0 = 0; q0 < t; q0 += QueryBlock)
            {
                int nq = Math.Min(QueryBlock, t - q0), kmax = q0 + nq;
                long off = ((long)b * t + q0) * width + h * headDim;
                float* qBlk = q + off, oBlk = output + off, doBlk = dout + off, dqBlk = dq + off;
                Gemm.Run(qBlk, width, 1, kt, t, pm, kmax, nq, kmax, headDim, false, 1, level);      // S: [nq, kmax]
                Gemm.Run(doBlk, width, 1, vt, t, dpm, kmax, nq, kmax, headDim, false, 1, level);    // dP: [nq, kmax]
                for (int i = 0; i < nq; i++)
                {
                    var prow = new Span<float>(pm + (long)i * kmax, kmax);
                    var dprow = new Span<float>(dpm + (long)i * kmax, kmax);
                    int visible = q0 + i + 1, first = window > 0 ? Math.Max(0, visible - window) : 0;
                    var vis = prow[first..visible];
                    TensorPrimitives.Multiply(vis, scale, vis);
                    TensorPrimitives.Subtract(vis, lse[((long)b * heads + h) * t + q0 + i], vis);
                    TensorPrimitives.Exp(vis, vis);
                    prow[..first].Clear();
                    prow[visible..].Clear();
                    float dd = Matmul.Dot(doBlk + (long)i * width, oBlk + (long)i * width, headDim, level);
                    TensorPrimitives.Subtract(dprow, dd, dprow);
                    TensorPrimitives.Multiply(dprow, prow, dprow);
                    TensorPrimitives.Multiply(dprow, scale, dprow);                                // dS (0 where masked)
                }
                Gemm.Run(dpm, kmax, 1, kb, kvWidth, dqBlk, width, nq, headDim, kmax, false, 1, level);  // dQ = dS·K
                Gemm.Run(dpm, 1, kmax, qBlk, width, dkb, headDim, kmax, headDim, nq, true, 1, level);   // dK += dSᵀ·Q
                Gemm.Run(pm, 1, kmax, doBlk, width, dvb, headDim, kmax, headDim, nq, true, 1, level);   // dV += Pᵀ·dO
            }
        }
        pool.Return(ktArr); pool.Return(vtArr); pool.Return(pArr); pool.Return(dpArr);
    }
}
