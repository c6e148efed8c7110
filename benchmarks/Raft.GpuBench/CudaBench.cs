using ILGPU;
using ILGPU.Runtime;
using Raft.Cuda;
using CudaDevice = Raft.Cuda.CudaDevice;

namespace Raft.GpuBench;

/// <summary>
/// Times the CUDA C kernels at the full shapes on device-resident data: a device-side fill (random, never
/// zeros), then for each op warm-up calls and timed calls, each bracketed by its own pair of CUDA events on the
/// stream the kernels launch on (ILGPU's default stream when the device wraps ILGPU's context, the context's
/// default stream otherwise); the median is reported. The in-place distillation restores the student from a backup
/// (outside the timed window) before every call, so every call sees the same logits. <see cref="Run"/> uses buffers
/// of our own (cuMemAlloc); <see cref="RunOnIlgpuBuffers"/> the zero-copy path: ILGPU-allocated buffers passed to
/// the kernels' ArrayView overloads.
/// </summary>
internal static class CudaBench
{
    internal const string FillSource = """
        // Fills dst[0..n) with approximately normal numbers (Irwin–Hall of 4 uniforms) from a SplitMix64 hash of the index.
        extern "C" __global__ void raft_bench_fill(float* dst, long long n, unsigned long long seed, float scale)
        {
            const long long stride = (long long)gridDim.x * blockDim.x;
            for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
            {
                unsigned long long z = seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ull;
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                z ^= z >> 31;
                float a = (float)(z & 0xffffull), b = (float)((z >> 16) & 0xffffull);
                float c = (float)((z >> 32) & 0xffffull), d = (float)(z >> 48);
                dst[i] = ((a + b + c + d + 2.0f) * (1.0f / 65536.0f) - 2.0f) * 1.7320508f * scale;
            }
        }
        """;

    /// <summary>The implementation name of the zero-copy rows.</summary>
    public const string IlgpuBuffersImplementation = "raft cuda-c (ilgpu buffers)";

    private static CudaFunction LoadFill(CudaDevice device, CudaLossKernels kernels, PtxCache cache) =>
        device.LoadModule(cache.GetOrCompile(FillSource, "gpubench_fill.cu", kernels.Architecture).Ptx).GetFunction("raft_bench_fill");

    private static void Fill(CudaFunction fill, CudaDevice device, DevicePointer p, long length, ulong seed, IntPtr stream) =>
        fill.Launch((uint)(device.MultiprocessorCount * 16), 256, 0, new KernelArguments().Add(p).Add(length).Add(seed).Add(3.0f), stream);

