// Fused top-K temperature softmax of teacher logits (RAFT stage 2, the teacher side of distillation).
//
// Entry point
//   extern "C" __global__ void raft_topk_softmax(
//       const float* logits,   // [rows, vocab] fp32, row-major
//       int rows, int vocab,
//       int k,                 // 1 <= k <= vocab
//       float temperature,     // tau > 0
//       int* indices,          // [rows, k] out: the k largest logits, by descending value, ties to the lower index
//       float* probs,          // [rows, k] out: softmax(logit / tau) over the k kept entries
//       int* status)           // [rows] out, may be null: 1 when the row holds a NaN or an infinity, else 0
//
// Launch contract
//   grid  = (rows, 1, 1): one block per row.
//   block = (T, 1, 1) with T a multiple of 32, 32 <= T <= 1024 (the host uses 256).
//   dynamic shared memory = k * 8 bytes when k <= RAFT_TOPK_SHARED_MAX_K (4096), else 0.
//   The kernel reads the dynamic shared size it was given (%dynamic_smem_size): with at least k * 8 bytes the
//   final sort of the k survivors runs in shared memory; with less (any k, no upper limit) it falls back to a
//   slower sort carried out in place in the row's output arrays (indices, and probs used as key storage).
//   Requires compute capability 7.0 or newer (__match_any_sync).
//
// Algorithm (per row, no full sort of the vocabulary)
//   1. Every logit x is mapped to the order-preserving key u(x): the float's bits with the sign bit flipped
//      for x >= 0 and all bits flipped for x < 0, so that x < y <=> u(x) < u(y) as unsigned integers
//      (-0 is folded into +0, as the two compare equal; a NaN maps to 0, the lowest key, and flags the row).
//   2. Radix select: four passes of 8 bits from the most significant digit. Each pass builds a 256-bin
//      histogram in shared memory of the keys that match the digits fixed so far (warp-aggregated atomics:
//      logits share few exponents, so most of a warp hits the same bin; a warp none of whose keys match the
//      prefix skips the aggregation, which is most warps after the first pass) and picks the bin holding the k-th
//      largest key. After the fourth pass the threshold T (the k-th largest key) is known exactly, as is the
//      number of its copies still needed, `need` (>= 1).
//   3. Gather, in index order, every key > T (there are exactly k - need) and the first `need` keys == T,
//      using block-wide exclusive scans so that the lowest-index ties win deterministically.
//   4. Sort the k survivors by (key descending, index ascending) with a bitonic network (the "flip" variant,
//      valid for any k without padding), then softmax(x / tau) over them, accumulated in double.
//
// Self-contained: no headers; compiled at run time by NVRTC.

#define RAFT_TOPK_SHARED_MAX_K 4096
#define RAFT_FULL_MASK 0xffffffffu

// ------------------------------------------------------------------------------------------- helpers

__device__ __forceinline__ unsigned int raft_lane() { return threadIdx.x & 31u; }
__device__ __forceinline__ unsigned int raft_warp() { return threadIdx.x >> 5; }
__device__ __forceinline__ unsigned int raft_num_warps() { return blockDim.x >> 5; }

__device__ __forceinline__ unsigned int raft_dynamic_smem_bytes()
{
    unsigned int r;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(r));
    return r;
}

// Order-preserving map float -> uint32. Sets `bad` for a NaN or an infinity.
__device__ __forceinline__ unsigned int raft_key_of(float x, bool& bad)
{
    unsigned int b = __float_as_uint(x);
    if ((b & 0x7f800000u) == 0x7f800000u)
    {
        bad = true;
        if (b & 0x007fffffu) return 0u; // NaN: lowest key
    }
    if ((b << 1) == 0u) b = 0u; // -0 -> +0
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float raft_float_of(unsigned int key)
{
    return __uint_as_float((key & 0x80000000u) ? (key ^ 0x80000000u) : ~key);
}

// Visits the row [n] in index order: a scalar head up to the first 16-byte boundary, float4 chunks, a scalar
// tail. f(firstIndex, v[4], count) receives `count` (0..4) consecutive elements starting at firstIndex; within
// one call thread t's elements precede thread t+1's, and successive calls move forward through the row. Every
// thread of the block makes the same calls (count is 0 for padding), so f may use warp intrinsics with the
// full mask and __syncthreads. f returns false (uniformly across the block) to stop early.
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
        if (!f(t, v, cnt)) return;
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
        if (!f(head + 4 * i, v, cnt)) return;
    }
    if (tail > 0)
    {
        int cnt = t < tail ? 1 : 0;
        if (cnt) v[0] = row[tailStart + t];
        f(tailStart + t, v, cnt);
    }
}

