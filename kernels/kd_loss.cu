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
#define RAFT_KD_BATCH 4

// Dynamic shared memory of every kernel in this file (its size is given at launch).
extern __shared__ __align__(16) unsigned char raft_dyn_smem[];

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

// Writes a row's loss and status (rowStatus may be null); one thread per row calls it.
__device__ __forceinline__ void raft_row_result(float* rowLoss, int* rowStatus, int r, float loss, int status)
{
    rowLoss[r] = loss;
    if (rowStatus != 0) rowStatus[r] = status;
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
    // From the end of the row back: the log-sum-exp pass read the end last, so that part is the likeliest to be
    // still in L2 when this second read comes.
    for (int i = body - 1 - t; i >= 0; i -= nt)
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

// The K-sized part of a row, shared by both kernels. zk(j) returns z at the teacher's j-th index (= s / tau).
struct RaftKdSums
{
    double d;      // D_r (before tau^2)
    float coefAll; // dense gradient coefficient: grad_i = coefAll * q_i (0 for reverse KL)
    float lseK, lb, l1b, c;
};

template <class ZK, class PK>
__device__ RaftKdSums raft_kd_ksums(const ZK& zk, const PK& p, int k, int kind, float beta, float lse,
                                    float tau, float scale, float* fscratch, double* dscratch)
{
    const int t = (int)threadIdx.x, nt = (int)blockDim.x;
    RaftKdSums r;
    r.coefAll = 0.f;
    r.lseK = 0.f; r.lb = 0.f; r.l1b = 0.f; r.c = 0.f;
    double d = 0.0, a1 = 0.0, a2 = 0.0;
    if (kind == 0)
    {
        for (int j = t; j < k; j += nt)
        {
            const float pj = p(j);
            a1 += (double)pj;
            if (pj > 0.f) d += (double)(pj * (logf(pj) - (zk(j) - lse)));
        }
        raft_block_sum3(d, a1, a2, dscratch);
        r.coefAll = (float)((double)scale * tau * a1);
    }
    else if (kind == 1)
    {
        float mk = raft_neg_inf();
        for (int j = t; j < k; j += nt) mk = fmaxf(mk, zk(j));
        mk = raft_block_max(mk, fscratch);
        for (int j = t; j < k; j += nt) a1 += (double)expf(zk(j) - mk);
        raft_block_sum3(a1, a2, d, dscratch);
        r.lseK = mk + (float)log(a1);
        a1 = 0.0;
        for (int j = t; j < k; j += nt)
        {
            const float logq = zk(j) - r.lseK;
            const float f = logq - logf(fmaxf(p(j), RAFT_PROB_FLOOR));
            d += (double)(expf(logq) * f);
        }
        raft_block_sum3(d, a1, a2, dscratch);
    }
    else
    {
        r.lb = logf(beta);
        r.l1b = logf(1.f - beta);
        r.c = -(1.f - beta) * r.l1b;
        for (int j = t; j < k; j += nt)
        {
            const float pj = p(j);
            const float logq = zk(j) - lse, q = expf(logq);
            const float logM = pj > 0.f ? raft_log_add_exp(r.lb + logf(pj), r.l1b + logq) : r.l1b + logq;
            if (pj > 0.f) d += (double)(beta * pj * (logf(pj) - logM));
            d += (double)((1.f - beta) * q * (logq - logM));
            const float gK = (1.f - beta) * (logq - logM);
            a1 += (double)q;        // qK
            a2 += (double)(q * gK); // gBar over K
        }
        raft_block_sum3(d, a1, a2, dscratch);
        const double rest = a1 < 1.0 ? 1.0 - a1 : 0.0;
        d += rest * (double)r.c;
        a2 += rest * (double)r.c;
        r.coefAll = (float)((double)scale * tau * ((double)r.c - a2));
    }
    r.d = d;
    return r;
}

// The sparse correction added to the dense gradient at the teacher's j-th index; st = w / N * tau.
template <class ZK, class PK>
__device__ __forceinline__ float raft_kd_correction(const ZK& zk, const PK& p, int j, int kind,
                                                    float beta, float lse, const RaftKdSums& ks, float st)
{
    if (kind == 0) return -st * p(j);
    if (kind == 1)
    {
        const float logq = zk(j) - ks.lseK;
        const float f = logq - logf(fmaxf(p(j), RAFT_PROB_FLOOR));
        return st * expf(logq) * (f - (float)ks.d);
    }
    const float pj = p(j);
    const float logq = zk(j) - lse, q = expf(logq);
    const float logM = pj > 0.f ? raft_log_add_exp(ks.lb + logf(pj), ks.l1b + logq) : ks.l1b + logq;
    const float gK = (1.f - beta) * (logq - logM);
    return st * q * (gK - ks.c);
}

// The teacher's probabilities: p(j) from device memory, or from the register of the thread that prefetched
// entry j (thread j, when k <= threads) before the row's loads.
struct RaftPGlobal
{
    const float* p;
    __device__ __forceinline__ float operator()(int j) const { return p[j]; }
};

struct RaftPPrefetched
{
    const float* p;
    float mine;
    int t;
    __device__ __forceinline__ float operator()(int j) const { return j == t ? mine : p[j]; }
};

// z at the teacher's indices: from shared memory when gathered, else re-read from the student row.
struct RaftZkGathered
{
    const float* zK;
    __device__ __forceinline__ float operator()(int j) const { return zK[j]; }
};

struct RaftZkFromRow
{
    const float* zK;
    const float* srow;
    const int* idx;
    float invTau;
    bool useSmem;
    __device__ __forceinline__ float operator()(int j) const { return useSmem ? zK[j] : srow[idx[j]] * invTau; }
};

extern "C" __global__ void raft_kd_loss(const float* student, float* grad, int rows, int vocab,
                                        const int* __restrict__ teacherIndices,
                                        const float* __restrict__ teacherProbs, int k,
                                        const float* __restrict__ rowWeights, float normalizer, float temperature,
                                        int kind, float beta, float* __restrict__ rowLoss,
                                        int* __restrict__ rowStatus)
{
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
        if (t == 0) raft_row_result(rowLoss, rowStatus, r, 0.f, 0);
        return;
    }

    const bool useSmem = raft_dynamic_smem_bytes() >= (unsigned int)k * 4u;
    if (!useSmem && (const float*)grow == srow)
    {
        if (t == 0) raft_row_result(rowLoss, rowStatus, r, 0.f, 2);
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
        if (t == 0) raft_row_result(rowLoss, rowStatus, r, 0.f, 1);
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
    RaftZkFromRow zk;
    zk.zK = zK; zk.srow = srow; zk.idx = idx; zk.invTau = invTau; zk.useSmem = useSmem;

    // ---- the K-sized sums
    RaftPGlobal pk;
    pk.p = p;
    const RaftKdSums ks = raft_kd_ksums(zk, pk, k, kind, beta, lse, tau, scale, fscratch, dscratch);
    if (t == 0) raft_row_result(rowLoss, rowStatus, r, (float)((double)tau * tau * ks.d), 0);
    if (grow == 0) return;

    // ---- dense part of the gradient, then the K sparse corrections
    raft_write_dense(srow, grow, vocab, ks.coefAll, invTau, lse);
    __syncthreads(); // the dense writes of the whole block are visible before the corrections
    const float st = scale * tau; // zk re-reads the student only when grad != student (checked above)
    for (int j = t; j < k; j += nt)
        atomicAdd(&grow[idx[j]], raft_kd_correction(zk, pk, j, kind, beta, lse, ks, st));
}

// ------------------------------------------------------------------------------------------- row-resident variant
//
//   extern "C" __global__ void raft_kd_loss_resident1(same arguments as raft_kd_loss, then int chunk)
//   extern "C" __global__ void raft_kd_loss_resident2(…), void raft_kd_loss_resident4(…), void raft_kd_loss_resident8(…)
//       (the same, on a cluster of 2, 4 or 8 blocks; only in PTX built for compute_90 and newer)
//
// The row is read from device memory once and the gradient written once (raft_kd_loss reads it twice): the
// row is split over a cluster of C thread blocks (C = 1: one block, no cluster; C = 2, 4, 8: a thread-block
// cluster, compute capability 9.0 and newer), each holding its `chunk` logits in shared memory.
//
// Launch contract
//   grid  = (G * C, 1, 1) for any G >= 1 (cluster g takes rows g, g + G, …; the host uses the number of clusters
//   that fit on the device at once); block = (T, 1, 1), T a multiple of 32, 32 <= T <= 1024.
//   chunk: a multiple of 4 with C * chunk >= vocab; block b of a row owns logits [b * chunk, min(vocab, (b + 1) * chunk)).
//   dynamic shared memory = (chunk + 4 + k) * 4 bytes (the host raises the kernel's limit above 48 KB).
//   grad: null, equal to student, or a separate buffer.
//
// Per block: load its logits into shared memory with 16-byte loads, keeping an online max and sum of exp and the
// finiteness flag; post (max, sum, flag) in shared memory; cluster barrier; combine every block's partials through
// distributed shared memory (every block gets the same lse); gather the K student logits from the owning
// blocks' shared memory; cluster barrier (after it no block reads another's shared memory, so each may finish);
// the K-sized sums (every block computes them, block 0 writes the row's loss and status); the dense gradient of
// its part from shared memory, written once with 16-byte stores; after a block barrier, the sparse corrections
// that fall in its part.

__device__ __forceinline__ unsigned int raft_shared_address(const void* p)
{
    unsigned int a;
    asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ unsigned int raft_cluster_rank()
{
    unsigned int r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}

__device__ __forceinline__ void raft_cluster_sync()
{
    asm volatile("barrier.cluster.arrive.aligned;\n\tbarrier.cluster.wait.aligned;" ::: "memory");
}

// Reads the float at the shared-memory address `local` (as in this block) of block `rank` of the cluster.
__device__ __forceinline__ float raft_cluster_load(unsigned int local, unsigned int rank)
{
    unsigned int remote;
    float v;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
    asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
    return v;
}
#endif

template <int C>
__device__ __forceinline__ unsigned int raft_rank_in_row()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (C > 1) return raft_cluster_rank();
#endif
    return 0u;
}

template <int C>
__device__ __forceinline__ void raft_row_sync()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (C > 1)
    {
        raft_cluster_sync();
        return;
    }
#endif
    __syncthreads();
}

