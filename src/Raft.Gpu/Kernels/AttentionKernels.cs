using ILGPU;

namespace Raft.Gpu.Kernels;

/// <summary>
/// Shapes of the attention kernels. q, k, v are column ranges of the packed qkv rows [B·T, W3]
/// (q at 0, k at KCol, v at VCol); the attention output and its gradient are [B·T, H·hd]; lse and D are [B, H, T].
/// </summary>
internal struct AttnParams
{
    public int Batch, SeqLen, Heads, KvHeads, GroupSize, HeadDim;
    public int W3, KCol, VCol, QWidth;
    public float Scale;
    /// <summary>The sliding window (query i sees keys j with i − j &lt; Window); 0: none.</summary>
    public int Window;
}

/// <summary>
/// Causal grouped-query attention as <c>Raft.Model.Ops.Attention</c>: scores q·k·scale, the row max subtracted,
/// softmax in fp32, out = Σ p·v; the forward saves each row's log-sum-exp and the backward recomputes the
/// probabilities from it. One group per (sequence, head, query) for the forward and dq (the scores of the row in
/// dynamic shared memory [T]), one group per (sequence, kv head, key) for dk and dv (summing the group's query
/// heads in head order: no atomics, deterministic). With a sliding window (<see cref="AttnParams.Window"/> &gt; 0) query i
/// reads keys max(0, i − Window + 1)..i only. Every global access is bounds-guarded.
/// </summary>
internal static class AttentionKernels
{
    /// <summary>Grid B·H·T groups; dynamic shared T + hd floats. Writes att [B·T, H·hd] and lse [B, H, T].</summary>
    public static void Forward(ArrayView<float> qkv, ArrayView<float> att, ArrayView<float> lse, AttnParams p)
    {
        var dyn = SharedMemory.GetDynamic<float>();
        var red = SharedMemory.Allocate<float>(LayerKernels.MaxGroup);
        int t = Group.IdxX, g = Group.DimX, T = p.SeqLen, hd = p.HeadDim;
        int gid = Grid.IdxX, i = gid % T, bh = gid / T, h = bh % p.Heads, b = bh / p.Heads;
        if (b >= p.Batch || dyn.Length < T + hd) return;
        int kvh = h / p.GroupSize;
        long seq = (long)b * T;
        long lastRow = (seq + T) * p.W3;
        if (lastRow > qkv.Length || (seq + T) * p.QWidth > att.Length || ((long)bh + 1) * T > lse.Length) return;
        var sc = dyn.SubView(0, T);
        var qs = dyn.SubView(T, hd);
        long qOff = (seq + i) * p.W3 + (long)h * hd;
        for (int d = t; d < hd; d += g) qs[d] = qkv[qOff + d];
        Group.Barrier();
        float mx = float.NegativeInfinity;
        int j0 = p.Window > 0 ? Math.Max(0, i - p.Window + 1) : 0;
        for (int j = j0 + t; j <= i; j += g)
        {
            long kOff = (seq + j) * p.W3 + p.KCol + (long)kvh * hd;
            float s = 0f;
            for (int d = 0; d < hd; d++) s += qs[d] * qkv[kOff + d];
            s *= p.Scale;
            sc[j] = s;
            mx = MathF.Max(mx, s);
        }
        mx = LayerKernels.GroupMax(red, mx);
        float sum = 0f;
        for (int j = j0 + t; j <= i; j += g)
        {
            float e = MathF.Exp(sc[j] - mx);
            sc[j] = e;
            sum += e;
        }
        sum = LayerKernels.GroupSum(red, sum);
        float inv = 1f / sum;
        for (int j = j0 + t; j <= i; j += g) sc[j] *= inv;
        Group.Barrier();
        long oOff = (seq + i) * p.QWidth + (long)h * hd;
        long vBase = seq * p.W3 + p.VCol + (long)kvh * hd;
        for (int d = t; d < hd; d += g)
        {
            float acc = 0f;
            for (int j = j0; j <= i; j++) acc += sc[j] * qkv[vBase + (long)j * p.W3 + d];
            att[oOff + d] = acc;
        }
        if (t == 0) lse[(long)bh * T + i] = mx + MathF.Log(sum);
    }

