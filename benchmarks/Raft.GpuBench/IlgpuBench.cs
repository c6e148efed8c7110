using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Raft.Cuda;
using Raft.Kernels;
using CudaDevice = Raft.Cuda.CudaDevice;

namespace Raft.GpuBench;

/// <summary>
/// The ILGPU path: <see cref="IlgpuKernels"/> on ILGPU's CUDA accelerator, which owns the run's one context
/// (<see cref="GpuSession"/>). ILGPU 1.5's PTX backend takes exp and log from CUDA's libdevice; without it the session
/// skips this path with the reason. Each call is bracketed by a pair of CUDA events recorded on the accelerator's
/// default stream (the stream the ILGPU kernels launch on), in ILGPU's context. The device-resident calls bring back a
/// summary and run their validation kernels before returning, so the interval includes that small device-to-host copy
/// and the host's turnaround; a <see cref="Stopwatch"/> time of the whole call is kept in the note.
/// </summary>
internal sealed class IlgpuBench : IDisposable
{
    private readonly CudaAccelerator _accelerator;
    private readonly CudaDevice _device;

    /// <summary>The ILGPU kernels on <paramref name="accelerator"/>; <paramref name="device"/> wraps its context (for the events).</summary>
    public IlgpuBench(CudaAccelerator accelerator, CudaDevice device)
    {
        _accelerator = accelerator;
        _device = device;
        Kernels = new IlgpuKernels(accelerator);
    }

    public IlgpuKernels Kernels { get; }

    public string Description => _accelerator.ToString() ?? "ILGPU CUDA accelerator";

    private static void FillKernel(ArrayView<float> dst, ulong seed, float scale)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = Grid.GlobalIndex.X; i < dst.Length; i += stride)
        {
            ulong z = seed + (ulong)(i + 1) * 0x9E3779B97F4A7C15ul;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
            z ^= z >> 31;
            float sum = (z & 0xffff) + ((z >> 16) & 0xffff) + ((z >> 32) & 0xffff) + (float)(z >> 48) + 2f;
            dst[i] = (sum * (1f / 65536f) - 2f) * 1.7320508f * scale;
        }
    }

    /// <summary>Times top-K and the in-place forward KL at the full shapes through the device-resident overloads.</summary>
    public List<TimedOp> Run(BenchOptions o, TextWriter log)
    {
        long n = (long)o.Rows * o.Vocab;
        int k = o.TopK;
        var results = new List<TimedOp>();
        var fill = _accelerator.LoadStreamKernel<ArrayView<float>, ulong, float>(FillKernel);
        log.WriteLine($"ILGPU: allocating 3 × {n * 4.0 / 1e9:F2} GB");
        using var teacher = _accelerator.Allocate1D<float>(n);
        using var student = _accelerator.Allocate1D<float>(n);
        using var backup = _accelerator.Allocate1D<float>(n);
        using var idx = _accelerator.Allocate1D<int>((long)o.Rows * k);
        using var probs = _accelerator.Allocate1D<float>((long)o.Rows * k);
        var groups = _accelerator.NumMultiprocessors * 16;
        fill(new KernelConfig(groups, 256), teacher.View, o.Seed, 3f);
        fill(new KernelConfig(groups, 256), backup.View, o.Seed ^ 0xA5A5A5A5ul, 3f);
        _accelerator.Synchronize();

        using var start = new CudaEvent(_device);
        using var end = new CudaEvent(_device);
        var stream = _accelerator.DefaultStream;
        var wall = new List<double>();
        double[] Time(Action before, Action call)
        {
            // one warm-up (compiles the kernels); a call slower than 20 s is timed once more only
            before();
            _accelerator.Synchronize();
            long w = Stopwatch.GetTimestamp();
            call();
            _accelerator.Synchronize();
            bool slow = Stopwatch.GetElapsedTime(w).TotalSeconds > 20;
            if (slow) log.WriteLine($"ILGPU: warm-up call took {Stopwatch.GetElapsedTime(w).TotalSeconds:F1} s; timing 1 call");
            var ms = new double[slow ? 1 : o.IlgpuRepetitions];
            wall.Clear();
            for (int i = 0; i < ms.Length; i++)
            {
                before();
                _accelerator.Synchronize();
                long t0 = Stopwatch.GetTimestamp();
                start.Record(stream);
                call();
                end.Record(stream);
                end.Synchronize();
                wall.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                ms[i] = CudaEvent.ElapsedMilliseconds(start, end);
            }
            return ms;
        }
        TimedOp Row(string op, double[] ms, double bytes) =>
            new(op, "raft ilgpu", ResultTable.Median(ms), ms.Min(), bytes,
                $"CUDA events on ILGPU's stream around the device-resident call (incl. its summary read-back); Stopwatch median {ResultTable.Median(wall):F3} ms");

        var topK = Time(() => { }, () => Kernels.TopKSoftmax(teacher.View, o.Rows, o.Vocab, k, o.Temperature, idx.View, probs.View));
        results.Add(Row("top-K softmax", topK, o.TopKBytes));
        var config = new DistillSettings(k, o.Temperature, DistillLossKind.ForwardKL);
        var kd = Time(() => student.View.CopyFrom(backup.View), () =>
            Kernels.Distill(student.View, o.Rows, o.Vocab, idx.View, probs.View, config, ArrayView<float>.Empty, student.View, ArrayView<float>.Empty, o.Rows));
        results.Add(Row("fused KD fwd-KL in place", kd, o.ReadWriteBytes));
        log.WriteLine("ILGPU timings done");
        return results;
    }

    /// <summary>Disposes the ILGPU kernels (the accelerator and its context belong to the <see cref="GpuSession"/>).</summary>
    public void Dispose() => Kernels.Dispose();
}