// Block-wide exclusive prefix sum of v (in thread order); `total` receives the block's sum. All threads call.
__device__ __forceinline__ unsigned int raft_block_exclusive_scan(unsigned int v, unsigned int* warpSums,
                                                                  unsigned int& total)
{
    const unsigned int lane = raft_lane(), warp = raft_warp(), nw = raft_num_warps();
    unsigned int incl = v;
    for (unsigned int o = 1; o < 32u; o <<= 1)
    {
        unsigned int y = __shfl_up_sync(RAFT_FULL_MASK, incl, o);
        if (lane >= o) incl += y;
    }
    __syncthreads(); // earlier readers of warpSums are done
    if (lane == 31u) warpSums[warp] = incl;
    __syncthreads();
    unsigned int before = 0, sum = 0;
    for (unsigned int w = 0; w < nw; w++)
    {
        unsigned int s = warpSums[w];
        if (w < warp) before += s;
        sum += s;
    }
    total = sum;
    return before + incl - v;
}

__device__ __forceinline__ double raft_block_sum(double v, double* scratch)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(RAFT_FULL_MASK, v, o);
    __syncthreads();
    if (raft_lane() == 0u) scratch[raft_warp()] = v;
    __syncthreads();
    double r = 0.0;
    for (unsigned int w = 0; w < raft_num_warps(); w++) r += scratch[w];
    return r;
}

// Survivors held as 64-bit composites in shared memory: key in the high word, ~index in the low word, so
// that a larger composite comes first (larger key, then lower index).
struct RaftSharedSurvivors
{
    unsigned long long* c;
    __device__ void put(int slot, unsigned int key, int index) const
    {
        c[slot] = ((unsigned long long)key << 32) | (unsigned long long)(~(unsigned int)index);
    }
    __device__ void order(int i, int j) const // puts the element that comes first at i
    {
        unsigned long long a = c[i], b = c[j];
        if (b > a) { c[i] = b; c[j] = a; }
    }
    __device__ unsigned int key(int j) const { return (unsigned int)(c[j] >> 32); }
    __device__ int index(int j) const { return (int)(~(unsigned int)(c[j] & 0xffffffffull)); }
};

// Survivors held in the row's own outputs (fallback for large k): indices[] and the keys in probs[] as bits.
struct RaftGlobalSurvivors
{
    int* idx;
    unsigned int* keys;
    __device__ void put(int slot, unsigned int key, int index) const { keys[slot] = key; idx[slot] = index; }
    __device__ void order(int i, int j) const
    {
        unsigned int ka = keys[i], kb = keys[j];
        int ia = idx[i], ib = idx[j];
        if (kb > ka || (kb == ka && ib < ia))
        {
            keys[i] = kb; keys[j] = ka;
            idx[i] = ib; idx[j] = ia;
        }
    }
    __device__ unsigned int key(int j) const { return keys[j]; }
    __device__ int index(int j) const { return idx[j]; }
};

// Bitonic sort of n elements (any n >= 1), "flip" variant: every merge orders its halves the same way, so the
// virtual padding up to the next power of two would never move and its comparisons are simply skipped.
template <class S>
__device__ void raft_block_sort(const S& s, int n)
{
    int p = 1;
    while (p < n) p <<= 1;
    const int pairs = p >> 1;
    for (int size = 2; size <= p; size <<= 1)
    {
        const int half = size >> 1;
        for (int q = (int)threadIdx.x; q < pairs; q += (int)blockDim.x)
        {
            const int blk = q / half, pos = q - blk * half;
            const int i = blk * size + pos, j = blk * size + size - 1 - pos;
            if (j < n) s.order(i, j);
        }
        __syncthreads();
        for (int stride = half >> 1; stride > 0; stride >>= 1)
        {
            for (int q = (int)threadIdx.x; q < pairs; q += (int)blockDim.x)
            {
                const int blk = q / stride;
                const int i = blk * 2 * stride + (q - blk * stride), j = i + stride;
                if (j < n) s.order(i, j);
            }
            __syncthreads();
        }
    }
}

