using Raft.Distributed;
using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Data;
using Raft.Pipeline.Refine;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline.MpiHost;

/// <summary>The scenarios; each returns its number of failed checks and prints one PASS or FAIL line per check.</summary>
internal sealed class Scenarios(ICollective mpi, string directory)
{
    private int _failures;

    private void Report(string name, bool ok, string detail = "")
    {
        Console.WriteLine($"{(ok ? "PASS" : "FAIL")} rank {mpi.Rank} {name}{(detail.Length > 0 ? " " + detail : "")}");
        if (!ok) _failures++;
    }

    private static readonly TrainExample[] Data =
    [
        new("What is 2+3?", "The answer is 5."),
        new("What is 4+4?", "The answer is 8."),
        new("What is 1+6?", "The answer is 7."),
        new("What is 3+3?", "The answer is 6."),
        new("What comes after 8?", "The answer is 9."),
        new("What comes after 3?", "The answer is 4."),
        new("Flip 12.", "The answer is 21."),
        new("Flip 34.", "The answer is 43."),
        new("What is 5+1?", "The answer is 6."),
        new("Flip 56.", "The answer is 65."),
    ];

    private static ModelConfig Config(int maxPositions = 96) => new()
    {
        ModelType = "raft", HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = ByteTokenizer.Instance.VocabSize, MaxPositionEmbeddings = maxPositions, TieWordEmbeddings = true, RmsNormEps = 1e-5,
        BosTokenId = ByteTokenizer.Instance.BosId, Architectures = ["LlamaForCausalLM"],
    };

    private static TrainOptions Options(bool raft, int batch)
    {
        var o = new TrainOptions
        {
            Method = TrainMethod.Sft, Steps = 3, BatchSize = batch, LearningRate = 1e-2, MinLearningRate = 1e-3,
            WarmupSteps = 1, Threads = 1, Seed = 3, ClipNorm = 1.0, CheckpointEvery = 1,
        };
        return raft
            ? o with { Method = TrainMethod.Raft, TopK = 8, RolloutMaxTokens = 6, RolloutTemperature = 1.0f, RolloutsPerPrompt = 2, EmaDecay = 0.5 }
            : o;
    }

    private static LlamaModel Copy(LlamaModel model) => new(model.Config, model.Parameters.Clone()) { Threads = 1 };

    private static TrainResult Train(LlamaModel student, LlamaModel teacherModel, bool raft, int batch, ICollective collective, string? runDirectory,
        Func<TrainOptions, TrainOptions>? change = null, bool resume = false, int bucketElements = GradientBucketer.DefaultBucketElements)
    {
        using var teacher = new EngineTeacher(Copy(teacherModel), new CpuKernels(1), "engine (frozen copy)");
        var options = Options(raft, batch);
        if (change is not null) options = change(options);
        var trainer = new Trainer(student, ByteTokenizer.Instance, ChatTemplate.Raft, Data, options, raft ? teacher : null, new CpuKernels(1))
        {
            Collective = collective,
            GradientBucketElements = bucketElements,
        };
        return trainer.Run(runDirectory, resume);
    }

    private static bool SameBits(TensorSet a, TensorSet b) =>
        a.Tensors.All(t => t.Data.AsSpan().SequenceEqual(b[t.Name].Data));

    /// <summary>
    /// The all-reduce overlapped with the backward (overlap_allreduce, buckets of 1,000 floats so that the tiny model
    /// has several): N ranks end with the same bits as N ranks reducing after the backward, for SFT and RAFT.
    /// </summary>
    public int Overlap()
    {
        foreach (bool raft in new[] { false, true })
        {
            var start = LlamaModel.CreateRandom(Config(), seed: 11);
            var blocking = Copy(start);
            var overlapped = Copy(start);
            Train(blocking, start, raft, 2, mpi, null, bucketElements: 1000);
            var result = Train(overlapped, start, raft, 2, mpi, null, o => o with { OverlapAllReduce = true }, bucketElements: 1000);
            Report($"overlap-{(raft ? "raft" : "sft")}-same-bits", SameBits(blocking.Parameters, overlapped.Parameters));
            Report($"overlap-{(raft ? "raft" : "sft")}-trained", result.Metrics.All(m => !m.Skipped) && !SameBits(start.Parameters, overlapped.Parameters));
        }
        return _failures;
    }

