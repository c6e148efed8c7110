// Raft.Benchmarks: BenchmarkDotNet suites of the engine (see benchmarks/README.md).
//
//   dotnet <dll> distill [--small] [BenchmarkDotNet options]
//       The fused distillation-loss suite in one go: validation of every method on the benchmark shapes,
//       then DistillCpuBenchmarks, then benchmarks/results/distill-cpu.md.
//   dotnet <dll> --validate [--small]
//       Validation only (Fused, Scalar, OnnxRuntime, TorchSharp against the double-precision reference).
//   dotnet <dll> training [--small] [--larger-batch N] [--no-memory] [BenchmarkDotNet options]
//       The training suite in one go: engine-vs-TorchSharp validation (logits, loss, gradients; exits 1 on a
//       mismatch before anything is timed), peak RSS per (method, model) in fresh processes, TrainingCpuBenchmarks,
//       MatmulBenchmarks, then benchmarks/results/training-cpu.md.
//   dotnet <dll> --validate-training [--small]
//       The engine-vs-TorchSharp validation only.
//   dotnet <dll> training-memory <Engine|TorchSharp> <demo|larger> [--small]
//       (internal) one peak-RSS measurement; run by 'training' in a child process.
//   dotnet <dll> teacher [--small] [--no-memory] [BenchmarkDotNet options]
//       The teacher suite in one go: the ONNX scorer (one chunk, and chunks of 16 positions) against the engine's own
//       forward + top-K on the same exported model (exits 1 on a mismatch before anything is timed), peak RSS per
//       method in fresh processes, then TeacherCpuBenchmarks (positions/s).
//   dotnet <dll> teacher-memory <OnnxScorer|OnnxScorerChunked|Engine> [--small]
//       (internal) one peak-RSS measurement; run by 'teacher' in a child process.
//   mpirun -np 2 dotnet <dll> allreduce [--small] [--full] [--reps N] [--warmup N] [--out FILE] [--train-steps K] [--batch B] [--train-only]
//       MpiCollective.AllReduceSum against a direct MPI_Allreduce through the same interop, for the demo model's
//       gradient (0.82 M floats) and a 64 M-float slice of a 0.5B model's (all 494 M floats with --full): median
//       and spread of a Stopwatch harness (BenchmarkDotNet cannot run under mpirun), algorithm and bus bandwidth.
//       --train-steps K adds the median time of K data-parallel SFT steps of a demo-shaped model (without and with
//       ZeRO-1) and tokens/s at this world size; run at -np 1 (with --train-only) and -np 2 to compare.
//   dotnet <dll> sft-real [--small] [BenchmarkDotNet options]
//       The SFT step at Qwen2.5-0.5B's shape (batch 4 × 256): engine fp32 / bf16 / fp32 + gradient checkpointing vs
//       TorchSharp: peak RSS per method in fresh processes (their first-step losses validated against libtorch's; exits 1
//       on a mismatch), then RealShapeSftBenchmarks, then benchmarks/results/sft-real-shape-cpu.md.
//   dotnet <dll> sft-real-memory <method> [--small]
//       (internal) one fresh-process measurement; run by 'sft-real'.
//   dotnet <dll> [--small] [BenchmarkDotNet options, e.g. --filter '*DistillCpu*' or --list flat]
//       BenchmarkSwitcher over every suite in the assembly.
//
// --small (or RAFT_BENCH_SMALL=1) swaps in tiny shapes for smoke tests; --rows N overrides the row count
// (2,048) for scaled-down checks. Both apply to every mode. --larger-batch N lowers the larger training model's batch.
using BenchmarkDotNet.Running;
using Raft.Benchmarks.Distill;
using Raft.Benchmarks.Teacher;
using Raft.Benchmarks.Training;

if (args.Length > 0 && args[0] == "allreduce")
    return Raft.Benchmarks.Distributed.AllReduceBench.Run(args[1..]);
var rest = new List<string>(args);
if (rest.Remove("--small")) DistillShapes.Small = true;
int rowsAt = rest.IndexOf("--rows");
if (rowsAt >= 0)
{
    if (rowsAt + 1 >= rest.Count || !int.TryParse(rest[rowsAt + 1], out int rows) || rows < 1)
    {
        Console.Error.WriteLine("--rows needs a positive integer.");
        return 2;
    }
    DistillShapes.RowsOverride = rows;
    rest.RemoveRange(rowsAt, 2);
}
int batchAt = rest.IndexOf("--larger-batch");
if (batchAt >= 0)
{
    if (batchAt + 1 >= rest.Count || !int.TryParse(rest[batchAt + 1], out int lb) || lb < 1)
    {
        Console.Error.WriteLine("--larger-batch needs a positive integer.");
        return 2;
    }
    TrainingShapes.LargerBatchOverride = lb;
    rest.RemoveRange(batchAt, 2);
}
if (rest.Count >= 2 && rest[0] == "teacher-memory")
    return TeacherMemory.Child(rest[1]);