// Row visitor of the gather step: places every key > T at the next free slot below nGt, and the first `need`
// keys == T (in index order) at nGt.. . The running counts gtBase / eqBase are the same in every thread.
template <class S>
struct RaftGather
{
    const S* s;
    unsigned int* warpSums;
    unsigned int threshold, need, nGt, gtBase, eqBase;

    __device__ bool operator()(int first, const float* v, int cnt)
    {
        bool unused = false;
        unsigned int keys[4];
        unsigned int gt = 0, eq = 0;
        for (int e = 0; e < 4; e++)
        {
            keys[e] = 0u;
            if (e < cnt)
            {
                keys[e] = raft_key_of(v[e], unused);
                gt += keys[e] > threshold ? 1u : 0u;
                eq += keys[e] == threshold ? 1u : 0u;
            }
        }
        unsigned int total;
        const unsigned int excl = raft_block_exclusive_scan(gt | (eq << 16), warpSums, total);
        unsigned int gSlot = gtBase + (excl & 0xffffu), eSlot = eqBase + (excl >> 16);
        for (int e = 0; e < cnt; e++)
        {
            if (keys[e] > threshold) s->put((int)gSlot++, keys[e], first + e);
            else if (keys[e] == threshold)
            {
                if (eSlot < need) s->put((int)(nGt + eSlot), keys[e], first + e);
                eSlot++;
            }
        }
        gtBase += total & 0xffffu;
        eqBase += total >> 16;
        return !(gtBase >= nGt && eqBase >= need);
    }
};

// Row visitor of one radix-select pass: histogram of digit (key >> shift) & 255 over the keys that match the
// digits fixed so far, with warp-aggregated shared-memory atomics.
struct RaftHistogram
{
    unsigned int* hist;
    unsigned int prefix, mask;
    int shift;
    bool checkFinite, bad;

    __device__ bool operator()(int, const float* v, int cnt)
    {
        const unsigned int lane = raft_lane();
        for (int e = 0; e < 4; e++)
        {
            bool take = false;
            unsigned int bin = 0xffffffffu;
            if (e < cnt)
            {
                bool b = false;
                const unsigned int key = raft_key_of(v[e], b);
                if (checkFinite && b) bad = true;
                if ((key & mask) == prefix)
                {
                    take = true;
                    bin = (key >> shift) & 255u;
                }
            }
            // after the first pass few keys still match the prefix: skip the (costly) match when none in the warp does
            if (__ballot_sync(RAFT_FULL_MASK, take) == 0u) continue;
            const unsigned int peers = __match_any_sync(RAFT_FULL_MASK, bin);
            if (take && lane == (unsigned int)(__ffs((int)peers) - 1))
                atomicAdd(&hist[bin], (unsigned int)__popc(peers));
        }
        return true;
    }
};

// Gathers the survivors (keys > T, then the first `need` keys == T in index order), sorts them, and writes
// indices and probabilities.
template <class S>
__device__ void raft_topk_finish(const float* row, int vocab, int k, float temperature, unsigned int threshold,
                                 int need, const S& s, int* outIdx, float* outProb, unsigned int* warpSums,
                                 double* scratch)
{
    RaftGather<S> gather;
    gather.s = &s;
    gather.warpSums = warpSums;
    gather.threshold = threshold;
    gather.need = (unsigned int)need;
    gather.nGt = (unsigned int)(k - need);
    gather.gtBase = 0u;
    gather.eqBase = 0u;
    raft_visit_row(row, vocab, gather);
    __syncthreads();

    raft_block_sort(s, k);

    // softmax over the k kept, at temperature tau; the first survivor is the largest.
    const float xmax = raft_float_of(s.key(0));
    double local = 0.0;
    for (int j = (int)threadIdx.x; j < k; j += (int)blockDim.x)
        local += (double)expf((raft_float_of(s.key(j)) - xmax) / temperature);
    const double sum = raft_block_sum(local, scratch); // contains __syncthreads: every read of key 0 is done
    for (int j = (int)threadIdx.x; j < k; j += (int)blockDim.x)
    {
        const float x = raft_float_of(s.key(j));
        const int index = s.index(j);
        outIdx[j] = index;
        outProb[j] = (float)((double)expf((x - xmax) / temperature) / sum);
    }
}

