using System.Globalization;

namespace Raft.GpuBench;

/// <summary>
/// The GPU benchmark's settings, parsed from the command line by <see cref="Parse"/>. Linked source under tests/Shared:
/// compiled into benchmarks/Raft.GpuBench (raft-gpubench) and into tests/Raft.Cuda.Tests (GpuBenchTests), since a
/// benchmark may use test-side code but a test project never compiles a benchmarks/ file.
/// </summary>
internal sealed record BenchOptions
{
    /// <summary>Rows of the timed tensors (tokens).</summary>
    public int Rows { get; init; } = 16_384;

    /// <summary>Vocabulary size V.</summary>
    public int Vocab { get; init; } = 151_936;

    /// <summary>Teacher top-K.</summary>
    public int TopK { get; init; } = 64;

    /// <summary>Temperature τ.</summary>
    public float Temperature { get; init; } = 2f;

    /// <summary>Rows of the correctness check (fresh random data, at the benchmark's V and K).</summary>
    public int CheckRows { get; init; } = 64;

    /// <summary>Largest accepted relative error (normwise: max|Δ| / max|ref|; per row for losses).</summary>
    public double Tolerance { get; init; } = 1e-5;

    /// <summary>Untimed calls before the timed ones.</summary>
    public int Warmup { get; init; } = 3;

    /// <summary>Timed calls per op (the median is reported).</summary>
    public int Repetitions { get; init; } = 20;

    /// <summary>Timed calls per op on the ILGPU path (each synchronizes on the host).</summary>
    public int IlgpuRepetitions { get; init; } = 5;

    /// <summary>Skip the ILGPU path.</summary>
    public bool SkipIlgpu { get; init; }

    /// <summary>Run only the correctness check, on the CPU (CpuKernels and ILGPU's CPU accelerator), with no GPU.</summary>
    public bool HostCheck { get; init; }

    /// <summary>Time whole SFT training steps, CPU path vs the device model (<see cref="TrainStepBench"/>) instead of the loss kernels.</summary>
    public bool TrainStep { get; init; }

    /// <summary>Timed CPU steps per case of <c>--train-step</c> (after one warm-up; the median is reported).</summary>
    public int TrainCpuSteps { get; init; } = 3;

    /// <summary>CUDA device ordinal.</summary>
    public int Device { get; init; }

    /// <summary>Seed of the random inputs.</summary>
    public ulong Seed { get; init; } = 20261125;

    /// <summary>Where to write the markdown report (null: print only).</summary>
    public string? OutputPath { get; init; }

    /// <summary>Whether --help was asked for.</summary>
    public bool Help { get; init; }

    /// <summary>The shapes of <c>--small</c>: rows 1,024, V 32,000, K 64.</summary>
    public static BenchOptions Small => new() { Rows = 1024, Vocab = 32_000, TopK = 64 };

    /// <summary>The usage text.</summary>
    public const string Usage = """
        raft-gpubench [options]
          --small              rows 1024, V 32000, K 64 (applied first; later flags override)
          --rows N             rows of the timed tensors (default 16384)
          --vocab N            vocabulary size V (default 151936)
          --k N                teacher top-K (default 64)
          --tau X              temperature (default 2)
          --check-rows N       rows of the correctness check (default 64)
          --tol X              relative tolerance of the check (default 1e-5)
          --warmup N           untimed calls (default 3)
          --reps N             timed calls per op, median reported (default 20)
          --ilgpu-reps N       timed calls per ILGPU op (default 5)
          --no-ilgpu           skip the ILGPU path
          --host-check         correctness check only, CpuKernels and ILGPU's CPU accelerator vs the reference (no GPU)
          --train-step         whole SFT steps instead: CPU path (all cores) vs GpuLlamaModel on ILGPU CUDA, checked then
                               timed (--warmup/--reps for the GPU); with --host-check, the checks only, on ILGPU's CPU accelerator
          --train-cpu-steps N  timed CPU steps per --train-step case (default 3)
          --device N           CUDA device ordinal (default 0)
          --seed N             random seed
          --out FILE           also write the markdown report to FILE
          --help               this text
        exit codes: 0 ok, 1 correctness check failed, 2 bad arguments, 3 no CUDA device, 4 other error
        """;

    /// <summary>
    /// Parses <paramref name="args"/>. <c>--small</c> anywhere sets the small shapes first; other flags then
    /// override them. Throws <see cref="ArgumentException"/> naming the flag for an unknown flag, a missing
    /// value or a value out of range.
    /// </summary>
    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var o = args.Contains("--small") ? Small : new BenchOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string flag = args[i];
            string Value()
            {
                if (i + 1 >= args.Count) throw new ArgumentException($"{flag} needs a value.", flag);
                return args[++i];
            }
            int Int(int min)
            {
                var v = Value();
                if (!int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) || n < min)
                    throw new ArgumentException($"{flag} must be an integer ≥ {min}, got '{v}'.", flag);
                return n;
            }
            double Positive()
            {
                var v = Value();
                if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) || !(x > 0) || !double.IsFinite(x))
                    throw new ArgumentException($"{flag} must be a finite number > 0, got '{v}'.", flag);
                return x;
            }
            o = flag switch
            {
                "--small" => o,
                "--rows" => o with { Rows = Int(1) },
                "--vocab" => o with { Vocab = Int(1) },
                "--k" => o with { TopK = Int(1) },
                "--tau" => o with { Temperature = (float)Positive() },
                "--check-rows" => o with { CheckRows = Int(1) },
                "--tol" => o with { Tolerance = Positive() },
                "--warmup" => o with { Warmup = Int(0) },
                "--reps" => o with { Repetitions = Int(1) },
                "--ilgpu-reps" => o with { IlgpuRepetitions = Int(1) },
                "--no-ilgpu" => o with { SkipIlgpu = true },
                "--host-check" => o with { HostCheck = true },
                "--train-step" => o with { TrainStep = true },
                "--train-cpu-steps" => o with { TrainCpuSteps = Int(1) },
                "--device" => o with { Device = Int(0) },
                "--seed" => o with { Seed = ulong.Parse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture) },
                "--out" => o with { OutputPath = Value() },
                "--help" or "-h" => o with { Help = true },
                _ => throw new ArgumentException($"unknown option '{flag}' (see --help).", flag),
            };
        }
        if (o.TopK > o.Vocab) throw new ArgumentException($"--k must be ≤ --vocab ({o.Vocab}), got {o.TopK}.", "--k");
        if (o.CheckRows > o.Rows) o = o with { CheckRows = o.Rows };
        if (o.TopK > Raft.Cuda.CudaLossKernels.DistillSharedMaxK)
            throw new ArgumentException($"--k must be ≤ {Raft.Cuda.CudaLossKernels.DistillSharedMaxK} for the in-place distillation, got {o.TopK}.", "--k");
        return o;
    }

    /// <summary>Bytes a call over [rows, V] fp32 must move when it reads and writes the whole tensor once.</summary>
    public double ReadWriteBytes => 2.0 * Rows * (double)Vocab * sizeof(float);

    /// <summary>Bytes the top-K must move at least: read [rows, V] fp32, write [rows, K] int32 + fp32.</summary>
    public double TopKBytes => Rows * (double)Vocab * sizeof(float) + Rows * (double)TopK * 8;

    /// <summary>A one-line description of the shapes.</summary>
    public string ShapeText => string.Create(CultureInfo.InvariantCulture,
        $"rows {Rows:N0}, V {Vocab:N0}, K {TopK}, τ {Temperature}, one [rows, V] fp32 tensor = {Rows * (double)Vocab * 4 / 1e9:F2} GB");
}