// Reads the float at `local` in the shared memory of block `rank` of the row (this block when C == 1).
template <int C>
__device__ __forceinline__ float raft_row_load(const float* local, unsigned int rank)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (C > 1) return raft_cluster_load(raft_shared_address(local), rank);
#endif
    return *local;
}

// Elements before the first 16-byte boundary of a row part starting at `p` (0..3).
__device__ __forceinline__ int raft_misalignment(const float* p)
{
    return (int)(((16u - (unsigned int)((unsigned long long)p & 15u)) & 15u) >> 2);
}

// Adds four logits to a thread's online (max, sum of exp(z - max)) at 1/tau, and to its non-finite flag.
__device__ __forceinline__ void raft_online_add4(const float4 q, float invTau, float& m, float& sum, bool& bad)
{
    bad |= !(raft_is_finite(q.x) && raft_is_finite(q.y) && raft_is_finite(q.z) && raft_is_finite(q.w));
    const float z0 = q.x * invTau, z1 = q.y * invTau, z2 = q.z * invTau, z3 = q.w * invTau;
    const float cm = fmaxf(fmaxf(z0, z1), fmaxf(z2, z3));
    if (cm > m)
    {
        sum *= expf(m - cm);
        m = cm;
    }
    sum += expf(z0 - m) + expf(z1 - m) + expf(z2 - m) + expf(z3 - m);
}