// ------------------------------------------------------------------------------------------- kernel

extern "C" __global__ void raft_topk_softmax(const float* __restrict__ logits, int rows, int vocab, int k,
                                             float temperature, int* __restrict__ indices,
                                             float* __restrict__ probs, int* __restrict__ status)
{
    extern __shared__ __align__(16) unsigned char raft_dyn_smem[];
    __shared__ unsigned int hist[256];
    __shared__ unsigned int warpSums[32];
    __shared__ double scratch[32];
    __shared__ unsigned int sPrefix, sMask, sRem;

    const int r = (int)blockIdx.x;
    if (r >= rows) return;
    const float* row = logits + (long long)r * vocab;
    int* outIdx = indices + (long long)r * k;
    float* outProb = probs + (long long)r * k;
    const unsigned int lane = raft_lane();

    if (threadIdx.x == 0)
    {
        sPrefix = 0u;
        sMask = 0u;
        sRem = (unsigned int)k;
    }
    bool bad = false;

    // ---- radix select of the k-th largest key, 8 bits per pass
    for (int shift = 24; shift >= 0; shift -= 8)
    {
        for (int i = (int)threadIdx.x; i < 256; i += (int)blockDim.x) hist[i] = 0u;
        __syncthreads();
        const unsigned int prefix = sPrefix, mask = sMask;
        RaftHistogram histogram;
        histogram.hist = hist;
        histogram.prefix = prefix;
        histogram.mask = mask;
        histogram.shift = shift;
        histogram.checkFinite = shift == 24;
        histogram.bad = false;
        raft_visit_row(row, vocab, histogram);
        bad |= histogram.bad;
        __syncthreads();
        if (raft_warp() == 0u)
        {
            // lane owns bins [8*lane, 8*lane + 8); find the bin holding the sRem-th largest remaining key.
            const unsigned int rem = sRem;
            unsigned int c[8], own = 0;
            for (int b = 0; b < 8; b++)
            {
                c[b] = hist[lane * 8u + (unsigned int)b];
                own += c[b];
            }
            unsigned int suffix = own; // keys in bins of this lane and above
            for (unsigned int o = 1; o < 32u; o <<= 1)
            {
                unsigned int y = __shfl_down_sync(RAFT_FULL_MASK, suffix, o);
                if (lane + o < 32u) suffix += y;
            }
            const unsigned int above = suffix - own;
            if (above < rem && rem <= suffix)
            {
                unsigned int acc = above;
                for (int b = 7; b >= 0; b--)
                {
                    if (acc + c[b] >= rem)
                    {
                        const unsigned int bin = lane * 8u + (unsigned int)b;
                        sRem = rem - acc;
                        sPrefix = prefix | (bin << shift);
                        sMask = mask | (255u << shift);
                        break;
                    }
                    acc += c[b];
                }
            }
        }
        __syncthreads();
    }
    const unsigned int threshold = sPrefix;
    const int need = (int)sRem;
    bad = __syncthreads_or(bad ? 1 : 0) != 0;

    if (raft_dynamic_smem_bytes() >= (unsigned int)k * 8u)
    {
        RaftSharedSurvivors s;
        s.c = reinterpret_cast<unsigned long long*>(raft_dyn_smem);
        raft_topk_finish(row, vocab, k, temperature, threshold, need, s, outIdx, outProb, warpSums, scratch);
    }
    else
    {
        RaftGlobalSurvivors s;
        s.idx = outIdx;
        s.keys = reinterpret_cast<unsigned int*>(outProb);
        raft_topk_finish(row, vocab, k, temperature, threshold, need, s, outIdx, outProb, warpSums, scratch);
    }
    if (status != 0 && threadIdx.x == 0) status[r] = bad ? 1 : 0;
}
