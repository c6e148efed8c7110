using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Raft.Kernels;

namespace Raft.GpuBench;

/// <summary>
/// The ILGPU path: <see cref="IlgpuKernels"/> on ILGPU's CUDA accelerator. ILGPU 1.5's PTX backend takes exp and
/// log from CUDA's libdevice, found through <c>Context.Builder.LibDevice()</c>; when that fails the path is
/// skipped with the reason. Its device-resident calls synchronize on the host (they bring back a summary and
/// run validation kernels), so they are timed with a <see cref="Stopwatch"/> around the whole call.
/// </summary>
internal sealed class IlgpuBench : IDisposable
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;

    private IlgpuBench(Context context, Accelerator accelerator)
    {
        _context = context;
        _accelerator = accelerator;
        Kernels = new IlgpuKernels(accelerator);
    }

    public IlgpuKernels Kernels { get; }

    /// <summary>Makes ILGPU's context current on this thread (the CUDA C path makes its own current per call).</summary>
    public void Activate() => _accelerator.Bind();

    public string Description => _accelerator.ToString() ?? "ILGPU CUDA accelerator";

    /// <summary>Opens ILGPU's CUDA accelerator with libdevice, or returns null with the reason.</summary>
    public static IlgpuBench? TryOpen(int ordinal, out string reason)
    {
        Context? context = null;
        try
        {
            try
            {
                context = Context.Create(b => b.Cuda().LibDevice().Optimize(OptimizationLevel.O2));
            }
            catch (Exception e)
            {
                reason = "ILGPU could not set up libdevice (it needs the CUDA toolkit's nvvm/libdevice; set CUDA_PATH to the toolkit): "
                    + e.GetType().Name + ": " + e.Message;
                return null;
            }
            var devices = context.GetCudaDevices();
            if (devices.Count <= ordinal)
            {
                context.Dispose();
                reason = $"ILGPU sees {devices.Count} CUDA device(s)";
                return null;
            }
            var accelerator = context.CreateCudaAccelerator(ordinal);
            reason = "";
            return new IlgpuBench(context, accelerator);
        }
        catch (Exception e)
        {
            context?.Dispose();
            reason = e.GetType().Name + ": " + e.Message;
            return null;
        }
    }

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
            for (int i = 0; i < ms.Length; i++)
            {
                before();
                _accelerator.Synchronize();
                long t0 = Stopwatch.GetTimestamp();
                call();
                _accelerator.Synchronize();
                ms[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            }
            return ms;
        }
        TimedOp Row(string op, double[] ms, double bytes) =>
            new(op, "raft ilgpu", ResultTable.Median(ms), ms.Min(), bytes, "device-resident call incl. its host sync (Stopwatch)");

        var topK = Time(() => { }, () => Kernels.TopKSoftmax(teacher.View, o.Rows, o.Vocab, k, o.Temperature, idx.View, probs.View));
        results.Add(Row("top-K softmax", topK, o.TopKBytes));
        var config = new DistillConfig(k, o.Temperature, DistillLossKind.ForwardKL);
        var kd = Time(() => student.View.CopyFrom(backup.View), () =>
            Kernels.Distill(student.View, o.Rows, o.Vocab, idx.View, probs.View, config, ArrayView<float>.Empty, student.View, ArrayView<float>.Empty, o.Rows));
        results.Add(Row("fused KD fwd-KL in place", kd, o.ReadWriteBytes));
        log.WriteLine("ILGPU timings done");
        return results;
    }

    public void Dispose()
    {
        Kernels.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }
}