// One row on one block of its cluster. Preloaded: the block's part is already in xs (the bulk-copy variant; the
// part then starts on a 16-byte boundary), else the block loads it. zK: k floats of shared memory.
template <int C, bool Preloaded>
__device__ __forceinline__ void raft_kd_resident_row(const float* student, float* grad, int rows, int vocab,
                                                 const int* __restrict__ teacherIndices,
                                                 const float* __restrict__ teacherProbs, int k,
                                                 const float* __restrict__ rowWeights, float normalizer,
                                                 float temperature, int kind, float beta, float* __restrict__ rowLoss,
                                                 int* __restrict__ rowStatus, int chunk, int r,
                                                 unsigned int rank, float* xs, float* zK)
{
    __shared__ float fscratch[64];
    __shared__ double dscratch[96];
    __shared__ float sPart[3]; // this block's max and sum of exp(z - max), and its non-finite flag
    __shared__ float sRow[3];  // the same for the whole row

    const int t = (int)threadIdx.x, nt = (int)blockDim.x;
    const int start = (int)rank * chunk;
    int len = vocab - start;
    if (len > chunk) len = chunk;
    if (len < 0) len = 0;
    const float* srow = student + (long long)r * vocab;
    float* grow = grad == 0 ? (float*)0 : grad + (long long)r * vocab;
    const int* idx = teacherIndices + (long long)r * k;
    const float* p = teacherProbs + (long long)r * k;
    const float w = rowWeights == 0 ? 1.f : rowWeights[r];

    if (w == 0.f || normalizer == 0.f)
    {
        // The row is not read; its gradient is zero. Every block of the cluster returns here, before any barrier.
        if (grow != 0)
            for (int i = t; i < len; i += nt) grow[start + i] = 0.f;
        if (rank == 0u && t == 0) raft_row_result(rowLoss, rowStatus, r, 0.f, 0);
        return;
    }

    // the teacher's entries this thread will use, fetched before the row's loads so that their latency overlaps them
    RaftPPrefetched pk;
    pk.p = p;
    pk.t = t;
    pk.mine = t < k ? p[t] : 0.f;
    const int myIdx = t < k ? idx[t] : 0;

    const float tau = temperature, invTau = 1.f / temperature, scale = w / normalizer;
    // xs: [4 + chunk], part element i at xs[pad + i]
    const float* src = srow + start;
    int head = raft_misalignment(src);
    if (head > len) head = len;
    const int pad = (4 - head) & 3; // pad + head is 0 or 4: the float4 body lands on 16-byte boundaries
    const int body = (len - head) >> 2;
    const int tailStart = head + (body << 2);

    // ---- load the part once (or sweep the preloaded part), with an online max and sum of exp(z) and the finiteness check
    float m = raft_neg_inf(), sum = 0.f;
    bool bad = false;
    if (Preloaded)
    {
        const float4* x4 = reinterpret_cast<const float4*>(xs);
        for (int i = t; i < (len >> 2); i += nt) raft_online_add4(x4[i], invTau, m, sum, bad);
    }
    else if (t < head)
    {
        const float x = src[t];
        xs[pad + t] = x;
        bad |= !raft_is_finite(x);
        m = x * invTau;
        sum = 1.f;
    }
    if (!Preloaded)
    {
        // RAFT_KD_BATCH 16-byte loads are issued before any is used, so that each thread keeps that many in flight:
        // with one block of 1,024 threads on a multiprocessor, one load each is about half of what the memory
        // system needs to run at full bandwidth (measured: 42% of the copy with one load in flight, H200).
        const float4* s4 = reinterpret_cast<const float4*>(src + head);
        float4* x4 = reinterpret_cast<float4*>(xs + pad + head);
        for (int base = t; base < body; base += nt * RAFT_KD_BATCH)
        {
            float4 q[RAFT_KD_BATCH];
#pragma unroll
            for (int u = 0; u < RAFT_KD_BATCH; u++)
            {
                const int i = base + u * nt;
                if (i < body) q[u] = __ldcs(s4 + i); // read once: stream past the caches
            }
#pragma unroll
            for (int u = 0; u < RAFT_KD_BATCH; u++)
            {
                const int i = base + u * nt;
                if (i >= body) break;
                x4[i] = q[u];
                raft_online_add4(q[u], invTau, m, sum, bad);
            }
        }
    }
    for (int i = tailStart + t; i < len && !Preloaded; i += nt)
    {
        const float x = src[i];
        xs[pad + i] = x;
        bad |= !raft_is_finite(x);
        const float z = x * invTau;
        if (z > m)
        {
            sum *= expf(m - z);
            m = z;
        }
        sum += expf(z - m);
    }
    if (bad) { m = 0.f; sum = 0.f; } // keep the reduction free of NaN; the flag decides
    raft_block_lse(m, sum, fscratch);
    bad = __syncthreads_or(bad ? 1 : 0) != 0;
    if (t == 0)
    {
        sPart[0] = m;
        sPart[1] = sum;
        sPart[2] = bad ? 1.f : 0.f;
    }
    raft_row_sync<C>(); // every block's part is loaded and its partials posted

    // ---- combine the partials of the row: lane q of warp 0 reads block q's (one remote read each, not one per
    // thread), a butterfly merges them (every block runs the same butterfly on the same lanes, so every block gets
    // the same lse), and the result is shared with the block
    if (t < 32)
    {
        float pm = raft_neg_inf(), ps = 0.f, pb = 0.f;
        if (t < C)
        {
            pm = raft_row_load<C>(&sPart[0], (unsigned int)t);
            ps = raft_row_load<C>(&sPart[1], (unsigned int)t);
            pb = raft_row_load<C>(&sPart[2], (unsigned int)t);
        }
        for (int o = 16; o > 0; o >>= 1)
        {
            const float m2 = __shfl_xor_sync(RAFT_FULL_MASK, pm, o);
            const float s2 = __shfl_xor_sync(RAFT_FULL_MASK, ps, o);
            pb = fmaxf(pb, __shfl_xor_sync(RAFT_FULL_MASK, pb, o));
            raft_lse_merge(pm, ps, m2, s2);
        }
        if (t == 0)
        {
            sRow[0] = pm;
            sRow[1] = ps;
            sRow[2] = pb;
        }
    }
    __syncthreads();
    const bool rowBad = sRow[2] != 0.f;
    const float lse = kind == 1 ? 0.f : sRow[0] + logf(sRow[1]);

    // ---- gather the K student logits from the blocks that hold them
    if (!rowBad)
    {
        for (int j = t; j < k; j += nt)
        {
            const int i = j == t ? myIdx : idx[j];
            const int owner = i / chunk, off = i - owner * chunk;
            const int ownerHead = min(raft_misalignment(srow + owner * chunk), min(chunk, vocab - owner * chunk));
            const int ownerPad = (4 - ownerHead) & 3;
            zK[j] = raft_row_load<C>(xs + ownerPad + off, (unsigned int)owner) * invTau;
        }
    }
    raft_row_sync<C>(); // no block reads another's shared memory after this; zK is visible block-wide
    if (rowBad)
    {
        if (rank == 0u && t == 0) raft_row_result(rowLoss, rowStatus, r, 0.f, 1);
        return;
    }

    RaftZkGathered zk;
    zk.zK = zK;
    const RaftKdSums ks = raft_kd_ksums(zk, pk, k, kind, beta, lse, tau, scale, fscratch, dscratch);
    if (rank == 0u && t == 0) raft_row_result(rowLoss, rowStatus, r, (float)((double)tau * tau * ks.d), 0);
    if (grow == 0) return;

    // ---- dense gradient of this part from shared memory, written once
    float* dst = grow + start;
    const float coef = ks.coefAll;
    if (raft_misalignment(dst) == head)
    {
        if (t < head) dst[t] = coef == 0.f ? 0.f : coef * expf(xs[pad + t] * invTau - lse);
        const float4* x4 = reinterpret_cast<const float4*>(xs + pad + head);
        float4* d4 = reinterpret_cast<float4*>(dst + head);
#pragma unroll 4
        for (int i = t; i < body; i += nt)
        {
            float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
            if (coef != 0.f)
            {
                const float4 q = x4[i];
                o.x = coef * expf(q.x * invTau - lse);
                o.y = coef * expf(q.y * invTau - lse);
                o.z = coef * expf(q.z * invTau - lse);
                o.w = coef * expf(q.w * invTau - lse);
            }
            __stcs(d4 + i, o); // written once: stream past the caches
        }
        for (int i = tailStart + t; i < len; i += nt) dst[i] = coef == 0.f ? 0.f : coef * expf(xs[pad + i] * invTau - lse);
    }
    else
    {
        for (int i = t; i < len; i += nt) dst[i] = coef == 0.f ? 0.f : coef * expf(xs[pad + i] * invTau - lse);
    }
    __syncthreads(); // the dense writes of the block are visible before its corrections
    const float st = scale * tau;
    for (int j = t; j < k; j += nt)
    {
        const int i = j == t ? myIdx : idx[j];
        if (i >= start && i < start + len) atomicAdd(&grow[i], raft_kd_correction(zk, pk, j, kind, beta, lse, ks, st));
    }
}

