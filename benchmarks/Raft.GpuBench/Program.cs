using System.Globalization;
using System.Text;
using Raft.Cuda;
using Raft.GpuBench;
using Raft.Kernels;

// raft-gpubench: correctness first, then timings of the CUDA C loss kernels (and the ILGPU path) on one GPU.
// Exit codes: 0 ok, 1 correctness check failed, 2 bad arguments, 3 no CUDA device, 4 other error.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

// --gpu-tests [filter]: the repository's GPU-only xunit tests, run here without the .NET SDK (GpuTestRunner)
if (args.Length > 0 && args[0] == "--gpu-tests")
    return GpuTestRunner.Run([typeof(Raft.Cuda.Tests.GpuFixture).Assembly, typeof(Raft.Kernels.Cuda.Tests.CudaCFixture).Assembly, typeof(Raft.Gpu.Tests.CudaFixture).Assembly, typeof(Raft.Distributed.Tests.NcclTests).Assembly], args.Length > 1 ? args[1] : null, Console.Out) == 0 ? 0 : 1;
// --lab: every kernel variant timed side by side (KernelLab)
if (args.Length > 0 && args[0] == "--lab")
    return KernelLab.Run(args.Skip(1).ToArray(), Console.Out);

BenchOptions o;
try
{
    o = BenchOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine("raft-gpubench: " + e.Message);
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}
if (o.Help)
{
    Console.WriteLine(BenchOptions.Usage);
    return 0;
}

var report = new StringBuilder();
void Say(string line)
{
    Console.WriteLine(line);
    report.AppendLine(line);
}

if (o.TrainStep)
{
    int trainRc;
    try
    {
        trainRc = TrainStepBench.Run(o, Say);
    }
    catch (Exception e)
    {
        Console.Error.WriteLine($"raft-gpubench --train-step: {e.GetType().Name}: {e.Message}");
        Console.Error.WriteLine(e.StackTrace);
        trainRc = 4;
    }
    WriteReport(o, report);
    return trainRc;
}

if (o.HostCheck)
{
    Say($"# raft-gpubench --host-check ({o.CheckRows} rows, V {o.Vocab}, K {o.TopK}, τ {o.Temperature})");
    var hostCheck = new CorrectnessCheck(o);
    var cpu = hostCheck.Check(new CpuKernels(), "raft cpu");
    CheckResult ilgpuCpu;
    using (var ik = IlgpuKernels.CreateCpu()) ilgpuCpu = hostCheck.Check(ik, "raft ilgpu (cpu accelerator)");
    Say(CheckResult.Header);
    Say(cpu.Format(o.Tolerance));
    Say(ilgpuCpu.Format(o.Tolerance));
    WriteReport(o, report);
    return cpu.Passed(o.Tolerance) && ilgpuCpu.Passed(o.Tolerance) ? 0 : 1;
}

// One context for the run: ILGPU's accelerator owns it and the CUDA C kernels launch in it (GpuSession).
var session = GpuSession.TryOpen(o, out var reason);
if (session is null)
{
    Console.Error.WriteLine("raft-gpubench: no CUDA device: " + reason);
    return 3;
}

