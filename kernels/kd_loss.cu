// Fused distillation loss and gradient of student rows against the teacher's sparse top-K (RAFT stage 2).
// The math is that of ReferenceKernels.DistillRow (src/Raft.Kernels/ReferenceKernels.cs), computed in fp32 with
// fp64 accumulation of the K-sized sums.
//
// Entry point
//   extern "C" __global__ void raft_kd_loss(
//       const float* student,        // [rows, vocab] student logits s
//       float* grad,                 // [rows, vocab] out, may be null (loss only) or equal to student (in place)
//       int rows, int vocab,
//       const int* teacherIndices,   // [rows, k] the teacher's top-K indices (0..vocab-1)
//       const float* teacherProbs,   // [rows, k] their probabilities p (top-K softmax at tau)
//       int k,                       // 1 <= k <= vocab
//       const float* rowWeights,     // [rows] w_r >= 0, may be null (all 1)
//       float normalizer,            // N > 0: the gradient written is w_r / N * d(tau^2 D_r)/ds
//       float temperature,           // tau > 0
//       int kind,                    // 0 forward KL, 1 reverse KL on the teacher's K support, 2 generalized JSD
//       float beta,                  // JSD's beta, 0 < beta < 1 (beta = 0 / 1 are resolved to kinds 0 / 1 on the host)
//       float* rowLoss,              // [rows] out: tau^2 * D_r, unweighted (0 for a row of weight 0)
//       int* rowStatus)              // [rows] out, may be null: bit 0 = a NaN or infinite student logit was met,
//                                    //   bit 1 = in place requested without k * 4 bytes of dynamic shared memory
//
// Divergences (z = s / tau, q = softmax(z) over the vocabulary, lse = log sum exp z):
//   0  D = sum_j p_j (log p_j - log q_j);             dD/dz_i = q_i * sum_j p_j - [i in K] p_i
//   1  q_K = softmax(z) over the K indices, f_j = log q_j - log max(p_j, 1e-30), D = sum_j q_j f_j;
//      dD/dz_j = q_j (f_j - D) on the K indices, 0 elsewhere
//   2  M = beta p + (1 - beta) q, D = beta KL(p || M) + (1 - beta) KL(q || M), p zero outside K;
//      g_i = (1 - beta) log(q_i / M_i), equal to c = -(1 - beta) log(1 - beta) outside K;
//      dD/dz_i = q_i (g_i - gBar), gBar = sum_m q_m g_m
//   The row's gradient is w_r / N * tau * dD/dz; the row's loss is tau^2 * D.
//
// Launch contract
//   grid  = (rows, 1, 1): one block per row.
//   block = (T, 1, 1) with T a multiple of 32, 32 <= T <= 1024 (the host uses 256).
//   dynamic shared memory = k * 4 bytes (the K gathered student logits, read before an in-place overwrite).
//   With less, the kernel re-reads them from `student`, which is only allowed when grad != student.
//
// Per row: one pass over the vocabulary (float4 loads where the row is 16-byte aligned) for an online max and
// sum of exp; the K student logits are gathered into shared memory; the K-sized sums; one pass writing
// the dense part of the gradient; then, after a block barrier, the K sparse corrections (atomicAdd, so
// duplicate teacher indices add up as in the reference). Reductions: __shfl_xor_sync within a warp, then
// shared memory across warps, every thread combining the warp partials in the same order.
//
// Self-contained: no headers; compiled at run time by NVRTC.

#define RAFT_FULL_MASK 0xffffffffu
#define RAFT_PROB_FLOOR 1e-30f

__device__ __forceinline__ unsigned int raft_lane() { return threadIdx.x & 31u; }
__device__ __forceinline__ unsigned int raft_warp() { return threadIdx.x >> 5; }
__device__ __forceinline__ unsigned int raft_num_warps() { return blockDim.x >> 5; }
__device__ __forceinline__ float raft_neg_inf() { return __int_as_float((int)0xff800000u); }
__device__ __forceinline__ bool raft_is_finite(float x) { return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u; }

__device__ __forceinline__ unsigned int raft_dynamic_smem_bytes()
{
    unsigned int r;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(r));
    return r;
}