// Every cluster (block, for C = 1) takes rows blockIdx.x / C, + clusters, … : the host launches as many clusters as
// fit on the device at once, so that no cluster waits for a set of free multiprocessors mid-run.
template <int C>
__device__ __forceinline__ void raft_kd_resident(const float* student, float* grad, int rows, int vocab,
                                                 const int* __restrict__ teacherIndices,
                                                 const float* __restrict__ teacherProbs, int k,
                                                 const float* __restrict__ rowWeights, float normalizer,
                                                 float temperature, int kind, float beta, float* __restrict__ rowLoss,
                                                 int* __restrict__ rowStatus, int chunk)
{
    const unsigned int rank = raft_rank_in_row<C>();
    const int clusters = (int)gridDim.x / C;
    for (int r = (int)blockIdx.x / C; r < rows; r += clusters)
    {
        float* xs = reinterpret_cast<float*>(raft_dyn_smem); // [4 + chunk], then zK [k]
        raft_kd_resident_row<C, false>(student, grad, rows, vocab, teacherIndices, teacherProbs, k, rowWeights,
                                       normalizer, temperature, kind, beta, rowLoss, rowStatus, chunk, r, rank, xs,
                                       xs + chunk + 4);
        __syncthreads(); // the block is done with its shared memory before the next row overwrites it
    }
}