    /// <summary>
    /// Backward for the queries. Grid B·H·T groups; dynamic shared T + 2·hd floats. With D_i = dO_i·O_i (saved into
    /// dsum [B, H, T] for <see cref="BackwardKeys"/>), dS_ij = p_ij (dO_i·v_j − D_i)·scale, dq_i = Σ_j dS_ij k_j,
    /// written into the q columns of dqkv.
    /// </summary>
    public static void BackwardQueries(ArrayView<float> dout, ArrayView<float> qkv, ArrayView<float> att, ArrayView<float> lse,
        ArrayView<float> dqkv, ArrayView<float> dsum, AttnParams p)
    {
        var dyn = SharedMemory.GetDynamic<float>();
        var red = SharedMemory.Allocate<float>(LayerKernels.MaxGroup);
        int t = Group.IdxX, g = Group.DimX, T = p.SeqLen, hd = p.HeadDim;
        int gid = Grid.IdxX, i = gid % T, bh = gid / T, h = bh % p.Heads, b = bh / p.Heads;
        if (b >= p.Batch || dyn.Length < T + 2 * hd) return;
        int kvh = h / p.GroupSize;
        long seq = (long)b * T;
        if ((seq + T) * p.W3 > qkv.Length || (seq + T) * p.W3 > dqkv.Length || (seq + T) * p.QWidth > att.Length
            || (seq + T) * p.QWidth > dout.Length || ((long)bh + 1) * T > lse.Length || ((long)bh + 1) * T > dsum.Length) return;
        var sc = dyn.SubView(0, T);
        var qs = dyn.SubView(T, hd);
        var ds = dyn.SubView(T + hd, hd);
        long qOff = (seq + i) * p.W3 + (long)h * hd;
        long oOff = (seq + i) * p.QWidth + (long)h * hd;
        float dd = 0f;
        for (int d = t; d < hd; d += g)
        {
            qs[d] = qkv[qOff + d];
            float o = dout[oOff + d];
            ds[d] = o;
            dd += o * att[oOff + d];
        }
        dd = LayerKernels.GroupSum(red, dd);   // its barriers also publish qs, ds
        float l = lse[(long)bh * T + i];
        long kBase = seq * p.W3 + p.KCol + (long)kvh * hd;
        long vBase = seq * p.W3 + p.VCol + (long)kvh * hd;
        int j0 = p.Window > 0 ? Math.Max(0, i - p.Window + 1) : 0;
        for (int j = j0 + t; j <= i; j += g)
        {
            long kOff = kBase + (long)j * p.W3, vOff = vBase + (long)j * p.W3;
            float s = 0f, dp = 0f;
            for (int d = 0; d < hd; d++)
            {
                s += qs[d] * qkv[kOff + d];
                dp += ds[d] * qkv[vOff + d];
            }
            float pr = MathF.Exp(s * p.Scale - l);
            sc[j] = (dp - dd) * pr * p.Scale;
        }
        Group.Barrier();
        for (int d = t; d < hd; d += g)
        {
            float acc = 0f;
            for (int j = j0; j <= i; j++) acc += sc[j] * qkv[kBase + (long)j * p.W3 + d];
            dqkv[qOff + d] = acc;
        }
        if (t == 0) dsum[(long)bh * T + i] = dd;
    }

    /// <summary>
    /// Backward for the keys and values. Grid B·KV·T groups (one per key j); dynamic shared 2·T + 2·hd floats.
    /// dk_j = Σ_h Σ_{i ≥ j} dS_ij q_i, dv_j = Σ_h Σ_{i ≥ j} p_ij dO_i over the query heads h of the kv head, written
    /// into the k and v columns of dqkv.
    /// </summary>
    public static void BackwardKeys(ArrayView<float> dout, ArrayView<float> qkv, ArrayView<float> lse, ArrayView<float> dsum,
        ArrayView<float> dqkv, AttnParams p)
    {
        var dyn = SharedMemory.GetDynamic<float>();
        int t = Group.IdxX, g = Group.DimX, T = p.SeqLen, hd = p.HeadDim;
        int gid = Grid.IdxX, j = gid % T, bk = gid / T, kvh = bk % p.KvHeads, b = bk / p.KvHeads;
        if (b >= p.Batch || dyn.Length < 2 * T + 2 * hd) return;
        long seq = (long)b * T;
        if ((seq + T) * p.W3 > qkv.Length || (seq + T) * p.W3 > dqkv.Length || (seq + T) * p.QWidth > dout.Length
            || ((long)b + 1) * p.Heads * T > lse.Length || ((long)b + 1) * p.Heads * T > dsum.Length) return;
        var ps = dyn.SubView(0, T);
        var dss = dyn.SubView(T, T);
        var ks = dyn.SubView(2 * T, hd);
        var vs = dyn.SubView(2 * T + hd, hd);
        long kOff = (seq + j) * p.W3 + p.KCol + (long)kvh * hd;
        long vOff = (seq + j) * p.W3 + p.VCol + (long)kvh * hd;
        for (int d = t; d < hd; d += g)
        {
            ks[d] = qkv[kOff + d];
            vs[d] = qkv[vOff + d];
        }
        int iEnd = p.Window > 0 ? Math.Min(T, j + p.Window) : T;   // the queries that see key j
        for (int hh = 0; hh < p.GroupSize; hh++)
        {
            int h = kvh * p.GroupSize + hh;
            long bh = (long)b * p.Heads + h;
            Group.Barrier();
            for (int i = j + t; i < iEnd; i += g)
            {
                long qOff = (seq + i) * p.W3 + (long)h * hd;
                long oOff = (seq + i) * p.QWidth + (long)h * hd;
                float s = 0f, dp = 0f;
                for (int d = 0; d < hd; d++)
                {
                    s += qkv[qOff + d] * ks[d];
                    dp += dout[oOff + d] * vs[d];
                }
                float pr = MathF.Exp(s * p.Scale - lse[bh * T + i]);
                ps[i] = pr;
                dss[i] = (dp - dsum[bh * T + i]) * pr * p.Scale;
            }
            Group.Barrier();
            for (int d = t; d < hd; d += g)
            {
                float ak = 0f, av = 0f;
                for (int i = j; i < iEnd; i++)
                {
                    ak += dss[i] * qkv[(seq + i) * p.W3 + (long)h * hd + d];
                    av += ps[i] * dout[(seq + i) * p.QWidth + (long)h * hd + d];
                }
                if (hh == 0)
                {
                    dqkv[kOff + d] = ak;
                    dqkv[vOff + d] = av;
                }
                else
                {
                    dqkv[kOff + d] += ak;
                    dqkv[vOff + d] += av;
                }
            }
        }
    }
}
