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

// ------------------------------------------------------------------------------------------- filter variant
//
//   extern "C" __global__ void raft_topk_softmax_filter(same arguments as raft_topk_softmax)
//
// Launch contract: grid = (rows, 1, 1); block = (RAFT_TF_THREADS, 1, 1) exactly; no dynamic shared memory;
// 1 <= k <= RAFT_TF_MAX_K. Same outputs as raft_topk_softmax, bit for bit in the indices (ties to the lower index).
//
// One read of the row from device memory (raft_topk_softmax reads it five times). Every element becomes the
// 64-bit composite c = (key << 32) | ~index, so that composites are distinct and a larger one comes first
// (larger logit, then lower index). The block streams the row in steps of RAFT_TF_THREADS * 4 * RAFT_TF_UNROLL
// elements and appends every composite above a running threshold theta to a candidate buffer in shared memory
// (warp-aggregated slot allocation). When the next step might overflow the buffer, a block-wide radix select over
// the buffer keeps exactly its k largest candidates and raises theta to the smallest of them: anything at or
// below theta already has k better elements and can never enter the top k. For a row in random order about
// k * ln(V / k) candidates pass after the first compaction, so almost every step only compares and moves on;
// an adversarial (ascending) row compacts every step and stays correct. At the end one more selection leaves
// exactly the k largest, which are sorted (bitonic) and turned into softmax(x / tau) accumulated in double.

#define RAFT_TF_THREADS 256
#define RAFT_TF_UNROLL 2 // float4 loads per thread per step (RAFT_TF_STEP must stay <= RAFT_TF_CAP / 2)
#define RAFT_TF_STEP (RAFT_TF_THREADS * 4 * RAFT_TF_UNROLL)
#define RAFT_TF_CAP 4096
#define RAFT_TF_MAX_K (RAFT_TF_CAP - RAFT_TF_STEP)

__device__ __forceinline__ unsigned long long raft_composite(unsigned int key, int index)
{
    return ((unsigned long long)key << 32) | (unsigned long long)(~(unsigned int)index);
}

// Appends the composites of this thread that exceed theta; counts in shared memory.
__device__ __forceinline__ void raft_tf_append(const unsigned long long* c, const bool* pass, int n,
                                               unsigned long long* buf, unsigned int* count)
{
    unsigned int mine = 0;
    for (int e = 0; e < n; e++) mine += pass[e] ? 1u : 0u;
    if (__any_sync(RAFT_FULL_MASK, mine != 0u) == 0) return;
    const unsigned int lane = raft_lane();
    unsigned int incl = mine;
    for (unsigned int o = 1; o < 32u; o <<= 1)
    {
        const unsigned int y = __shfl_up_sync(RAFT_FULL_MASK, incl, o);
        if (lane >= o) incl += y;
    }
    const unsigned int total = __shfl_sync(RAFT_FULL_MASK, incl, 31);
    unsigned int base = 0;
    if (lane == 31u) base = atomicAdd(count, total);
    base = __shfl_sync(RAFT_FULL_MASK, base, 31);
    unsigned int slot = base + incl - mine;
    for (int e = 0; e < n; e++)
        if (pass[e]) buf[slot++] = c[e];
}