// ------------------------------------------------------------------------------------------- bulk-copy variant
//
//   extern "C" __global__ void raft_kd_loss_bulk2(same arguments as raft_kd_loss_resident1), and _bulk4, _bulk8
//       (compute capability 9.0+; vocab a multiple of 4 and the student 16-byte aligned, so every part is)
//
// As the row-resident kernels, but the part of each row is brought into shared memory by the bulk-copy engine
// (cp.async.bulk, completion on an mbarrier), double-buffered: while a block works on row i, the copy of its part of
// row i + G (its cluster's next row) is already in flight, so the memory system stays busy through the per-row chain
// of barriers and reductions that the register-loading kernels expose. Dynamic shared memory = (2 * chunk + k) * 4.

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void raft_mbar_init(unsigned long long* bar)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(raft_shared_address(bar)) : "memory");
}

// Thread 0: the block's part of one row into dst, completing one phase of bar. bytes: a multiple of 16 (may be 0).
__device__ __forceinline__ void raft_bulk_load(float* dst, const float* src, unsigned int bytes, unsigned long long* bar)
{
    const unsigned int b = raft_shared_address(bar);
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); // earlier generic reads of dst come first
    if (bytes == 0u)
    {
        asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(b) : "memory");
        return;
    }
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(bytes) : "memory");
    for (unsigned int off = 0; off < bytes; off += 32768u)
    {
        const unsigned int n = bytes - off < 32768u ? bytes - off : 32768u;
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                     ::"r"(raft_shared_address(reinterpret_cast<const char*>(dst) + off)),
                       "l"(reinterpret_cast<const char*>(src) + off), "r"(n), "r"(b)
                     : "memory");
    }
}

