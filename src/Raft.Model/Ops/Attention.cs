using System.Buffers;
using System.Numerics.Tensors;
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
/// </summary>
internal static unsafe class Attention
{
    /// <summary>
    /// out[B·T, H·hd] for queries q[B·T, H·hd] at positions past..past+T-1 over keys/values 0..past+T-1
    /// stored as <paramref name="layout"/> says; lse[B, H, T] (may be empty) receives each row's log-sum-exp.
    /// </summary>
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, KvLayout layout,
        Span<float> output, Span<float> lse, int batch, int t, int heads, int kvHeads, int headDim, int past, int threads)
    {
        // q: [B, T, H, hd]   k, v: per layout, past + T positions   out: [B, T, H, hd]   lse: [B, H, T]
        int group = heads / kvHeads, width = heads * headDim, keys = past + t;
        float scale = 1f / MathF.Sqrt(headDim);
        var level = Matmul.Best;
        bool saveLse = !lse.IsEmpty;
        fixed (float* pq = q, pk = k, pv = v, po = output, pl = lse)
        {
            nint aq = (nint)pq, ak = (nint)pk, av = (nint)pv, ao = (nint)po, al = (nint)pl;
            Par.For(batch * heads, (long)t * keys * heads > 1 << 12 ? threads : 1, bh =>
            {
                int b = bh / heads, h = bh % heads, kvh = h / group;
                float* kb = (float*)ak + b * layout.SeqStride + kvh * layout.HeadStride;
                float* vb = (float*)av + b * layout.SeqStride + kvh * layout.HeadStride;
                float[] rented = ArrayPool<float>.Shared.Rent(keys);
                var p = rented.AsSpan(0, keys);
                for (int i = 0; i < t; i++)
                {
                    float* qi = (float*)aq + ((long)b * t + i) * width + h * headDim;
                    float* oi = (float*)ao + ((long)b * t + i) * width + h * headDim;
                    int visible = past + i + 1;
                    float max = float.NegativeInfinity;
                    for (int s = 0; s < visible; s++)
                    {
                        float sc = Matmul.Dot(qi, kb + s * layout.PosStride, headDim, level) * scale;
                        p[s] = sc;
                        if (sc > max) max = sc;
                    }
                    var ps = p[..visible];
                    TensorPrimitives.Subtract(ps, max, ps);
                    TensorPrimitives.Exp(ps, ps);
                    float sum = TensorPrimitives.Sum(ps);
                    float inv = 1f / sum;
                    var od = new Span<float>(oi, headDim);
                    od.Clear();
                    for (int s = 0; s < visible; s++)
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(vb + s * layout.PosStride, headDim), ps[s] * inv, od, od);
                    if (saveLse) ((float*)al)[((long)b * heads + h) * t + i] = max + MathF.Log(sum);
                }
                ArrayPool<float>.Shared.Return(rented);
            });
        }
    }

    /// <summary>
    /// Backward of a full causal forward (past = 0, keys/values in the [B·T, KV·hd] row layout):
    /// dq[B·T, H·hd], dk, dv[B·T, KV·hd] (all overwritten) from dout and the saved output and lse.
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dout, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> output, ReadOnlySpan<float> lse, Span<float> dq, Span<float> dk, Span<float> dv,
        int batch, int t, int heads, int kvHeads, int headDim, int threads)
    {
        // dout, q, out, dq: [B, T, H, hd]   k, v, dk, dv: [B, T, KV, hd]   lse: [B, H, T]
        int group = heads / kvHeads, width = heads * headDim, kvWidth = kvHeads * headDim;
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
            {
                int b = bh / heads, h = bh % heads, kvh = h / group;
                float* kb = (float*)ak + (long)b * t * kvWidth + kvh * headDim;
                float* vb = (float*)av + (long)b * t * kvWidth + kvh * headDim;
                float* dkb = (float*)adkh + (long)bh * t * headDim;   // [T, hd] for this (b, h)
                float* dvb = (float*)advh + (long)bh * t * headDim;
                new Span<float>(dkb, t * headDim).Clear();
                new Span<float>(dvb, t * headDim).Clear();
                for (int i = 0; i < t; i++)
                {
                    long row = ((long)b * t + i) * width + h * headDim;
                    float* qi = (float*)aq + row, oi = (float*)ao + row, doi = (float*)ado + row, dqi = (float*)adq + row;
                    float l = ((float*)al)[((long)b * heads + h) * t + i];
                    float d = Matmul.Dot(doi, oi, headDim, level);
                    var dqs = new Span<float>(dqi, headDim);
                    dqs.Clear();
                    var qs = new ReadOnlySpan<float>(qi, headDim);
                    var dos = new ReadOnlySpan<float>(doi, headDim);
                    for (int s = 0; s <= i; s++)
                    {
                        float* ks = kb + (long)s * kvWidth, vs = vb + (long)s * kvWidth;
                        float p = MathF.Exp(Matmul.Dot(qi, ks, headDim, level) * scale - l);
                        float dp = Matmul.Dot(doi, vs, headDim, level);
                        float ds = p * (dp - d) * scale;
                        var dvs = new Span<float>(dvb + (long)s * headDim, headDim);
                        var dks = new Span<float>(dkb + (long)s * headDim, headDim);
                        TensorPrimitives.MultiplyAdd(dos, p, dvs, dvs);
                        TensorPrimitives.MultiplyAdd(qs, ds, dks, dks);
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(ks, headDim), ds, dqs, dqs);
                    }
                }
            });
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
}
