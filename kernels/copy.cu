// Device-to-device fp32 copy: the memory-bandwidth ceiling that the loss kernels are measured against.
//
// Entry point
//   extern "C" __global__ void raft_copy_f32(
//       const float* src,   // [n]
//       float* dst,         // [n] out; must not overlap src
//       long long n)
//
// Launch contract
//   Any 1-D grid and block (grid-stride loop); the host uses 256 threads and a few blocks per multiprocessor.
//   When src and dst share their 16-byte phase the copy moves float4s (after a scalar head up to the first
//   16-byte boundary, before a scalar tail); otherwise it copies element by element.
//
// Self-contained: no headers; compiled at run time by NVRTC.

extern "C" __global__ void raft_copy_f32(const float* __restrict__ src, float* __restrict__ dst, long long n)
{
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const unsigned long long sa = (unsigned long long)src, da = (unsigned long long)dst;
    if (((sa ^ da) & 15ull) != 0ull)
    {
        for (long long i = tid; i < n; i += stride) dst[i] = src[i];
        return;
    }
    long long head = (long long)(((16ull - (sa & 15ull)) & 15ull) >> 2);
    if (head > n) head = n;
    const long long body = (n - head) >> 2;
    const long long tailStart = head + (body << 2);
    if (tid < head) dst[tid] = src[tid];
    const float4* s4 = reinterpret_cast<const float4*>(src + head);
    float4* d4 = reinterpret_cast<float4*>(dst + head);
    for (long long i = tid; i < body; i += stride) d4[i] = s4[i];
    for (long long i = tailStart + tid; i < n; i += stride) dst[i] = src[i];
}