    /// <summary>
    /// ZeRO-1 (shard_optimizer): N ranks with and without sharding both give the weights of 1 process × batch 2N; with
    /// clipping off the sharded and unsharded runs are bit-identical, weights and checkpoint files alike (for 2 ranks a
    /// reduce-scatter and an all-reduce add the same two values, and AdamW's update is the same per element); a sharded
    /// run resumed with sharding from its step-2 checkpoint ends with the uninterrupted run's bits.
    /// </summary>
    public int Zero(bool raft)
    {
        const int perRank = 2;
        string name = "zero-" + (raft ? "raft" : "sft");
        var initial = LlamaModel.CreateRandom(Config(), 12);
        LlamaModel Start() => mpi.Rank == 0 ? Copy(initial) : LlamaModel.CreateRandom(Config(), 98); // the broadcast must fix rank 1's
        TrainOptions Sharded(TrainOptions o) => o with { ShardOptimizer = true };

        var sharded = Start();
        string shardedRun = Path.Combine(directory, name + "-sharded");
        var shardedResult = Train(sharded, initial, raft, perRank, mpi, shardedRun, Sharded);
        var plain = Start();
        Train(plain, initial, raft, perRank, mpi, Path.Combine(directory, name + "-plain"));
        var reference = Copy(initial);
        var single = Train(reference, initial, raft, perRank * mpi.WorldSize, new SingleProcessCollective(), null);

        double relSharded = RelativeDifference(reference.Parameters, sharded.Parameters), relPlain = RelativeDifference(reference.Parameters, plain.Parameters);
        Report($"{name} sharded weights after 3 steps", relSharded < 1e-5, $"relative difference to 1 process {relSharded:E2}");
        Report($"{name} unsharded weights after 3 steps", relPlain < 1e-5, $"relative difference to 1 process {relPlain:E2}");
        Report($"{name} weights moved", RelativeDifference(initial.Parameters, sharded.Parameters) > 1e-4);
        var (s3, d3) = (single.Metrics[^1], shardedResult.Metrics[^1]);
        Report($"{name} step 3 grad_norm is the global one", Math.Abs(s3.GradNorm - d3.GradNorm) <= 1e-4 * Math.Max(1, s3.GradNorm) && !d3.Skipped,
            $"{s3.GradNorm:R} / {d3.GradNorm:R}");

        // Clipping off: sharded == unsharded, bit for bit, and so are the checkpoint files.
        TrainOptions NoClip(TrainOptions o) => o with { ClipNorm = 0 };
        var shardedNoClip = Start();
        string a = Path.Combine(directory, name + "-noclip-sharded"), b = Path.Combine(directory, name + "-noclip-plain");
        Train(shardedNoClip, initial, raft, perRank, mpi, a, o => Sharded(NoClip(o)));
        var plainNoClip = Start();
        Train(plainNoClip, initial, raft, perRank, mpi, b, NoClip);
        Report($"{name} without clipping sharded and unsharded weights are bit-identical", SameBits(plainNoClip.Parameters, shardedNoClip.Parameters),
            $"relative difference {RelativeDifference(plainNoClip.Parameters, shardedNoClip.Parameters):E2}");
        mpi.Barrier();
        if (mpi.Rank == 0)
        {
            foreach (var checkpoint in new[] { Path.Combine(Trainer.CheckpointsDir, "step-0000001"), Trainer.FinalDir })
                foreach (var file in new[] { AdamW.StateFile, AdamW.ScalarsFile, Checkpoint.WeightsFile })
                {
                    byte[] x = File.ReadAllBytes(Path.Combine(a, checkpoint, file)), y = File.ReadAllBytes(Path.Combine(b, checkpoint, file));
                    Report($"{name} {checkpoint}/{file} of the sharded run is the unsharded run's file", x.AsSpan().SequenceEqual(y), $"{x.Length} / {y.Length} bytes");
                }
            // The gathered state is the full one: every moment tensor has values, and it loads in one process.
            var full = AdamW.LoadState(Path.Combine(shardedRun, Trainer.FinalDir), Checkpoint.Load(Path.Combine(shardedRun, Trainer.FinalDir)).Weights);
            Report($"{name} the sharded checkpoint's optimizer loads with every moment", full.StepCount == 3
                && full.SecondMoment.Tensors.All(t => t.Data.Any(v => v != 0)), $"step {full.StepCount}");
            // Interrupted after step 2: the final model and the step-3 checkpoint are gone.
            Directory.Delete(Path.Combine(shardedRun, Trainer.FinalDir), recursive: true);
        }
        mpi.Barrier();
        var resumed = Start();
        Train(resumed, initial, raft, perRank, mpi, shardedRun, Sharded, resume: true);
        Report($"{name} sharded run resumed from step 2 is bit-identical to the uninterrupted one", SameBits(sharded.Parameters, resumed.Parameters),
            $"relative difference {RelativeDifference(sharded.Parameters, resumed.Parameters):E2}");
        return _failures;
    }