    /// <summary>Warm-up calls, then <paramref name="reps"/> calls each between a pair of events recorded on <paramref name="stream"/>.</summary>
    private static double[] Time(CudaDevice device, BenchOptions o, IntPtr stream, int reps, Action before, Action call)
    {
        using var start = new CudaEvent(device);
        using var end = new CudaEvent(device);
        for (int i = 0; i < o.Warmup; i++)
        {
            before();
            call();
        }
        device.Synchronize();
        var ms = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            before();
            start.Record(stream);
            call();
            end.Record(stream);
            end.Synchronize();
            ms[i] = CudaEvent.ElapsedMilliseconds(start, end);
        }
        return ms;
    }

    public static List<TimedOp> Run(CudaDevice device, CudaLossKernels kernels, PtxCache cache, BenchOptions o, TextWriter log)
    {
        long n = (long)o.Rows * o.Vocab;
        int k = o.TopK;
        var fill = LoadFill(device, kernels, cache);
        IntPtr stream = device.IlgpuAccelerator is { } accelerator ? IlgpuInterop.StreamOf(accelerator) : IntPtr.Zero;
        void Fill(DeviceBuffer<float> b, ulong seed) => CudaBench.Fill(fill, device, b.Pointer, b.Length, seed, stream);

        log.WriteLine($"allocating 3 × {n * 4.0 / 1e9:F2} GB on the device");
        using var teacher = device.Allocate<float>(n);
        using var student = device.Allocate<float>(n);
        using var backup = device.Allocate<float>(n);
        using var idx = device.Allocate<int>((long)o.Rows * k);
        using var probs = device.Allocate<float>((long)o.Rows * k);
        using var status = device.Allocate<int>(o.Rows);
        using var rowLoss = device.Allocate<float>(o.Rows);
        Fill(teacher, o.Seed);
        Fill(backup, o.Seed ^ 0xA5A5A5A5ul);
        device.Synchronize();

        var results = new List<TimedOp>();
        double[] Time(int reps, Action before, Action call) => CudaBench.Time(device, o, stream, reps, before, call);
        TimedOp Row(string op, double[] ms, double bytes, string note) =>
            new(op, "raft cuda-c", ResultTable.Median(ms), ms.Min(), bytes, note);

        // the bandwidth ceiling: kernels/copy.cu and the driver's own copy
        var copy = Time(o.Repetitions, () => { }, () => kernels.Copy(teacher.Pointer, student.Pointer, n, stream));
        results.Add(Row("copy", copy, o.ReadWriteBytes, "kernels/copy.cu, teacher → scratch"));
        var memcpy = Time(o.Repetitions, () => { }, () => student.CopyFrom(teacher));
        results.Add(Row("copy (cuMemcpyDtoD)", memcpy, o.ReadWriteBytes, "driver copy"));

        var topK = Time(o.Repetitions, () => { }, () =>
            kernels.TopKSoftmax(teacher.Pointer, o.Rows, o.Vocab, k, o.Temperature, idx.Pointer, probs.Pointer, status.Pointer, stream));
        device.Synchronize();
        if (status.ToArray().Any(s => s != 0)) throw new InvalidOperationException("top-K flagged a row of the timed data as non-finite.");
        results.Add(Row("top-K softmax", topK, o.TopKBytes, "bytes = rows·V·4 read + rows·K·8 written"));

        // the distillation reads the top-K computed just above (the teacher of the run)
        var kd = Time(o.Repetitions, () => student.CopyFrom(backup), () =>
            kernels.Distill(student.Pointer, student.Pointer, o.Rows, o.Vocab, idx.Pointer, probs.Pointer, k, DevicePointer.Null,
                o.Rows, o.Temperature, KdDivergence.ForwardKL, 0.5f, rowLoss.Pointer, status.Pointer, stream));
        device.Synchronize();
        if (status.ToArray().Any(s => s != 0)) throw new InvalidOperationException("the distillation flagged a row of the timed data as non-finite.");
        results.Add(Row("fused KD fwd-KL in place", kd, o.ReadWriteBytes, "loss + gradient over the student"));
        return results;
    }

    /// <summary>
    /// The zero-copy path: the same ops on buffers that ILGPU allocated (Allocate1D), passed as ArrayViews to the
    /// kernels' ILGPU overloads and queued on ILGPU's default stream; needs a device from <see cref="CudaDevice.FromIlgpu"/>.
    /// </summary>
    public static List<TimedOp> RunOnIlgpuBuffers(CudaDevice device, CudaLossKernels kernels, PtxCache cache, BenchOptions o, TextWriter log)
    {
        var accelerator = device.IlgpuAccelerator ?? throw new InvalidOperationException("the zero-copy path needs ILGPU's context (CudaDevice.FromIlgpu).");
        long n = (long)o.Rows * o.Vocab;
        int k = o.TopK;
        var fill = LoadFill(device, kernels, cache);
        var stream = accelerator.DefaultStream;
        IntPtr s = IlgpuInterop.StreamOf(accelerator, stream);
        log.WriteLine($"zero-copy path: ILGPU allocates 3 × {n * 4.0 / 1e9:F2} GB");
        using var teacher = accelerator.Allocate1D<float>(n);
        using var student = accelerator.Allocate1D<float>(n);
        using var backup = accelerator.Allocate1D<float>(n);
        using var idx = accelerator.Allocate1D<int>((long)o.Rows * k);
        using var probs = accelerator.Allocate1D<float>((long)o.Rows * k);
        using var status = accelerator.Allocate1D<int>(o.Rows);
        using var rowLoss = accelerator.Allocate1D<float>(o.Rows);
        Fill(fill, device, IlgpuInterop.PointerOf(teacher.View), n, o.Seed, s);
        Fill(fill, device, IlgpuInterop.PointerOf(backup.View), n, o.Seed ^ 0xA5A5A5A5ul, s);
        accelerator.Synchronize();

        var results = new List<TimedOp>();
        double[] Time(Action before, Action call) => CudaBench.Time(device, o, s, o.Repetitions, before, call);
        TimedOp Row(string op, double[] ms, double bytes, string note) =>
            new(op, IlgpuBuffersImplementation, ResultTable.Median(ms), ms.Min(), bytes, note);

        var copy = Time(() => { }, () => kernels.Copy(teacher.View, student.View, stream));
        results.Add(Row("copy", copy, o.ReadWriteBytes, "kernels/copy.cu on ILGPU buffers"));
        var topK = Time(() => { }, () => kernels.TopKSoftmax(teacher.View, o.Rows, o.Vocab, k, o.Temperature, idx.View, probs.View, status.View, stream));
        accelerator.Synchronize();
        if (status.GetAsArray1D().Any(x => x != 0)) throw new InvalidOperationException("top-K flagged a row of the timed data as non-finite (ILGPU buffers).");
        results.Add(Row("top-K softmax", topK, o.TopKBytes, "ILGPU ArrayViews, ILGPU's stream"));
        var kd = Time(() => student.View.CopyFrom(stream, backup.View), () =>
            kernels.Distill(student.View, student.View, o.Rows, o.Vocab, idx.View, probs.View, k, ArrayView<float>.Empty,
                o.Rows, o.Temperature, KdDivergence.ForwardKL, 0.5f, rowLoss.View, status.View, stream));
        accelerator.Synchronize();
        if (status.GetAsArray1D().Any(x => x != 0)) throw new InvalidOperationException("the distillation flagged a row of the timed data as non-finite (ILGPU buffers).");
        results.Add(Row("fused KD fwd-KL in place", kd, o.ReadWriteBytes, "ILGPU ArrayViews, ILGPU's stream"));
        return results;
    }
}