// Visits the row [n]: a scalar head up to the first 16-byte boundary, float4 chunks, a scalar tail.
// f(firstIndex, v[4], count) gets `count` (0..4) consecutive elements; every thread makes the same calls.
template <class F>
__device__ __forceinline__ void raft_visit_row(const float* row, int n, F& f)
{
    const int t = (int)threadIdx.x, nt = (int)blockDim.x;
    const unsigned long long addr = (unsigned long long)row;
    int head = (int)(((16u - (unsigned int)(addr & 15u)) & 15u) >> 2);
    if (head > n) head = n;
    const int body = (n - head) >> 2;
    const int tailStart = head + (body << 2);
    const int tail = n - tailStart;
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    if (head > 0)
    {
        int cnt = t < head ? 1 : 0;
        if (cnt) v[0] = row[t];
        f(t, v, cnt);
    }
    const float4* row4 = reinterpret_cast<const float4*>(row + head);
    for (int base = 0; base < body; base += nt)
    {
        const int i = base + t;
        int cnt = 0;
        if (i < body)
        {
            const float4 q = row4[i];
            v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
            cnt = 4;
        }
        f(head + 4 * i, v, cnt);
    }
    if (tail > 0)
    {
        int cnt = t < tail ? 1 : 0;
        if (cnt) v[0] = row[tailStart + t];
        f(tailStart + t, v, cnt);
    }
}

// (m, s) represents s * exp(m); merging is symmetric, so a butterfly leaves every lane with the same value.
__device__ __forceinline__ void raft_lse_merge(float& m, float& s, float m2, float s2)
{
    if (s2 == 0.f) return;
    if (m2 > m)
    {
        s = s * expf(m - m2) + s2;
        m = m2;
    }
    else s += s2 * expf(m2 - m);
}

__device__ __forceinline__ void raft_block_lse(float& m, float& s, float* scratch /* [64] */)
{
    for (int o = 16; o > 0; o >>= 1)
    {
        const float m2 = __shfl_xor_sync(RAFT_FULL_MASK, m, o);
        const float s2 = __shfl_xor_sync(RAFT_FULL_MASK, s, o);
        raft_lse_merge(m, s, m2, s2);
    }
    __syncthreads();
    if (raft_lane() == 0u)
    {
        scratch[raft_warp()] = m;
        scratch[32 + raft_warp()] = s;
    }
    __syncthreads();
    m = raft_neg_inf();
    s = 0.f;
    for (unsigned int w = 0; w < raft_num_warps(); w++) raft_lse_merge(m, s, scratch[w], scratch[32 + w]);
}

__device__ __forceinline__ float raft_block_max(float v, float* scratch /* [32] */)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(RAFT_FULL_MASK, v, o));
    __syncthreads();
    if (raft_lane() == 0u) scratch[raft_warp()] = v;
    __syncthreads();
    float r = raft_neg_inf();
    for (unsigned int w = 0; w < raft_num_warps(); w++) r = fmaxf(r, scratch[w]);
    return r;
}

// Sums three doubles over the block (any of them may be unused); every thread gets the same totals.
__device__ __forceinline__ void raft_block_sum3(double& a, double& b, double& c, double* scratch /* [96] */)
{
    for (int o = 16; o > 0; o >>= 1)
    {
        a += __shfl_xor_sync(RAFT_FULL_MASK, a, o);
        b += __shfl_xor_sync(RAFT_FULL_MASK, b, o);
        c += __shfl_xor_sync(RAFT_FULL_MASK, c, o);
    }
    __syncthreads();
    if (raft_lane() == 0u)
    {
        scratch[raft_warp()] = a;
        scratch[32 + raft_warp()] = b;
        scratch[64 + raft_warp()] = c;
    }
    __syncthreads();
    a = 0.0; b = 0.0; c = 0.0;
    for (unsigned int w = 0; w < raft_num_warps(); w++)
    {
        a += scratch[w];
        b += scratch[32 + w];
        c += scratch[64 + w];
    }
}

__device__ __forceinline__ float raft_log_add_exp(float a, float b)
{
    return fmaxf(a, b) + log1pf(expf(-fabsf(a - b)));
}