    /// <summary>‖a − b‖ / ‖a‖ over every tensor.</summary>
    /// <summary>
    /// trainable = "mlp" under ZeRO-1 and plain data parallelism: the frozen tensors keep their initial bits on every rank,
    /// the trained ones match one process with the same pattern.
    /// </summary>
    public int Frozen()
    {
        foreach (bool raft in new[] { false, true }) Frozen(raft);
        return _failures;
    }

    private void Frozen(bool raft)
    {
        const int perRank = 2;
        string name = "frozen-" + (raft ? "raft" : "sft");
        var initial = LlamaModel.CreateRandom(Config(), 13);
        TrainOptions Mlp(TrainOptions o) => o with { Trainable = "mlp" };
        var reference = Copy(initial);
        Train(reference, initial, raft, perRank * mpi.WorldSize, new SingleProcessCollective(), null, Mlp);
        foreach (bool shard in new[] { true, false })
        {
            var student = Copy(initial);
            Train(student, initial, raft, perRank, mpi, null, o => Mlp(o) with { ShardOptimizer = shard });
            string kind = shard ? "sharded" : "unsharded";
            var frozen = student.Parameters.Tensors.Where(t => !t.Name.Contains("mlp", StringComparison.Ordinal)).ToArray();
            Report($"{name} {kind} frozen tensors keep their bits", frozen.Length > 0 && frozen.All(t => t.Data.AsSpan().SequenceEqual(initial.Parameters[t.Name].Data)));
            double rel = RelativeDifference(reference.Parameters, student.Parameters);
            Report($"{name} {kind} weights match 1 process", rel < 1e-5, $"relative difference {rel:E2}");
            Report($"{name} {kind} mlp weights moved", student.Parameters.Tensors.Where(t => t.Name.Contains("mlp", StringComparison.Ordinal))
                .All(t => !t.Data.AsSpan().SequenceEqual(initial.Parameters[t.Name].Data)));
        }
    }

    /// <summary>
    /// LoRA under data parallelism: only the adapters' gradients are all-reduced (and, with shard_optimizer, their AdamW
    /// state sharded); N ranks × batch b give 1 process × batch N·b's adapters, the base keeps its bits, with the
    /// all-reduce after the backward and overlapped with it.
    /// </summary>
    public int Lora()
    {
        foreach (bool raft in new[] { false, true }) Lora(raft);
        return _failures;
    }

    private void Lora(bool raft)
    {
        const int perRank = 2;
        string name = "lora-" + (raft ? "raft" : "sft");
        var initial = LlamaModel.CreateRandom(Config(), 17);
        static TrainOptions WithLora(TrainOptions o) => o with { LoraRank = 4, LoraAlpha = 8, LoraTargets = "all-linear" };
        var reference = Copy(initial);
        Train(reference, initial, raft, perRank * mpi.WorldSize, new SingleProcessCollective(), null, WithLora);
        foreach (var (kind, change) in new (string, Func<TrainOptions, TrainOptions>)[]
        {
            ("unsharded", o => WithLora(o)),
            ("sharded", o => WithLora(o) with { ShardOptimizer = true }),
            ("overlapped", o => WithLora(o) with { OverlapAllReduce = true }),
        })
        {
            var student = Copy(initial);
            Train(student, initial, raft, perRank, mpi, null, change, bucketElements: kind == "overlapped" ? 200 : GradientBucketer.DefaultBucketElements);
            Report($"{name} {kind} base keeps its bits", SameBits(initial.Parameters, student.Parameters));
            double rel = RelativeDifference(reference.Lora!.Parameters, student.Lora!.Parameters);
            Report($"{name} {kind} adapters match 1 process", rel < 1e-5, $"relative difference {rel:E2}");
            Report($"{name} {kind} adapters trained", student.Lora.Parameters.Tensors.Any(t => t.Name.EndsWith("lora_B.weight", StringComparison.Ordinal) && t.Data.Any(v => v != 0)));
        }
    }

    private static double RelativeDifference(TensorSet a, TensorSet b)
    {
        double diff = 0, norm = 0;
        foreach (var t in a.Tensors)
        {
            var u = b[t.Name];
            for (int i = 0; i < t.Length; i++)
            {
                double d = t.Data[i] - u.Data[i];
                diff += d * d;
                norm += (double)t.Data[i] * t.Data[i];
            }
        }
        return Math.Sqrt(diff / norm);
    }