// Keeps exactly the k largest of buf[0, *count) (k <= *count) at buf[0, k) and returns the smallest kept.
// Radix select on the 64-bit composites, 8 bits a pass from the top, stopping as soon as the bin holding the
// k-th largest is taken whole. Every thread calls; ends with the block synchronised.
__device__ unsigned long long raft_tf_compact(unsigned long long* buf, unsigned int* count, int k,
                                              unsigned int* hist, unsigned int* warpSums,
                                              unsigned long long* sPrefix, unsigned long long* sMask,
                                              unsigned int* sRem, unsigned int* sDone, unsigned long long* minScratch)
{
    const int t = (int)threadIdx.x;
    const unsigned int lane = raft_lane();
    __syncthreads();
    const int n = (int)*count;
    if (t == 0)
    {
        *sPrefix = 0ull;
        *sMask = 0ull;
        *sRem = (unsigned int)k;
        *sDone = n == k ? 1u : 0u;
    }
    __syncthreads();
    for (int shift = 56; shift >= 0 && *sDone == 0u; shift -= 8)
    {
        for (int i = t; i < 256; i += RAFT_TF_THREADS) hist[i] = 0u;
        __syncthreads();
        const unsigned long long prefix = *sPrefix, mask = *sMask;
        for (int i = t; i < n; i += RAFT_TF_THREADS)
        {
            const unsigned long long c = buf[i];
            if ((c & mask) == prefix) atomicAdd(&hist[(unsigned int)(c >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (raft_warp() == 0u)
        {
            const unsigned int rem = *sRem;
            unsigned int cnt[8], own = 0;
            for (int b = 0; b < 8; b++)
            {
                cnt[b] = hist[lane * 8u + (unsigned int)b];
                own += cnt[b];
            }
            unsigned int suffix = own;
            for (unsigned int o = 1; o < 32u; o <<= 1)
            {
                const unsigned int y = __shfl_down_sync(RAFT_FULL_MASK, suffix, o);
                if (lane + o < 32u) suffix += y;
            }
            const unsigned int above = suffix - own;
            if (above < rem && rem <= suffix)
            {
                unsigned int acc = above;
                for (int b = 7; b >= 0; b--)
                {
                    if (acc + cnt[b] >= rem)
                    {
                        const unsigned int bin = lane * 8u + (unsigned int)b;
                        *sRem = rem - acc;
                        *sPrefix = prefix | ((unsigned long long)bin << shift);
                        *sMask = mask | (255ull << shift);
                        if (acc + cnt[b] == rem) *sDone = 1u; // the whole bin is taken
                        break;
                    }
                    acc += cnt[b];
                }
            }
        }
        __syncthreads();
    }
    // kept = every composite whose masked bits are >= the prefix: exactly k of them (composites are distinct)
    const unsigned long long prefix = *sPrefix, mask = *sMask;
    const int per = RAFT_TF_CAP / RAFT_TF_THREADS;
    unsigned long long mine[RAFT_TF_CAP / RAFT_TF_THREADS];
    unsigned int keepMask = 0u, keepCount = 0u;
    unsigned long long localMin = ~0ull;
#pragma unroll
    for (int q = 0; q < per; q++)
    {
        const int i = t + q * RAFT_TF_THREADS;
        mine[q] = 0ull;
        if (i < n)
        {
            const unsigned long long c = buf[i];
            if ((c & mask) >= prefix)
            {
                mine[q] = c;
                keepMask |= 1u << q;
                keepCount++;
                if (c < localMin) localMin = c;
            }
        }
    }
    unsigned int total;
    const unsigned int excl = raft_block_exclusive_scan(keepCount, warpSums, total); // synchronises: reads of buf done
    unsigned int slot = excl;
#pragma unroll
    for (int q = 0; q < per; q++)
        if (keepMask & (1u << q)) buf[slot++] = mine[q];
    for (int o = 16; o > 0; o >>= 1)
    {
        const unsigned long long y = __shfl_xor_sync(RAFT_FULL_MASK, localMin, o);
        if (y < localMin) localMin = y;
    }
    if (lane == 0u) minScratch[raft_warp()] = localMin;
    if (t == 0) *count = (unsigned int)k;
    __syncthreads();
    unsigned long long theta = ~0ull;
    for (int w = 0; w < RAFT_TF_THREADS / 32; w++)
        if (minScratch[w] < theta) theta = minScratch[w];
    __syncthreads();
    return theta;
}

extern "C" __global__ __launch_bounds__(RAFT_TF_THREADS) void raft_topk_softmax_filter(const float* __restrict__ logits, int rows, int vocab, int k, float temperature,
                         int* __restrict__ indices, float* __restrict__ probs, int* __restrict__ status)
{
    __shared__ unsigned long long buf[RAFT_TF_CAP];
    __shared__ unsigned int hist[256];
    __shared__ unsigned int warpSums[32];
    __shared__ double scratch[32];
    __shared__ unsigned long long sPrefix, sMask, minScratch[RAFT_TF_THREADS / 32];
    __shared__ unsigned int sRem, sDone, sCount;

    const int r = (int)blockIdx.x;
    if (r >= rows || blockDim.x != RAFT_TF_THREADS) return;
    const int t = (int)threadIdx.x;
    const float* row = logits + (long long)r * vocab;
    int* outIdx = indices + (long long)r * k;
    float* outProb = probs + (long long)r * k;

    if (t == 0) sCount = 0u;
    __syncthreads();
    unsigned long long theta = 0ull; // nothing is below it until the first compaction
    bool bad = false;

    const unsigned long long addr = (unsigned long long)row;
    int head = (int)(((16u - (unsigned int)(addr & 15u)) & 15u) >> 2);
    if (head > vocab) head = vocab;
    const int body = (vocab - head) >> 2;
    const int tailStart = head + (body << 2);
    const int tail = vocab - tailStart;

    // scalar head and tail (fewer than 4 elements each) first: one step's worth at most
    {
        unsigned long long c[2];
        bool pass[2];
        c[0] = 0ull; c[1] = 0ull; pass[0] = false; pass[1] = false;
        if (t < head)
        {
            c[0] = raft_composite(raft_key_of(row[t], bad), t);
            pass[0] = true;
        }
        if (t < tail)
        {
            c[1] = raft_composite(raft_key_of(row[tailStart + t], bad), tailStart + t);
            pass[1] = true;
        }
        raft_tf_append(c, pass, 2, buf, &sCount);
    }
    // Software-pipelined: the loads of the next step are issued before this step's barriers and work, so that they
    // are in flight while the block synchronises (without it every step waits out a full memory latency).
    const float4* row4 = reinterpret_cast<const float4*>(row + head);
    const int stepVectors = RAFT_TF_THREADS * RAFT_TF_UNROLL;
    float4 cur[RAFT_TF_UNROLL], nxt[RAFT_TF_UNROLL];
#pragma unroll
    for (int u = 0; u < RAFT_TF_UNROLL; u++)
    {
        const int i = u * RAFT_TF_THREADS + t;
        cur[u] = i < body ? __ldg(row4 + i) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    for (int base = 0; base < body; base += stepVectors)
    {
#pragma unroll
        for (int u = 0; u < RAFT_TF_UNROLL; u++)
        {
            const int i = base + stepVectors + u * RAFT_TF_THREADS + t;
            nxt[u] = i < body ? __ldg(row4 + i) : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        __syncthreads(); // the previous step's appends are done
        const unsigned int filled = sCount;
        __syncthreads(); // every thread has read sCount before anyone appends again
        if (filled + RAFT_TF_STEP > RAFT_TF_CAP)
            theta = raft_tf_compact(buf, &sCount, k, hist, warpSums, &sPrefix, &sMask, &sRem, &sDone, minScratch);
        unsigned long long c[4 * RAFT_TF_UNROLL];
        bool pass[4 * RAFT_TF_UNROLL];
#pragma unroll
        for (int u = 0; u < RAFT_TF_UNROLL; u++)
        {
            const int i = base + u * RAFT_TF_THREADS + t;
            const bool in = i < body;
            const int first = head + 4 * i;
            const float v[4] = {cur[u].x, cur[u].y, cur[u].z, cur[u].w};
#pragma unroll
            for (int e = 0; e < 4; e++)
            {
                c[4 * u + e] = in ? raft_composite(raft_key_of(v[e], bad), first + e) : 0ull;
                pass[4 * u + e] = in && c[4 * u + e] > theta;
            }
        }
        raft_tf_append(c, pass, 4 * RAFT_TF_UNROLL, buf, &sCount);
#pragma unroll
        for (int u = 0; u < RAFT_TF_UNROLL; u++) cur[u] = nxt[u];
    }
    __syncthreads();
    if (sCount > (unsigned int)k)
        raft_tf_compact(buf, &sCount, k, hist, warpSums, &sPrefix, &sMask, &sRem, &sDone, minScratch);
    bad = __syncthreads_or(bad ? 1 : 0) != 0;

    RaftSharedSurvivors s;
    s.c = buf;
    raft_block_sort(s, k);
    const float xmax = raft_float_of(s.key(0));
    double local = 0.0;
    for (int j = t; j < k; j += RAFT_TF_THREADS)
        local += (double)expf((raft_float_of(s.key(j)) - xmax) / temperature);
    const double sum = raft_block_sum(local, scratch);
    for (int j = t; j < k; j += RAFT_TF_THREADS)
    {
        outIdx[j] = s.index(j);
        outProb[j] = (float)((double)expf((raft_float_of(s.key(j)) - xmax) / temperature) / sum);
    }
    if (status != 0 && t == 0) status[r] = bad ? 1 : 0;
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