// Writes grow[i] = coef * exp(srow[i] * invTau - lse) (coef == 0: zeros), reading before writing each
// element, so grow may equal srow. float4 when both rows share their 16-byte phase.
__device__ __forceinline__ void raft_write_dense(const float* srow, float* grow, int n, float coef, float invTau,
                                                 float lse)
{
    const int t = (int)threadIdx.x, nt = (int)blockDim.x;
    const unsigned long long sa = (unsigned long long)srow, ga = (unsigned long long)grow;
    if (((sa ^ ga) & 15u) != 0u)
    {
        for (int i = t; i < n; i += nt) grow[i] = coef == 0.f ? 0.f : coef * expf(srow[i] * invTau - lse);
        return;
    }
    int head = (int)(((16u - (unsigned int)(sa & 15u)) & 15u) >> 2);
    if (head > n) head = n;
    const int body = (n - head) >> 2;
    const int tailStart = head + (body << 2);
    if (t < head) grow[t] = coef == 0.f ? 0.f : coef * expf(srow[t] * invTau - lse);
    const float4* s4 = reinterpret_cast<const float4*>(srow + head);
    float4* g4 = reinterpret_cast<float4*>(grow + head);
    for (int i = t; i < body; i += nt)
    {
        float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
        if (coef != 0.f)
        {
            const float4 q = s4[i];
            o.x = coef * expf(q.x * invTau - lse);
            o.y = coef * expf(q.y * invTau - lse);
            o.z = coef * expf(q.z * invTau - lse);
            o.w = coef * expf(q.w * invTau - lse);
        }
        g4[i] = o;
    }
    for (int i = tailStart + t; i < n; i += nt) grow[i] = coef == 0.f ? 0.f : coef * expf(srow[i] * invTau - lse);
}

// Row visitor: finiteness check, and (when needLse) the thread's running max m and sum s of exp(z - m).
struct RaftOnlineLse
{
    float invTau, m, s;
    bool needLse, bad;

    __device__ void operator()(int, const float* v, int cnt)
    {
        if (cnt == 0) return;
        float z[4];
        float cm = raft_neg_inf();
        for (int e = 0; e < cnt; e++)
        {
            if (!raft_is_finite(v[e])) bad = true;
            z[e] = v[e] * invTau;
            cm = fmaxf(cm, z[e]);
        }
        if (!needLse) return;
        if (cm > m)
        {
            s *= expf(m - cm);
            m = cm;
        }
        for (int e = 0; e < cnt; e++) s += expf(z[e] - m);
    }
};