    /// <summary>N ranks × batch 2 for 3 steps give the weights and metrics of 1 process × batch 2N.</summary>
    public int Equivalence(bool raft)
    {
        const int perRank = 2;
        string name = raft ? "raft" : "sft";
        var initial = LlamaModel.CreateRandom(Config(), 11);
        // Rank 1 starts from other weights: the broadcast of rank 0's before step 1 must make them equal.
        var student = mpi.Rank == 0 ? Copy(initial) : LlamaModel.CreateRandom(Config(), 99);
        student.Threads = 1;
        string run = Path.Combine(directory, name);
        var distributed = Train(student, initial, raft, perRank, mpi, run);

        var reference = Copy(initial);
        var single = Train(reference, initial, raft, perRank * mpi.WorldSize, new SingleProcessCollective(), null);

        double rel = RelativeDifference(reference.Parameters, student.Parameters);
        Report($"{name} weights after 3 steps", rel < 1e-5, $"relative difference {rel:E2}");
        Report($"{name} weights moved", RelativeDifference(initial.Parameters, student.Parameters) > 1e-4);
        for (int i = 0; i < single.Metrics.Count; i++)
        {
            var (s, d) = (single.Metrics[i], distributed.Metrics[i]);
            bool same = Math.Abs(s.Loss - d.Loss) <= 1e-5 * Math.Max(1, Math.Abs(s.Loss)) && Math.Abs(s.GradNorm - d.GradNorm) <= 1e-4 * Math.Max(1, s.GradNorm)
                        && s.Tokens == d.Tokens && Math.Abs((s.KdLoss ?? 0) - (d.KdLoss ?? 0)) <= 1e-5 * Math.Max(1, Math.Abs(s.KdLoss ?? 0))
                        && Math.Abs((s.RolloutLength ?? 0) - (d.RolloutLength ?? 0)) < 1e-9 && Math.Abs((s.WeightKd ?? 0) - (d.WeightKd ?? 0)) <= 1e-5;
            Report($"{name} step {i + 1} metrics are the global batch's", same,
                $"loss {s.Loss:R}/{d.Loss:R} grad_norm {s.GradNorm:R}/{d.GradNorm:R} tokens {s.Tokens}/{d.Tokens} rollout_len {s.RolloutLength}/{d.RolloutLength}");
        }
        mpi.Barrier();
        if (mpi.Rank == 0)
        {
            var lines = File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length;
            Report($"{name} metrics.jsonl has one line per step", lines == 3, $"{lines} lines");
            var final = Checkpoint.Load(Path.Combine(run, Trainer.FinalDir)).Weights;
            double ck = 0;
            foreach (var t in student.Parameters.Tensors)
                for (int i = 0; i < t.Length; i++) ck = Math.Max(ck, Math.Abs(t.Data[i] - final[t.Name].Data[i]));
            Report($"{name} final checkpoint holds the trained weights", ck == 0, $"max diff {ck}");
            Report($"{name} checkpoints per step", Directory.GetDirectories(Path.Combine(run, Trainer.CheckpointsDir)).Length == 2);
        }
        return _failures;
    }

    /// <summary>
    /// Evaluation during training on N ranks (eval_every 1, SFT and RAFT): only rank 0 evaluates and writes the eval lines,
    /// every rank ends with the bits of the same N-rank run without evaluation, and the last evaluation is the one of
    /// raft eval's evaluator on the final weights.
    /// </summary>
    public int Eval()
    {
        string set = Path.Combine(directory, "math.jsonl");
        if (mpi.Rank == 0)
        {
            Directory.CreateDirectory(directory);
            File.WriteAllText(set, string.Concat(Data.Take(3).Select(e =>
                System.Text.Json.JsonSerializer.Serialize(new { prompt = e.Prompt, answer = e.Answer, extractor = "last_number" }) + "\n")));
        }
        mpi.Barrier();
        foreach (bool raft in new[] { false, true })
        {
            string name = raft ? "raft" : "sft";
            var initial = LlamaModel.CreateRandom(Config(), 11);
            var plain = Copy(initial);
            Train(plain, initial, raft, 2, mpi, Path.Combine(directory, "plain-" + name));
            var evaluated = Copy(initial);
            string run = Path.Combine(directory, "eval-" + name);
            var result = Train(evaluated, initial, raft, 2, mpi, run, o => o with { EvalSet = [set], EvalEvery = 1, EvalMaxNewTokens = 4 });
            Report($"eval-{name}-same-bits", SameBits(plain.Parameters, evaluated.Parameters));
            Report($"eval-{name}-rank-0-only", mpi.Rank == 0 ? result.Evals.Select(e => e.Step).SequenceEqual([1, 2, 3]) : result.Evals.Count == 0,
                $"{result.Evals.Count} evaluations");
            mpi.Barrier();
            if (mpi.Rank == 0)
            {
                var lines = MetricsLog.ReadEvals(Path.Combine(run, Trainer.MetricsFile));
                var expected = Raft.Pipeline.Eval.ModelEvaluator.Evaluate(Copy(evaluated), ByteTokenizer.Instance, ChatTemplate.Raft,
                    Raft.Pipeline.Eval.EvalSet.Load(set), 4);
                Report($"eval-{name}-lines", lines.Select(e => e.Step).SequenceEqual([1, 2, 3])
                    && lines[^1].Eval["math"] == EvalSetMetrics.From(expected) && MetricsLog.Read(Path.Combine(run, Trainer.MetricsFile)).Count == 3,
                    $"{lines.Count} eval lines");
            }
        }
        return _failures;
    }

