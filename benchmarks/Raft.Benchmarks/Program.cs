// Raft.Benchmarks: BenchmarkDotNet suites of the engine (see benchmarks/README.md).
//
//   dotnet <dll> distill [--small] [BenchmarkDotNet options]
//       The fused distillation-loss suite in one go: validation of every method on the benchmark shapes,
//       then DistillCpuBenchmarks, then benchmarks/results/distill-cpu.md.
//   dotnet <dll> --validate [--small]
//       Validation only (Fused, Scalar, OnnxRuntime, TorchSharp against the double-precision reference).
//   dotnet <dll> [--small] [BenchmarkDotNet options, e.g. --filter '*DistillCpu*' or --list flat]
//       BenchmarkSwitcher over every suite in the assembly.
//
// --small (or RAFT_BENCH_SMALL=1) swaps in tiny shapes for smoke tests; --rows N overrides the row count
// (2,048) for scaled-down checks. Both apply to every mode.
using BenchmarkDotNet.Running;
using Raft.Benchmarks.Distill;

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
bool validate = rest.Remove("--validate") | rest.Remove("validate");
bool distill = rest.Remove("distill");

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