if (rest.Count >= 3 && rest[0] == "training-memory")
    return TrainingMemory.Child(rest[1], rest[2]);
if (rest.Count >= 2 && rest[0] == "sft-real-memory")
    return Raft.Benchmarks.RealShape.RealShapeMemory.Child(rest[1]);
if (rest.Remove("sft-real"))
{
    string load = Raft.Benchmarks.RealShape.RealShapeReport.LoadAverage();
    var c = Raft.Benchmarks.RealShape.RealShapeCase.Case;
    Console.WriteLine($"// {c.Name}: {c.Describe()}; libtorch {TorchLlama.Version}; load average {load}");
    var runs = Raft.Benchmarks.RealShape.RealShapeMemory.RunAll(Console.Out, DistillShapes.Small ? ["--small"] : []);
    var problems = Raft.Benchmarks.RealShape.RealShapeMemory.Validate(runs);
    foreach (var p in problems) Console.WriteLine($"// VALIDATION FAILED: {p}");
    if (problems.Count > 0) return 1;
    var realSummary = BenchmarkRunner.Run<Raft.Benchmarks.RealShape.RealShapeSftBenchmarks>(args: [.. rest]);
    string realReport = Raft.Benchmarks.RealShape.RealShapeReport.Write(realSummary, runs, load, problems);
    Console.WriteLine($"// Report: {realReport}");
    Console.WriteLine(File.ReadAllText(realReport));
    return realSummary.HasCriticalValidationErrors || realSummary.Reports.Any(r => !r.Success) ? 1 : 0;
}
bool validate = rest.Remove("--validate") | rest.Remove("validate");
bool distill = rest.Remove("distill");
bool validateTraining = rest.Remove("--validate-training");
bool training = rest.Remove("training");
bool noMemory = rest.Remove("--no-memory");
bool teacher = rest.Remove("teacher");

if (teacher)
{
    Console.WriteLine($"// {TeacherShapes.Describe()}; {Environment.ProcessorCount} threads");
    if (!TeacherValidation.Run(Console.Out)) return 1;
    if (!noMemory) TeacherMemory.RunAll(Console.Out, TeacherShapes.Small ? ["--small"] : []);
    var teacherSummary = BenchmarkRunner.Run<TeacherCpuBenchmarks>(args: [.. rest]);
    return teacherSummary.HasCriticalValidationErrors || teacherSummary.Reports.Any(r => !r.Success) ? 1 : 0;
}

if (validateTraining || training)
{
    Console.WriteLine($"// libtorch {TorchLlama.Version}, torch threads {Environment.ProcessorCount}");
    foreach (string c in TrainingShapes.CaseNames) Console.WriteLine($"// {c}: {TrainingShapes.Get(c).Describe()}");
    bool ok = TrainingValidation.Run(Console.Out);
    if (!ok) return 1;
    if (!training) return 0;
    if (!noMemory)
    {
        var childArgs = new List<string>();
        if (TrainingShapes.Small) childArgs.Add("--small");
        if (TrainingShapes.LargerBatchOverride > 0) childArgs.AddRange(["--larger-batch", TrainingShapes.LargerBatchOverride.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        TrainingMemory.RunAll(Console.Out, childArgs);
    }
    Console.WriteLine($"// {CpuPeak.Describe()}");
    var trainSummary = BenchmarkRunner.Run<TrainingCpuBenchmarks>(args: [.. rest]);
    var matmulSummary = BenchmarkRunner.Run<MatmulBenchmarks>(args: [.. rest]);
    string report = TrainingReport.Write(trainSummary, matmulSummary);
    Console.WriteLine($"// Training report: {report}");
    Console.WriteLine(TrainingReport.Render(trainSummary, matmulSummary));
    bool failed = new[] { trainSummary, matmulSummary }.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
    return failed ? 1 : 0;
}

if (validate || distill)
{
    Console.WriteLine($"// Fused kernel: {FusedKernel.Create().GetType().FullName}");
    bool ok = DistillValidation.Run(Console.Out);
    if (!distill) return ok ? 0 : 1;
}
if (distill)
{
    var summary = BenchmarkRunner.Run<DistillCpuBenchmarks>(args: [.. rest]);
    return summary.HasCriticalValidationErrors || summary.Reports.Any(r => !r.Success) ? 1 : 0;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run([.. rest]);
return 0;