extern "C" __global__ void raft_kd_loss(const float* student, float* grad, int rows, int vocab,
                                        const int* __restrict__ teacherIndices,
                                        const float* __restrict__ teacherProbs, int k,
                                        const float* __restrict__ rowWeights, float normalizer, float temperature,
                                        int kind, float beta, float* __restrict__ rowLoss,
                                        int* __restrict__ rowStatus)
{
    extern __shared__ __align__(16) unsigned char raft_dyn_smem[];
    __shared__ float fscratch[64];
    __shared__ double dscratch[96];

    const int r = (int)blockIdx.x;
    if (r >= rows) return;
    const int t = (int)threadIdx.x, nt = (int)blockDim.x;
    const float* srow = student + (long long)r * vocab;
    float* grow = grad == 0 ? (float*)0 : grad + (long long)r * vocab;
    const int* idx = teacherIndices + (long long)r * k;
    const float* p = teacherProbs + (long long)r * k;
    const float w = rowWeights == 0 ? 1.f : rowWeights[r];

    if (w == 0.f || normalizer == 0.f)
    {
        // The row is not read; its gradient is zero.
        if (grow != 0)
            for (int i = t; i < vocab; i += nt) grow[i] = 0.f;
        if (t == 0)
        {
            rowLoss[r] = 0.f;
            if (rowStatus != 0) rowStatus[r] = 0;
        }
        return;
    }

    const bool useSmem = raft_dynamic_smem_bytes() >= (unsigned int)k * 4u;
    if (!useSmem && (const float*)grow == srow)
    {
        if (t == 0)
        {
            rowLoss[r] = 0.f;
            if (rowStatus != 0) rowStatus[r] = 2;
        }
        return;
    }
    float* zK = reinterpret_cast<float*>(raft_dyn_smem);

    const float tau = temperature, invTau = 1.f / temperature, scale = w / normalizer;

    // ---- pass over the vocabulary: online max and sum of exp(z), and the finiteness check
    RaftOnlineLse online;
    online.invTau = invTau;
    online.needLse = kind != 1;
    online.m = raft_neg_inf();
    online.s = 0.f;
    online.bad = false;
    raft_visit_row(srow, vocab, online);
    const bool bad = __syncthreads_or(online.bad ? 1 : 0) != 0;
    if (bad)
    {
        if (t == 0)
        {
            rowLoss[r] = 0.f;
            if (rowStatus != 0) rowStatus[r] = 1;
        }
        return;
    }
    float lse = 0.f;
    if (online.needLse)
    {
        raft_block_lse(online.m, online.s, fscratch);
        lse = online.m + logf(online.s);
    }

    // ---- gather the K student logits (before any in-place write)
    if (useSmem)
    {
        for (int j = t; j < k; j += nt) zK[j] = srow[idx[j]] * invTau;
        __syncthreads();
    }
#define RAFT_ZK(j) (useSmem ? zK[(j)] : srow[idx[(j)]] * invTau)

    // ---- the K-sized sums
    double d = 0.0, a1 = 0.0, a2 = 0.0;
    float coefAll = 0.f; // dense gradient coefficient: grad_i = coefAll * q_i
    float lseK = 0.f, lb = 0.f, l1b = 0.f, c = 0.f;
    if (kind == 0)
    {
        for (int j = t; j < k; j += nt)
        {
            const float pj = p[j];
            a1 += (double)pj;
            if (pj > 0.f) d += (double)(pj * (logf(pj) - (RAFT_ZK(j) - lse)));
        }
        raft_block_sum3(d, a1, a2, dscratch);
        coefAll = (float)((double)scale * tau * a1);
    }
    else if (kind == 1)
    {
        float mk = raft_neg_inf();
        for (int j = t; j < k; j += nt) mk = fmaxf(mk, RAFT_ZK(j));
        mk = raft_block_max(mk, fscratch);
        for (int j = t; j < k; j += nt) a1 += (double)expf(RAFT_ZK(j) - mk);
        raft_block_sum3(a1, a2, d, dscratch);
        lseK = mk + (float)log(a1);
        a1 = 0.0;
        for (int j = t; j < k; j += nt)
        {
            const float logq = RAFT_ZK(j) - lseK;
            const float f = logq - logf(fmaxf(p[j], RAFT_PROB_FLOOR));
            d += (double)(expf(logq) * f);
        }
        raft_block_sum3(d, a1, a2, dscratch);
    }
    else
    {
        lb = logf(beta);
        l1b = logf(1.f - beta);
        c = -(1.f - beta) * l1b;
        for (int j = t; j < k; j += nt)
        {
            const float pj = p[j];
            const float logq = RAFT_ZK(j) - lse, q = expf(logq);
            const float logM = pj > 0.f ? raft_log_add_exp(lb + logf(pj), l1b + logq) : l1b + logq;
            if (pj > 0.f) d += (double)(beta * pj * (logf(pj) - logM));
            d += (double)((1.f - beta) * q * (logq - logM));
            const float gK = (1.f - beta) * (logq - logM);
            a1 += (double)q;      // qK
            a2 += (double)(q * gK); // gBar over K
        }
        raft_block_sum3(d, a1, a2, dscratch);
        const double rest = a1 < 1.0 ? 1.0 - a1 : 0.0;
        d += rest * (double)c;
        a2 += rest * (double)c;
        coefAll = (float)((double)scale * tau * ((double)c - a2));
    }
    if (t == 0)
    {
        rowLoss[r] = (float)((double)tau * tau * d);
        if (rowStatus != 0) rowStatus[r] = 0;
    }
    if (grow == 0) return;

    // ---- dense part of the gradient, then the K sparse corrections
    raft_write_dense(srow, grow, vocab, coefAll, invTau, lse);
    __syncthreads(); // the dense writes of the whole block are visible before the corrections
    const float st = scale * tau; // RAFT_ZK re-reads the student only when grad != student (checked above)
    const float dK = (float)d;
    for (int j = t; j < k; j += nt)
    {
        float corr;
        if (kind == 0) corr = -st * p[j];
        else if (kind == 1)
        {
            const float logq = RAFT_ZK(j) - lseK;
            const float f = logq - logf(fmaxf(p[j], RAFT_PROB_FLOOR));
            corr = st * expf(logq) * (f - dK);
        }
        else
        {
            const float pj = p[j];
            const float logq = RAFT_ZK(j) - lse, q = expf(logq);
            const float logM = pj > 0.f ? raft_log_add_exp(lb + logf(pj), l1b + logq) : l1b + logq;
            const float gK = (1.f - beta) * (logq - logM);
            corr = st * q * (gK - c);
        }
        atomicAdd(&grow[idx[j]], corr);
    }
#undef RAFT_ZK
}