__device__ __forceinline__ void raft_mbar_wait(unsigned long long* bar, unsigned int parity)
{
    asm volatile("{\n\t.reg .pred P1;\n\tRAFT_WAIT:\n\t"
                 "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n\t"
                 "@P1 bra RAFT_DONE;\n\tbra RAFT_WAIT;\n\tRAFT_DONE:\n\t}"
                 ::"r"(raft_shared_address(bar)), "r"(parity)
                 : "memory");
}

template <int C>
__device__ __forceinline__ void raft_kd_bulk(const float* student, float* grad, int rows, int vocab,
                                             const int* __restrict__ teacherIndices,
                                             const float* __restrict__ teacherProbs, int k,
                                             const float* __restrict__ rowWeights, float normalizer, float temperature,
                                             int kind, float beta, float* __restrict__ rowLoss,
                                             int* __restrict__ rowStatus, int chunk)
{
    __shared__ __align__(8) unsigned long long bars[2];
    const unsigned int rank = raft_cluster_rank();
    const int t = (int)threadIdx.x;
    const int clusters = (int)gridDim.x / C;
    const int first = (int)blockIdx.x / C;
    float* buf[2];
    buf[0] = reinterpret_cast<float*>(raft_dyn_smem);
    buf[1] = buf[0] + chunk;
    float* zK = buf[1] + chunk;
    const int start = (int)rank * chunk;
    int len = vocab - start;
    if (len > chunk) len = chunk;
    if (len < 0) len = 0;
    const unsigned int bytes = (unsigned int)len * 4u;
    if (t == 0)
    {
        raft_mbar_init(&bars[0]);
        raft_mbar_init(&bars[1]);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        if (first < rows) raft_bulk_load(buf[0], student + (long long)first * vocab + start, bytes, &bars[0]);
    }
    __syncthreads();
    int j = 0;
    for (int r = first; r < rows; r += clusters, j++)
    {
        const int next = r + clusters;
        if (t == 0 && next < rows)
            raft_bulk_load(buf[(j + 1) & 1], student + (long long)next * vocab + start, bytes, &bars[(j + 1) & 1]);
        raft_mbar_wait(&bars[j & 1], (unsigned int)((j >> 1) & 1));
        raft_kd_resident_row<C, true>(student, grad, rows, vocab, teacherIndices, teacherProbs, k, rowWeights,
                                      normalizer, temperature, kind, beta, rowLoss, rowStatus, chunk, r, rank,
                                      buf[j & 1], zK);
        __syncthreads(); // the block is done with this buffer before a copy into it is issued
    }
}
#endif

