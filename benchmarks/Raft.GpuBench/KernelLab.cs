using System.Globalization;
using Raft.Cuda;

namespace Raft.GpuBench;

/// <summary>
/// The kernel lab (<c>raft-gpubench --lab [shape flags]</c>): every variant of the top-K softmax and of the fused
/// in-place distillation that this device can run, timed side by side on the same device-resident random data
/// with the two copies (kernels/copy.cu and cuMemcpyDtoD) as the bandwidth ceiling, and cross-checked against each
/// other on every row of the timed data (top-K indices identical; row losses and a sample of gradient rows within
/// 1e-5 of the two-pass kernel). The correctness against the double reference is the GPU tests' job
/// (<c>--gpu-tests</c>); this is where a new variant is timed, and where Auto's choice is checked against the winner.
/// </summary>
internal static class KernelLab
{
    public static int Run(string[] args, TextWriter log)
    {
        var o = BenchOptions.Parse(args);
        if (!CudaDevice.TryOpen(o.Device, out var device, out var reason))
        {
            log.WriteLine("raft-gpubench --lab: no CUDA device: " + reason);
            return 3;
        }
        using (device)
        {
            var cache = new PtxCache(Environment.GetEnvironmentVariable(PtxCache.DirectoryVariable) is { Length: > 0 } d
                ? d : Path.Combine(Path.GetTempPath(), "raft-gpubench-ptx"));
            using var kernels = CudaLossKernels.Load(device, cache);
            int rows = o.Rows, v = o.Vocab, k = o.TopK;
            long n = (long)rows * v;
            log.WriteLine($"# kernel lab: {device}, {kernels.Architecture}, opt-in shared memory {device.MaxSharedMemoryPerBlockOptIn} B");
            log.WriteLine($"shapes: {o.ShapeText}; warm-up {o.Warmup}, median of {o.Repetitions}");
            log.WriteLine($"Auto picks: top-K {(k <= CudaLossKernels.TopKFilterMaxK ? TopKVariant.Filter : TopKVariant.Radix)}, distillation {kernels.ChooseDistill(v, k)}");
            log.WriteLine();

            var fill = device.LoadModule(cache.GetOrCompile(CudaBench.FillSource, "gpubench_fill.cu", kernels.Architecture).Ptx).GetFunction("raft_bench_fill");
            void Fill(DeviceBuffer<float> b, ulong seed) =>
                fill.Launch((uint)(device.MultiprocessorCount * 16), 256, 0, new KernelArguments().Add(b.Pointer).Add(b.Length).Add(seed).Add(3.0f));
            using var teacher = device.Allocate<float>(n);
            using var student = device.Allocate<float>(n);
            using var backup = device.Allocate<float>(n);
            using var idx = device.Allocate<int>((long)rows * k);
            using var probs = device.Allocate<float>((long)rows * k);
            using var status = device.Allocate<int>(rows);
            using var rowLoss = device.Allocate<float>(rows);
            Fill(teacher, o.Seed);
            Fill(backup, o.Seed ^ 0xA5A5A5A5ul);
            device.Synchronize();

            using var start = new CudaEvent(device);
            using var end = new CudaEvent(device);
            double[] Time(Action before, Action call)
            {
                for (int i = 0; i < o.Warmup; i++)
                {
                    before();
                    call();
                }
                device.Synchronize();
                var ms = new double[o.Repetitions];
                for (int i = 0; i < ms.Length; i++)
                {
                    before();
                    start.Record();
                    call();
                    end.Record();
                    end.Synchronize();
                    ms[i] = CudaEvent.ElapsedMilliseconds(start, end);
                }
                return ms;
            }

            var table = new List<(string Op, string Variant, double Median, double Min, double Bytes, string Note)>();
            var copy = Time(() => { }, () => kernels.Copy(teacher.Pointer, student.Pointer, n));
            table.Add(("copy", "kernels/copy.cu", ResultTable.Median(copy), copy.Min(), o.ReadWriteBytes, ""));
            var memcpy = Time(() => { }, () => student.CopyFrom(teacher));
            table.Add(("copy", "cuMemcpyDtoD", ResultTable.Median(memcpy), memcpy.Min(), o.ReadWriteBytes, ""));
            int failures = 0;

            // ---- top-K variants, cross-checked on every row
            int[]? firstIdx = null;
            float[]? firstProbs = null;
            foreach (var variant in new[] { TopKVariant.Radix, TopKVariant.Filter })
            {
                if (variant == TopKVariant.Filter && k > CudaLossKernels.TopKFilterMaxK) continue;
                idx.CopyFrom(Enumerable.Repeat(-1, rows * k).ToArray());
                var ms = Time(() => { }, () => kernels.TopKSoftmax(teacher.Pointer, rows, v, k, o.Temperature, idx.Pointer, probs.Pointer, status.Pointer, variant));
                device.Synchronize();
                string note = "";
                var gotIdx = idx.ToArray();
                var gotProbs = probs.ToArray();
                if (status.ToArray().Any(s => s != 0)) { note = "FAIL: rows flagged non-finite"; failures++; }
                else if (firstIdx is null) { firstIdx = gotIdx; firstProbs = gotProbs; note = "reference for the cross-check"; }
                else
                {
                    int mismatches = gotIdx.Where((x, i) => x != firstIdx[i]).Count();
                    double pErr = MaxRelative(firstProbs!, gotProbs);
                    note = $"vs Radix: {mismatches} index mismatches, prob max rel err {pErr:E1}";
                    if (mismatches != 0 || !(pErr <= 1e-5)) { note = "FAIL: " + note; failures++; }
                }
                table.Add(("top-K softmax", variant.ToString(), ResultTable.Median(ms), ms.Min(), o.TopKBytes, note));
            }

            // ---- distillation variants, in place, on the top-K just computed
            float[]? firstLoss = null;
            float[]? firstGrad = null;
            int sampleRows = Math.Min(rows, 16);
            foreach (var variant in new[] { DistillVariant.TwoPass, DistillVariant.TwoPassL2, DistillVariant.Resident1, DistillVariant.Resident2, DistillVariant.Resident4, DistillVariant.Resident8, DistillVariant.Bulk2, DistillVariant.Bulk4, DistillVariant.Bulk8 })
            {
                if (!kernels.Supports(variant, v, k))
                {
                    table.Add(("fused KD fwd-KL in place", variant.ToString(), double.NaN, double.NaN, o.ReadWriteBytes, "not supported on this device / shape"));
                    continue;
                }
                var ms = Time(() => student.CopyFrom(backup), () =>
                    kernels.Distill(student.Pointer, student.Pointer, rows, v, idx.Pointer, probs.Pointer, k, DevicePointer.Null,
                        rows, o.Temperature, KdDivergence.ForwardKL, 0.5f, rowLoss.Pointer, status.Pointer, variant));
                device.Synchronize();
                var loss = rowLoss.ToArray();
                var grad = new float[(long)sampleRows * v];
                student.CopyTo(grad);
                string regs = "";
                string note;
                if (status.ToArray().Any(s => s != 0)) { note = "FAIL: rows flagged"; failures++; }
                else if (firstLoss is null) { firstLoss = loss; firstGrad = grad; note = "reference for the cross-check"; }
                else
                {
                    double lErr = MaxRelative(firstLoss, loss), gErr = MaxRelative(firstGrad!, grad);
                    note = $"vs TwoPass: row loss max rel err {lErr:E1}, gradient ({sampleRows} rows) {gErr:E1}";
                    if (!(lErr <= 1e-5) || !(gErr <= 1e-5)) { note = "FAIL: " + note; failures++; }
                }
                int c = CudaLossKernels.BlocksPerRow(variant);
                if (c > 0)
                {
                    int bytes = CudaLossKernels.IsBulk(variant) ? CudaLossKernels.BulkSharedBytes(c, v, k) : CudaLossKernels.ResidentSharedBytes(c, v, k);
                    regs = $"; {c} block(s)/row × {CudaLossKernels.ResidentThreads(bytes)} threads, {bytes / 1024.0:F1} KiB shared";
                }
                table.Add(("fused KD fwd-KL in place", variant.ToString(), ResultTable.Median(ms), ms.Min(), o.ReadWriteBytes, note + regs));
            }

            double copyGbs = o.ReadWriteBytes / (table[0].Median * 1e-3) / 1e9;
            double memcpyGbs = o.ReadWriteBytes / (table[1].Median * 1e-3) / 1e9;
            log.WriteLine("| op | variant | median ms | min ms | GB/s | % of copy.cu | % of cuMemcpyDtoD | note |");
            log.WriteLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |");
            foreach (var r in table)
            {
                double gbs = r.Bytes / (r.Median * 1e-3) / 1e9;
                string F(double x, string f) => double.IsFinite(x) ? x.ToString(f, CultureInfo.InvariantCulture) : "—";
                log.WriteLine($"| {r.Op} | {r.Variant} | {F(r.Median, "F3")} | {F(r.Min, "F3")} | {F(gbs, "F1")} | {F(100 * gbs / copyGbs, "F1")} | {F(100 * gbs / memcpyGbs, "F1")} | {r.Note} |");
            }
            log.WriteLine();
            log.WriteLine(failures == 0 ? "lab: every variant agrees" : $"lab: {failures} variant(s) FAILED the cross-check");
            return failures == 0 ? 0 : 1;
        }
    }

    private static double MaxRelative(float[] expected, float[] actual)
    {
        double maxRef = 0, maxErr = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxRef = Math.Max(maxRef, Math.Abs((double)expected[i]));
            double e = Math.Abs((double)expected[i] - actual[i]);
            if (double.IsNaN(e)) return double.NaN;
            maxErr = Math.Max(maxErr, e);
        }
        return maxRef == 0 ? maxErr : maxErr / maxRef;
    }
}