    /// <summary>
    /// gradient_accumulation_steps under data parallelism: N ranks × batch 1 × 2 micro-batches (plain and ZeRO-1) make
    /// the update of 1 process × batch 2N, for SFT and RAFT (EMA-balanced).
    /// </summary>
    public int Accumulation()
    {
        foreach (bool raft in new[] { false, true })
            foreach (bool shard in new[] { false, true })
            {
                string name = (raft ? "raft" : "sft") + (shard ? " zero1" : "");
                var initial = LlamaModel.CreateRandom(Config(), 11);
                var student = Copy(initial);
                var distributed = Train(student, initial, raft, 1, mpi, Path.Combine(directory, "acc-" + name.Replace(' ', '-')),
                    o => o with { GradientAccumulationSteps = 2, ShardOptimizer = shard });
                var reference = Copy(initial);
                var single = Train(reference, initial, raft, 2 * mpi.WorldSize, new SingleProcessCollective(), null);
                double rel = RelativeDifference(reference.Parameters, student.Parameters);
                Report($"{name} accumulated weights after 3 steps", rel < 1e-5, $"relative difference {rel:E2}");
                bool same = single.Metrics.Zip(distributed.Metrics).All(p => p.First.Tokens == p.Second.Tokens
                    && Math.Abs(p.First.Loss - p.Second.Loss) <= 1e-5 * Math.Max(1, Math.Abs(p.First.Loss)));
                Report($"{name} accumulated metrics are the global batch's", same);
            }
        return _failures;
    }

    /// <summary>A sharded refine over the ranks writes the file a single process writes, byte for byte.</summary>
    public int Refine()
    {
        var examples = Data.Select((e, i) => new DomainExample($"ex{i}", e.Prompt, e.Answer, "data.jsonl", i + 1)).Take(7).ToArray();
        var options = new RefineOptions { Candidates = 2, MaxNewTokens = 8, Temperature = 1.0f, Seed = 5, SimilarityThreshold = 0.05 };
        using var teacher = new EngineTeacher(LlamaModel.CreateRandom(Config(maxPositions: 256), 21), new CpuKernels(1), "engine");
        var refiner = new Refiner(teacher, ByteTokenizer.Instance, ChatTemplate.Raft, options);
        Directory.CreateDirectory(directory);
        string sharded = Path.Combine(directory, "refined-sharded.jsonl"), single = Path.Combine(directory, $"refined-single-{mpi.Rank}.jsonl");
        var summary = ShardedRefine.Run(refiner, mpi, examples, sharded);
        var reference = ShardedRefine.Run(refiner, new SingleProcessCollective(), examples, single);
        Report("refine summary counts every example", summary.Examples == examples.Length && summary.Candidates == examples.Length * 2
            && summary.Kept == reference.Kept && summary.Fallback == reference.Fallback, $"{summary.Examples} examples, {summary.Kept}/{reference.Kept} kept");
        mpi.Barrier();
        if (mpi.Rank == 0)
        {
            var a = File.ReadAllBytes(sharded);
            var b = File.ReadAllBytes(single);
            Report("refine 2-rank file is byte-identical to 1 process", a.AsSpan().SequenceEqual(b), $"{a.Length} / {b.Length} bytes, {File.ReadAllLines(sharded).Length} lines");
        }
        return _failures;
    }
}
