using System.Diagnostics;
using System.Globalization;
using System.Text;
using Raft.Distributed;

namespace Raft.Benchmarks.Distributed;

/// <summary>
/// The <c>allreduce</c> mode: <see cref="MpiCollective.AllReduceSum(Span{float})"/> against a direct MPI_Allreduce
/// (MPI_IN_PLACE, MPI_FLOAT, MPI_SUM) through the same interop without the wrapper, on message sizes of real gradients.
/// BenchmarkDotNet cannot run its child processes under mpirun, so this is a plain Stopwatch harness: every rank
/// starts a repetition after a barrier, the repetition's time is the slowest rank's (MPI_MAX), methods alternate
/// repetition by repetition, the buffer is refilled (untimed) before each one, and the table gives the median with the
/// min–max spread. Bandwidths as nccl-tests define them: algorithm bandwidth = bytes / time, bus bandwidth =
/// algbw · 2(N−1)/N (what a ring all-reduce moves over each link).
/// </summary>
internal static class AllReduceBench
{
    /// <summary>
    /// Runs the mode; args after "allreduce": [--small] [--full] [--reps N] [--warmup N] [--out FILE]
    /// [--train-steps K] [--batch B] [--train-only]. With --train-steps, also times K data-parallel SFT steps of a
    /// demo-shaped model (<see cref="TrainSteps"/>); --train-only skips the all-reduce table (for -np 1).
    /// </summary>
    public static int Run(IReadOnlyList<string> args)
    {
        bool small = args.Contains("--small") || Environment.GetEnvironmentVariable("RAFT_BENCH_SMALL") == "1";
        bool full = args.Contains("--full");
        int reps = IntOption(args, "--reps", small ? 5 : 20);
        int warmup = IntOption(args, "--warmup", small ? 1 : 3);
        string? outPath = StringOption(args, "--out");
        int trainSteps = IntOption(args, "--train-steps", 0);
        int batch = IntOption(args, "--batch", small ? 2 : 8);
        bool trainOnly = args.Contains("--train-only");

        // Gradient sizes: the demo model (0.8 M parameters, docs/demo.md) and a 0.5B-shaped model
        // (Qwen2.5-0.5B: 494,032,768 parameters; a 64 M-float slice by default, the whole with --full).
        (string Name, long Floats)[] sizes = small
            ? [("1 K floats", 1024), ("demo-sized / 8 (100 K)", 102_400), ("1 M floats", 1 << 20)]
            : full
                ? [("demo model gradient (0.82 M)", 819_200), ("0.5B model gradient (494 M)", 494_032_768)]
                : [("demo model gradient (0.82 M)", 819_200), ("0.5B model slice (64 M of 494 M)", 64L << 20)];

        using var mpi = new MpiCollective(new CollectiveOptions());
        if (mpi.Rank == 0)
            Console.WriteLine($"// allreduce: {mpi.WorldSize} ranks, host {mpi.HostName}, {Environment.ProcessorCount} cores visible, " +
                              $"MPI thread level {mpi.ThreadLevel}, {mpi.LibraryPath}; {warmup} warm-up + {reps} timed repetitions per method");
        var rows = new List<string>();
        foreach (var (name, floats) in trainOnly ? [] : sizes)
        {
            if (floats > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(args), floats, "message too large for one array");
            var source = new float[floats];
            var random = new Random(1234 + mpi.Rank);
            for (long i = 0; i < floats; i++) source[i] = (float)(random.NextDouble() * 2 - 1);
            var buffer = new float[floats];
            var times = new Dictionary<string, List<double>> { ["MpiCollective.AllReduceSum"] = [], ["MPI_Allreduce (direct)"] = [] };
            for (int rep = -warmup; rep < reps; rep++)
            {
                foreach (var method in times.Keys)
                {
                    source.AsSpan().CopyTo(buffer);
                    double seconds = Time(mpi, method.StartsWith("Mpi", StringComparison.Ordinal) ? () => mpi.AllReduceSum(buffer) : () => Direct(buffer));
                    if (rep >= 0) times[method].Add(seconds);
                }
            }
            foreach (var (method, list) in times)
            {
                list.Sort();
                double median = list[list.Count / 2], min = list[0], max = list[^1];
                double bytes = floats * 4.0;
                double algbw = bytes / median / 1e9, busbw = algbw * 2 * (mpi.WorldSize - 1) / mpi.WorldSize;
                rows.Add(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {floats:N0} | {bytes / (1 << 20):0.###} | {method} | {median * 1e3:0.###} | {min * 1e3:0.###} – {max * 1e3:0.###} | {algbw:0.###} | {busbw:0.###} |"));
            }
        }
        string? trainTable = trainSteps > 0 ? TrainSteps(mpi, trainSteps, batch, small) : null;
        if (mpi.Rank == 0 && trainTable is not null) Console.WriteLine(trainTable);
        if (mpi.Rank == 0 && !trainOnly)
        {
            var table = new StringBuilder();
            table.AppendLine($"All-reduce (sum, float32, in place) over {mpi.WorldSize} MPI ranks on {mpi.HostName} ({Environment.ProcessorCount} cores visible); " +
                             $"median of {reps} repetitions after {warmup} warm-up, spread min – max; time of the slowest rank.");
            table.AppendLine();
            table.AppendLine("| message | floats | MiB | method | median ms | spread ms | algbw GB/s | busbw GB/s |");
            table.AppendLine("|---|---:|---:|---|---:|---:|---:|---:|");
            foreach (var row in rows) table.AppendLine(row);
            Console.WriteLine(table.ToString());
            if (outPath is not null)
            {
                File.WriteAllText(outPath, "# All-reduce bandwidth (MPI, CPU)\n\n" + table + (trainTable is null ? "" : "\n" + trainTable));
                Console.WriteLine($"// written to {outPath}");
            }
        }
        return 0;
    }

    /// <summary>
    /// Data-parallel SFT steps of a demo-shaped model (models/demo-base's shape: hidden 128, 4 layers, byte vocabulary;
    /// random weights, synthetic arithmetic prompts), <paramref name="batch"/> prompts per rank (weak scaling: the
    /// global batch grows with the ranks), one thread per rank, without and with ZeRO-1. Step time is rank 0's (every
    /// step ends in collectives, so it is the slowest rank's up to the last one); the median over the steps after the
    /// first (JIT, first touch). Run it at -np 1 and -np 2 and compare tokens/s: 2 ranks' tokens/s over 1 rank's, divided
    /// by 2, is the scaling efficiency.
    /// </summary>
    private static string TrainSteps(MpiCollective mpi, int steps, int batch, bool small)
    {
        var config = new Raft.Model.ModelConfig
        {
            ModelType = "raft", HiddenSize = small ? 32 : 128, IntermediateSize = small ? 64 : 384, NumHiddenLayers = small ? 1 : 4,
            NumAttentionHeads = 4, NumKeyValueHeads = 2, VocabSize = Raft.Model.Tokenization.ByteTokenizer.Instance.VocabSize,
            MaxPositionEmbeddings = 160, TieWordEmbeddings = true, RmsNormEps = 1e-5,
            BosTokenId = Raft.Model.Tokenization.ByteTokenizer.Instance.BosId, Architectures = ["LlamaForCausalLM"],
        };
        var data = Enumerable.Range(0, 256).Select(i => new Raft.Pipeline.Training.TrainExample(
            $"What is {i % 17} + {i / 17}? Answer in a sentence.", $"The answer is {i % 17 + i / 17}, since {i % 17} plus {i / 17} makes {i % 17 + i / 17}.")).ToArray();
        var table = new StringBuilder();
        table.AppendLine($"Data-parallel SFT steps on {mpi.WorldSize} rank(s), host {mpi.HostName}: demo-shaped model ({config.HiddenSize} hidden, " +
                         $"{config.NumHiddenLayers} layers, byte vocabulary), {batch} prompts per rank, 1 thread per rank; median of steps 2..{steps}.");
        table.AppendLine();
        table.AppendLine("| ranks | global batch | optimizer | parameters | median step ms | tokens / step | tokens/s |");
        table.AppendLine("|---:|---:|---|---:|---:|---:|---:|");
        foreach (var (shard, overlap) in new[] { (false, true), (false, false), (true, false) })
        {
            if ((shard || !overlap) && mpi.WorldSize == 1) continue;
            var model = Raft.Model.LlamaModel.CreateRandom(config, 7);
            var options = new Raft.Pipeline.Training.TrainOptions
            {
                Method = Raft.Pipeline.Training.TrainMethod.Sft, Steps = steps, BatchSize = batch, Threads = 1, WarmupSteps = 1,
                LearningRate = 1e-3, MinLearningRate = 1e-4, ShardOptimizer = shard, OverlapAllReduce = overlap, Seed = 1,
            };
            var trainer = new Raft.Pipeline.Training.Trainer(model, Raft.Model.Tokenization.ByteTokenizer.Instance, Raft.Model.Tokenization.ChatTemplate.Raft,
                data, options) { Collective = mpi, GradientBucketElements = overlap ? 65_536 : Raft.Distributed.GradientBucketer.DefaultBucketElements };
            var metrics = trainer.Run().Metrics.Skip(1).ToList();
            var ms = metrics.Select(m => m.TrainSeconds * 1e3).Order().ToList();
            double median = ms[ms.Count / 2];
            long tokens = metrics[0].Tokens;
            long parameters = model.Parameters.Tensors.Sum(t => (long)t.Length);
            table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {mpi.WorldSize} | {batch * mpi.WorldSize} | {(shard ? "AdamW, ZeRO-1" : mpi.WorldSize == 1 ? "AdamW" : overlap ? "AdamW, all-reduce overlapped (buckets of 64 Ki floats)" : "AdamW, all-reduce after backward")} | {parameters:N0} | {median:0.#} | {tokens:N0} | {tokens / (median / 1e3):N0} |"));
        }
        return table.ToString();
    }

    private static double Time(MpiCollective mpi, Action call)
    {
        mpi.Barrier();
        long start = Stopwatch.GetTimestamp();
        call();
        Span<double> elapsed = [Stopwatch.GetElapsedTime(start).TotalSeconds];
        mpi.AllReduce(elapsed, ReduceOp.Max);
        return elapsed[0];
    }

    /// <summary>MPI_Allreduce through the interop, without MpiCollective (no checks, no chunking, no watchdog).</summary>
    private static unsafe void Direct(float[] buffer)
    {
        var api = MpiApi.Instance;
        fixed (float* p = buffer)
            api.Check(api.MPI_Allreduce((void*)MpiApi.InPlace, p, buffer.Length, api.Float, api.OpSum, api.CommWorld), "MPI_Allreduce");
    }

    private static int IntOption(IReadOnlyList<string> args, string name, int fallback)
    {
        var text = StringOption(args, name);
        return text is null ? fallback : int.Parse(text, CultureInfo.InvariantCulture);
    }

    private static string? StringOption(IReadOnlyList<string> args, string name)
    {
        for (int i = 0; i + 1 < args.Count; i++)
            if (args[i] == name) return args[i + 1];
        return null;
    }
}