try
{
    using (session)
    {
        var device = session.Device;
        if (!NvrtcCompiler.IsAvailable)
        {
            Console.Error.WriteLine("raft-gpubench: no NVRTC: " + NvrtcCompiler.UnavailableReason);
            return 3;
        }
        Say($"# raft-gpubench: {device}");
        Say($"driver {CudaDevice.DriverVersion}, NVRTC {NvrtcCompiler.Version} ({NvrtcCompiler.LibraryName}), {device.TotalMemoryBytes / 1e9:F1} GB, {Environment.ProcessorCount} CPU cores");
        Say($"shapes: {o.ShapeText}; warm-up {o.Warmup}, median of {o.Repetitions} (ILGPU {o.IlgpuRepetitions})");
        Say($"context: {session.ContextNote}");
        Say("");

        var cacheDir = Path.Combine(Path.GetTempPath(), "raft-gpubench-ptx");
        var cache = new PtxCache(Environment.GetEnvironmentVariable(PtxCache.DirectoryVariable) is { Length: > 0 } d ? d : cacheDir);
        using var kernels = CudaLossKernels.Load(device, cache);
        Say($"kernels compiled for {kernels.Architecture} (PTX cache {cache.Directory})");

        // ---- correctness first
        Console.WriteLine($"correctness: {o.CheckRows} rows of fresh random data at V {o.Vocab}, K {o.TopK} …");
        var check = new CorrectnessCheck(o);
        var checks = new List<CheckResult> { check.Check(device, kernels), check.Check(new CpuKernels(), "raft cpu (host)") };
        CheckResult? zeroCopyCheck = session.Accelerator is null ? null : check.CheckOnIlgpuBuffers(kernels);
        if (zeroCopyCheck is not null) checks.Add(zeroCopyCheck);
        CheckResult? ilgpuCheck = null;
        IlgpuBench? ilgpu = session.Ilgpu;
        if (ilgpu is null)
            Say("ILGPU path skipped: " + session.IlgpuNote);
        else
        {
            Say($"ILGPU: {ilgpu.Description}");
            ilgpuCheck = check.Check(ilgpu.Kernels, "raft ilgpu (cuda)");
            checks.Add(ilgpuCheck);
        }
        Say("");
        Say($"## Correctness vs ReferenceKernels ({o.CheckRows} rows; tolerance {o.Tolerance:g} relative)");
        Say("");
        Say(CheckResult.Header);
        foreach (var c in checks) Say(c.Format(o.Tolerance));
        Say("");
        // a path that threw (for example ILGPU's PTX rejected by this driver) is reported, not counted as wrong numbers,
        // except for the CUDA C kernels, which must run
        bool failed = !checks[0].Passed(o.Tolerance) || checks.Skip(1).Any(c => c.Error is null && !c.Passed(o.Tolerance));
        if (!checks[0].Passed(o.Tolerance))
        {
            Say("FAIL: the CUDA C kernels disagree with the reference; no timings.");
            WriteReport(o, report);
            return 1;
        }

        // ---- timings
        Console.WriteLine("timing the CUDA C kernels …");
        var rows = CudaBench.Run(device, kernels, cache, o, Console.Out);
        if (zeroCopyCheck is not null)
        {
            if (zeroCopyCheck.Passed(o.Tolerance))
            {
                try
                {
                    rows.AddRange(CudaBench.RunOnIlgpuBuffers(device, kernels, cache, o, Console.Out));
                }
                catch (Exception e)
                {
                    Say($"zero-copy timings (CUDA C on ILGPU buffers) failed: {e.GetType().Name}: {e.Message}");
                }
            }
            else Say("zero-copy timings skipped: the CUDA C kernels on ILGPU buffers did not pass their check.");
        }
        if (ilgpu is not null)
        {
            if (ilgpuCheck is not null && ilgpuCheck.Passed(o.Tolerance))
            {
                try
                {
                    rows.AddRange(ilgpu.Run(o, Console.Out));
                }
                catch (Exception e)
                {
                    Say($"ILGPU timings failed: {e.GetType().Name}: {e.Message}");
                }
            }
            else Say("ILGPU timings skipped: its correctness check did not pass or did not run.");
        }
        Say($"## Timings ({o.ShapeText})");
        Say("");
        Say("GB/s = bytes / median time (1 GB = 10⁹ B); bytes = rows·V·4 read + rows·V·4 written except where noted; % of copy = GB/s over kernels/copy.cu's.");
        Say("");
        Say(ResultTable.Format(rows).TrimEnd());
        Say("");
        if (failed) Say("FAIL: " + string.Join(", ", checks.Where(c => c.Error is null && !c.Passed(o.Tolerance)).Select(c => c.Implementation)) + " disagree(s) with the reference.");
        WriteReport(o, report);
        return failed ? 1 : 0;
    }
}
catch (Exception e)
{
    Console.Error.WriteLine($"raft-gpubench: {e.GetType().Name}: {e.Message}");
    Console.Error.WriteLine(e.StackTrace);
    WriteReport(o, report);
    return 4;
}

static void WriteReport(BenchOptions o, StringBuilder report)
{
    if (o.OutputPath is null) return;
    var dir = Path.GetDirectoryName(Path.GetFullPath(o.OutputPath));
    if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
    File.WriteAllText(o.OutputPath, report.ToString());
    Console.WriteLine($"report written to {o.OutputPath}");
}