#define RAFT_KD_RESIDENT_PARAMS                                                                                    \
    const float *student, float *grad, int rows, int vocab, const int *__restrict__ teacherIndices,              \
        const float *__restrict__ teacherProbs, int k, const float *__restrict__ rowWeights, float normalizer,     \
        float temperature, int kind, float beta, float *__restrict__ rowLoss, int *__restrict__ rowStatus, int chunk
#define RAFT_KD_RESIDENT_ARGS                                                                                      \
    student, grad, rows, vocab, teacherIndices, teacherProbs, k, rowWeights, normalizer, temperature, kind, beta,  \
        rowLoss, rowStatus, chunk

extern "C" __global__ __launch_bounds__(1024) void raft_kd_loss_resident1(RAFT_KD_RESIDENT_PARAMS)
{
    raft_kd_resident<1>(RAFT_KD_RESIDENT_ARGS);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
extern "C" __global__ __launch_bounds__(1024) __cluster_dims__(2, 1, 1) void raft_kd_loss_resident2(RAFT_KD_RESIDENT_PARAMS)
{
    raft_kd_resident<2>(RAFT_KD_RESIDENT_ARGS);
}
extern "C" __global__ __launch_bounds__(1024) __cluster_dims__(4, 1, 1) void raft_kd_loss_resident4(RAFT_KD_RESIDENT_PARAMS)
{
    raft_kd_resident<4>(RAFT_KD_RESIDENT_ARGS);
}
extern "C" __global__ __launch_bounds__(1024) __cluster_dims__(8, 1, 1) void raft_kd_loss_resident8(RAFT_KD_RESIDENT_PARAMS)
{
    raft_kd_resident<8>(RAFT_KD_RESIDENT_ARGS);
}
extern "C" __global__ __launch_bounds__(1024) __cluster_dims__(2, 1, 1) void raft_kd_loss_bulk2(RAFT_KD_RESIDENT_PARAMS)
{
    raft_kd_bulk<2>(RAFT_KD_RESIDENT_ARGS);
}
extern "C" __global__ __launch_bounds__(1024) __cluster_dims__(4, 1, 1) void raft_kd_loss_bulk4(RAFT_KD_RESIDENT_PARAMS)
{
    raft_kd_bulk<4>(RAFT_KD_RESIDENT_ARGS);
}
extern "C" __global__ __launch_bounds__(1024) __cluster_dims__(8, 1, 1) void raft_kd_loss_bulk8(RAFT_KD_RESIDENT_PARAMS)
{
    raft_kd_bulk<8>(RAFT_KD_RESIDENT_ARGS);
}
#endif
