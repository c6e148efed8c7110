using ILGPU.Runtime;
using System.Diagnostics;
using Raft.Distributed;
using Raft.Gpu;
using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Data;
using Raft.Pipeline.Eval;
using Raft.Teacher;

namespace Raft.Pipeline.Training;

/// <summary>Raised when a run cannot go on (too many non-finite steps in a row, a resume that does not match).</summary>
public sealed class TrainingException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>What a finished run returns.</summary>
public sealed record TrainResult(int Steps, int SkippedSteps, IReadOnlyList<StepMetrics> Metrics, double Seconds)
{
    /// <summary>What was truncated to fit <see cref="TrainOptions.MaxLength"/> (null only in results made elsewhere).</summary>
    public TruncationReport? Truncation { get; init; }
    /// <summary>The evaluations on <see cref="TrainOptions.EvalSet"/> this run made (rank 0; empty without eval_set or on other ranks).</summary>
    public IReadOnlyList<EvalMetrics> Evals { get; init; } = [];
}

/// <summary>
/// The training loop shared by plain SFT and RAFT stage 2 (see <see cref="TrainMethod"/>). A step is four plain pieces
/// (docs/architecture.md): the data order (<see cref="BatchSchedule"/>), the step builder (<see cref="StepBuilder"/>:
/// rollouts → teacher top-K → a <see cref="PackedBatch"/>), the loss (<see cref="StepLoss"/>, a pure function of the
/// batch and the logits) and a student backend (<see cref="IStudentBackend"/>: CPU, ZeRO-1 or GPU; forward, backward,
/// clipping, AdamW); <see cref="RunDirectory"/> keeps the run's files. This class is the loop that calls them.
/// <para>A RAFT step, for a batch of B examples (prompt, fused answer):</para>
/// <list type="number">
/// <item>the student samples R rollouts per prompt (its chat template, <see cref="Generator"/> with a KV cache); the
/// randomness of rollout g of the run depends only on (seed, g), so a resumed run samples what the uninterrupted one would;</item>
/// <item>the teacher reads each rollout after <see cref="PromptTemplates.AnswerConditioned"/> (prompt + fused answer)
/// and writes its top-K at temperature τ at every rollout position straight into the packed batch;</item>
/// <item>one student forward over [B·R rollout sequences ; B fused-answer sequences], the distillation loss on the
/// rollout rows (<see cref="ILossKernels.Distill"/>) and the cross-entropy on the fused-answer rows, weighted by the
/// EMA balancer (or fixed weights), one backward, gradient clipping, AdamW.</item>
/// </list>
/// An SFT step is the cross-entropy part alone on (prompt, answer). A step whose loss or gradient is NaN or infinite
/// is skipped (the weights and optimizer are untouched) and counted; <see cref="TrainOptions.MaxNonFiniteSteps"/> in a
/// row stop the run with <see cref="TrainingException"/>.
/// <para>Data-parallel (<see cref="Collective"/> with a world of N ranks): <see cref="TrainOptions.BatchSize"/> is the
/// per-rank batch; the global batch of a step is the one a single process with batch BatchSize·N would take, and rank r
/// trains on its slice [r·b, (r+1)·b) (rollouts are seeded by their global sequence index, so sampling does not depend
/// on the rank). The losses are normalised by the global token counts, so the all-reduced sum of the ranks' gradients is
/// the gradient of the global-batch mean loss; the balancer, the clipping norm, the skip decision and the metrics are
/// global, and every rank takes the same AdamW step. Only rank 0 writes the run directory.</para>
/// </summary>
public sealed class Trainer
{
    /// <summary>The run directory's resolved configuration.</summary>
    public const string ConfigFile = RunDirectory.ConfigFile;
    /// <summary>The run directory's per-step metrics.</summary>
    public const string MetricsFile = RunDirectory.MetricsFile;
    /// <summary>The trainer's state inside a checkpoint directory.</summary>
    public const string StateFile = RunDirectory.StateFile;
    /// <summary>The sub-directory of resumable checkpoints.</summary>
    public const string CheckpointsDir = RunDirectory.CheckpointsDir;
    /// <summary>The sub-directory of the final model.</summary>
    public const string FinalDir = RunDirectory.FinalDir;
    /// <summary>The entries a run writes in its run directory (what <c>--overwrite</c> removes; nothing else is touched).</summary>
    public static IReadOnlyList<string> RunEntries { get; } = [ConfigFile, MetricsFile, TensorBoardEvents.FileName, CheckpointsDir, FinalDir];

    private readonly LlamaModel _student;
    private readonly TrainOptions _o;
    private readonly ITeacher? _teacher;
    private readonly ILossKernels _kernels;
    private readonly TrainData _data;
    private readonly DistillSettings _distill;
    private readonly int _padId;
    // The names of the tensors TrainOptions.Trainable freezes; null when every tensor is trained.
    private readonly HashSet<string>? _frozen;
    private readonly ITokenizer _tokenizer;
    private readonly ChatTemplate _template;
    // The sets of TrainOptions.EvalSet, read and checked by the constructor (empty without eval_set).
    private readonly IReadOnlyList<EvalSet> _evalSets;

    /// <summary>Called after every step (with the model as it is after the step); the demo evaluates learning curves here.</summary>
    public Action<StepMetrics, LlamaModel>? AfterStep { get; init; }

    /// <summary>Log lines (run start, checkpoints, skipped steps).</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Progress: (steps done, total steps, the last metrics). Called on rank 0 only.</summary>
    public Action<int, int, StepMetrics>? Progress { get; init; }

    /// <summary>
    /// The process group for data-parallel training; null (the default) is a single process (<see cref="SingleProcessCollective"/>).
    /// <see cref="Log"/> and <see cref="Progress"/> are called on rank 0 only, <see cref="AfterStep"/> on every rank.
    /// </summary>
    public ICollective? Collective { get; init; }

    /// <summary>
    /// The accelerator that runs the student's forward, the losses, the backward, clipping and AdamW (<see cref="GpuLlamaModel"/>,
    /// with the weights, gradients, moments and logits resident on it across steps); null (the default): the CPU model.
    /// The losses run on the device logits through <see cref="IDeviceLossKernels"/> on this accelerator (the kernels given to
    /// the constructor when they run on it — a <see cref="KernelBackend"/>'s <see cref="KernelBackend.Accelerator"/> — so one
    /// accelerator serves both; else <see cref="IlgpuKernels"/> opened on it); the rollouts run on the host model, on
    /// weights copied back when next needed (RAFT: every step); checkpoints are the same files. One process only for now.
    /// </summary>
    public Accelerator? StudentAccelerator { get; init; }

    /// <summary>
    /// Floats per gradient bucket of the data-parallel all-reduce (default <see cref="GradientBucketer.DefaultBucketElements"/>,
    /// 25 MB): smaller buckets start reducing sooner when <see cref="TrainOptions.OverlapAllReduce"/> is on, at the
    /// cost of more collective calls.
    /// </summary>
    public int GradientBucketElements { get; init; } = GradientBucketer.DefaultBucketElements;

    /// <summary>
    /// The model folder the student was loaded from: its tokenizer, chat template and generation config travel into
    /// every checkpoint and final/ (<see cref="Raft.Model.Tokenization.ModelSideFiles"/>), so they load, evaluate and
    /// export on their own. Null: weights, config and state only (the demo's byte model needs nothing else).
    /// </summary>
    public string? ModelFilesFrom { get; init; }

    /// <summary>
    /// Prepares a run of <paramref name="options"/> over <paramref name="data"/>, training <paramref name="student"/> in place.
    /// RAFT needs a <paramref name="teacher"/> with the student's vocabulary.
    /// </summary>
    public Trainer(LlamaModel student, ITokenizer tokenizer, ChatTemplate template, IReadOnlyList<TrainExample> data,
        TrainOptions options, ITeacher? teacher = null, ILossKernels? kernels = null)
        : this(student, tokenizer, template, data, options, teacher, kernels, encoded: null) { }

    /// <summary>The same, with <paramref name="encoded"/> (when given) instead of <paramref name="data"/> encoded by the template (tests: training on token sequences made by hand).</summary>
    internal Trainer(LlamaModel student, ITokenizer tokenizer, ChatTemplate template, IReadOnlyList<TrainExample> data,
        TrainOptions options, ITeacher? teacher, ILossKernels? kernels, TrainData? encoded)
    {
        ArgumentNullException.ThrowIfNull(student);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (data.Count == 0) throw new ArgumentException("the training data is empty.", nameof(data));
        if (tokenizer.VocabSize > student.Config.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens, the student's vocab_size is {student.Config.VocabSize}.", nameof(tokenizer));
        if (options.Lora() is { } lora)
        {
            // the adapters PEFT would make (Kaiming-uniform A, zero B; seeded by the run's seed), unless the caller attached some
            if (student.Lora is null) student.Lora = LoraAdapters.Create(student.Layout, lora, (ulong)options.Seed);
            else if (student.Lora.Config.Rank != lora.Rank || student.Lora.Config.Alpha != lora.Alpha || !student.Lora.Config.TargetModules.SequenceEqual(lora.TargetModules))
                throw new ArgumentException($"the student's attached adapters (r = {student.Lora.Config.Rank}) differ from lora_rank / lora_alpha / lora_targets.", nameof(options));
            student.Lora.Training = true;   // dropout in recorded (training) forwards only; rollouts and teacher scoring never record
            student.Lora.DropoutSeed = (ulong)options.Seed;
            // RAFT without a separate teacher: the frozen base is the teacher, the same weights with the adapters off
            if (options.Method == TrainMethod.Raft && teacher is null)
                teacher = new LoraBaseTeacher(student, kernels ?? new CpuKernels(options.Threads), vocabLimit: tokenizer.VocabSize, logitsChunkRows: options.LogitsChunkRows);
        }
        else if (student.Lora is not null)
            throw new ArgumentException("the student carries LoRA adapters but lora_rank is not set.", nameof(options));
        if (options.Method == TrainMethod.Raft)
        {
            if (teacher is null) throw new ArgumentException("RAFT needs a teacher (the original model); none was given.", nameof(teacher));
            if (teacher.VocabSize != student.Config.VocabSize)
                throw new ArgumentException($"the teacher's vocabulary has {teacher.VocabSize} tokens, the student's {student.Config.VocabSize}; they must be the same model family.", nameof(teacher));
            if (options.TopK > student.Config.VocabSize)
                throw new ArgumentException($"top_k = {options.TopK}: must be ≤ the vocabulary size {student.Config.VocabSize}.", nameof(options));
            // An embedding with padding rows beyond the tokenizer: the teacher's top-K must never hold those ids.
            if (teacher.VocabLimit > tokenizer.VocabSize)
                throw new ArgumentException($"the teacher may put ids up to {teacher.VocabLimit - 1} in its top-K, but the tokenizer has {tokenizer.VocabSize} tokens " +
                                            $"(the embedding's other {student.Config.VocabSize - tokenizer.VocabSize} rows are padding): give the teacher vocabLimit {tokenizer.VocabSize}.", nameof(teacher));
            if (options.TopK > tokenizer.VocabSize)
                throw new ArgumentException($"top_k = {options.TopK}: must be ≤ the tokenizer's {tokenizer.VocabSize} tokens.", nameof(options));
        }
        _student = student; _o = options; _teacher = teacher; _tokenizer = tokenizer; _template = template;
        _evalSets = LoadEvalSets(options, tokenizer, template, student.Config.MaxPositionEmbeddings);
        if (options.TrainablePattern() is { } pattern)
        {
            var frozen = student.Parameters.Tensors.Where(t => !pattern.IsMatch(t.Name)).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            if (frozen.Count == student.Parameters.Count)
                throw new ArgumentException($"trainable = \"{options.Trainable}\" matches none of the student's {frozen.Count} tensors " +
                                            $"(e.g. {string.Join(", ", student.Parameters.Tensors.Take(3).Select(t => t.Name))}).", nameof(options));
            if (frozen.Count > 0) _frozen = frozen; // a pattern matching every tensor freezes nothing
        }
        // The caller resolves options.Device into kernels (the CLI through Raft.Kernels.Cuda's KernelBackendFactory); without
        // them the Trainer runs the CPU kernels, which auto and cpu allow and a GPU device does not.
        if (kernels is null && options.Device is not (ComputeDevice.Auto or ComputeDevice.Cpu))
            throw new ArgumentException($"device = {ComputeDevices.Name(options.Device)}: pass the loss kernels for it; without kernels the Trainer runs the CPU kernels only.", nameof(kernels));
        _kernels = kernels ?? new CpuKernels(options.Threads);
        _data = encoded ?? TrainData.Encode(data, tokenizer, template, options, student.Config.MaxPositionEmbeddings);
        CheckStepSize(_data, options, student.Config.VocabSize);
        _distill = options.Distill;
        _padId = tokenizer.PadId ?? 0;
        Schedule = new BatchSchedule(_data.Count, options.Seed);
    }

    /// <summary>
    /// Reads <see cref="TrainOptions.EvalSet"/> (the format <c>raft eval --set</c> reads, malformed lines refused) before
    /// any training: a missing or malformed file, an empty set, two sets of one name (metrics.jsonl keys them by name)
    /// or a prompt that leaves the model no room for an answer is an <see cref="ArgumentException"/> naming eval_set
    /// and the file (and line).
    /// </summary>
    private static IReadOnlyList<EvalSet> LoadEvalSets(TrainOptions options, ITokenizer tokenizer, ChatTemplate template, int maxPositions)
    {
        if (options.EvalSet is not { Length: > 0 } files) return [];
        var sets = new List<EvalSet>();
        var byName = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string file in files)
        {
            static ArgumentException Bad(string message, Exception? inner = null) => new($"eval_set: {message}", "eval_set", inner);
            if (!File.Exists(file)) throw Bad($"{file} does not exist.");
            EvalSet set;
            try
            {
                set = EvalSet.Load(file);
                PromptFit.Check(tokenizer, template, maxPositions, set);
            }
            catch (DataFormatException e) { throw Bad(e.Message, e); }
            catch (IOException e) { throw Bad($"{file}: {e.Message}", e); }
            if (set.Items.Count == 0) throw Bad($"{file} holds no items.");
            if (byName.TryGetValue(set.Name, out string? other))
                throw Bad($"{file}: its set name \"{set.Name}\" (the file name without extension) is already used by {other}; metrics.jsonl keys the sets by name (rename one).");
            byName[set.Name] = file;
            sets.Add(set);
        }
        return sets;
    }

    /// <summary>
    /// A step's student logits are one array of [(batch_size × rollouts_per_prompt + batch_size) × T, vocab] floats (SFT:
    /// [batch_size × T, vocab]), T the longest sequence the data and rollouts can make: refused here, before any rollout,
    /// when that cannot be allocated, naming the option to lower.
    /// </summary>
    private static void CheckStepSize(TrainData data, TrainOptions options, int vocab)
    {
        bool raft = options.Method == TrainMethod.Raft;
        long t = 1;
        foreach (var e in data.Examples)
        {
            t = Math.Max(t, e.Full.Length - 1);
            if (raft) t = Math.Max(t, e.Prompt.Length + (long)e.RolloutRoom - 1L);
        }
        long sequences = raft ? (long)options.BatchSize * (options.RolloutsPerPrompt + 1L) : options.BatchSize;
        double floats = (double)sequences * t * vocab;
        if (floats <= Array.MaxLength) return;
        string what = raft ? "rollouts_per_prompt" : "batch_size";
        long most = raft ? Math.Max(0, Array.MaxLength / (t * vocab) / options.BatchSize - 1) : Math.Max(0, Array.MaxLength / (t * vocab));
        throw new ArgumentException(
            $"{what} = {(raft ? options.RolloutsPerPrompt : options.BatchSize)} (batch_size {options.BatchSize}): a step would hold {sequences} sequences × {t} positions × " +
            $"{vocab} logits = {floats:0} floats, more than one array holds ({Array.MaxLength}); at most {most} fit{(raft ? " with this batch_size" : "")}.", what);
    }

    /// <summary>The data order of this run.</summary>
    internal BatchSchedule Schedule { get; }

    /// <summary>The example indices of step <paramref name="step"/> (0-based): a deterministic function of (seed, step).</summary>
    internal int[] BatchIndices(int step) => Schedule.Batch(step, _o.StepBatchSize);

    /// <summary>
    /// Runs the training. With <paramref name="runDirectory"/>, writes <see cref="ConfigFile"/>, <see cref="MetricsFile"/>,
    /// checkpoints every <see cref="TrainOptions.CheckpointEvery"/> steps under <see cref="CheckpointsDir"/> and the final
    /// model (with optimizer and trainer state, so it can be resumed too) as <see cref="FinalDir"/>, all atomically.
    /// <paramref name="resume"/> continues from the newest checkpoint there (weights, optimizer, balancer, step; data order
    /// and sampling follow from the step), giving the same result as an uninterrupted run.
    /// </summary>
    public TrainResult Run(string? runDirectory = null, bool resume = false, CancellationToken cancellation = default)
    {
        var sw = Stopwatch.StartNew();
        var world = Collective ?? new SingleProcessCollective();
        bool root = world.Rank == 0;
        var log = root ? Log : null;
        _student.Threads = _o.Threads;
        int totalSteps;
        try { totalSteps = _o.StepsFor(_data.Count, _o.StepBatchSize * world.WorldSize); }
        catch (ArgumentException e) { throw new TrainingException(e.Message, e); }
        var schedule = new LearningRateSchedule
        {
            PeakLearningRate = _o.LearningRate, MinLearningRate = _o.FloorLearningRate,
            WarmupSteps = Math.Min(_o.WarmupSteps, totalSteps), TotalSteps = totalSteps, Decay = LearningRateDecay.Cosine,
        };
        var balancer = new EmaBalancer(_o.EmaDecay, _o.TargetRatio);
        int startStep = 0, skipped = 0, inARow = 0;
        RunDirectory? run = null;
        AdamW? loaded = null;
        if (runDirectory is not null)
        {
            (run, var from) = RunDirectory.Open(runDirectory, resume, _o, _o.ToJson(), world.Rank, world.WorldSize, _student, log);
            if (from is not null)
            {
                loaded = from.Optimizer;
                if (from.State.Balancer is not null) balancer = new EmaBalancer(from.State.Balancer);
                (startStep, skipped, inARow) = (from.State.Step, from.State.Skipped, from.State.InARow);
                log?.Invoke($"resumed from {from.Checkpoint} at step {startStep}");
            }
        }
        if (world.WorldSize > 1) AgreeOnStart(world, startStep);

        var adam = new AdamWOptions { Beta1 = _o.Beta1, Beta2 = _o.Beta2, WeightDecay = _o.WeightDecay };
        using var student = StudentBackends.Create(new StudentSetup(_student, world, _o, _kernels, adam, schedule, loaded, _frozen,
            StudentAccelerator, GradientBucketElements));
        var builder = new StepBuilder(_data, _o, _distill, _teacher, _padId);
        var loss = new StepLoss(_distill, _o.Method == TrainMethod.Raft);
        log?.Invoke($"{_o.Method.ToString().ToLowerInvariant()}: {_data.Count} examples, {totalSteps} steps of {_o.BatchSize}" + (_o.GradientAccumulationSteps > 1 ? $" × {_o.GradientAccumulationSteps} micro-batches" : "") + (_o.Epochs is double ep ? $" ({ep} epochs)" : "") +
                    (world.WorldSize > 1 ? $" per rank × {world.WorldSize} ranks ({world.Backend})" : "") +
                    (_teacher is null ? "" : $", teacher {_teacher.Description}") + $", loss kernels {_kernels.Name}" +
                    (_frozen is null ? "" : $", training {_student.Parameters.Count - _frozen.Count} of {_student.Parameters.Count} tensors (trainable \"{_o.Trainable}\")") +
                    (_student.Lora is not { } lo ? "" : $", LoRA r = {lo.Config.Rank}, α = {lo.Config.Alpha}, dropout {lo.Config.Dropout} on {string.Join(",", lo.Config.TargetModules)} ({lo.Parameters.ValueCount} trained values; base frozen)") +
                    (_o.ComputeDType is { } cd ? $", {cd.WeightsDTypeName()} mixed precision (fp32 masters)" : "") +
                    student.Describe());
        if (_o.MaxLength is not null || _data.Truncation.Truncated > 0 || _data.Truncation.RolloutsShortened > 0)
            log?.Invoke(_data.Truncation.Describe(_data.Count, given: _o.MaxLength is not null));
        if (_evalSets.Count > 0)
            log?.Invoke($"evaluation on {string.Join(", ", _evalSets.Select(s => $"{s.Name} ({s.Items.Count} items)"))} " +
                        (_o.EvalEvery > 0 ? $"every {_o.EvalEvery} steps and " : "") + $"at step {totalSteps}" + (world.WorldSize > 1 ? ", on rank 0" : ""));
        var all = new List<StepMetrics>();
        var evals = new List<EvalMetrics>();
        for (int step = startStep; step < totalSteps; step++)
        {
            if (cancellation.IsCancellationRequested)
            {
                student.SyncHostWeights(); // the caller's model holds the weights of the last step taken
                cancellation.ThrowIfCancellationRequested();
            }
            var m = TrainStep(step, student, builder, loss, balancer, world, sw.Elapsed.TotalSeconds);
            if (m.Skipped)
            {
                skipped++; inARow++;
                log?.Invoke($"step {step + 1}: non-finite loss or gradient, step skipped ({inARow} in a row, {skipped} in all)");
                if (inARow >= _o.MaxNonFiniteSteps)
                    throw new TrainingException($"{inARow} non-finite steps in a row (max_nonfinite_steps = {_o.MaxNonFiniteSteps}); stopped at step {step + 1}. " +
                                                "Lower learning_rate or check the data; the last checkpoint is intact.");
            }
            else inARow = 0;
            all.Add(m);
            run?.Append(m);
            if (root) Progress?.Invoke(step + 1, totalSteps, m);
            if (AfterStep is not null)
            {
                student.SyncHostWeights();
                AfterStep(m, _student);
            }
            bool last = step + 1 == totalSteps;
            if (_evalSets.Count > 0 && (last || (_o.EvalEvery > 0 && (step + 1) % _o.EvalEvery == 0)))
            {
                // every rank syncs (the GPU student copies its weights back); rank 0 alone evaluates, the others wait at
                // the next collective (the checkpoint's barrier or the next step's reductions)
                student.SyncHostWeights();
                if (root)
                {
                    var e = Evaluate(step + 1);
                    evals.Add(e);
                    run?.AppendEval(e);
                    log?.Invoke(Describe(e));
                }
            }
            if (run is not null && (last || (_o.CheckpointEvery > 0 && (step + 1) % _o.CheckpointEvery == 0)))
            {
                student.SyncHostWeights();
                // The weights and optimizer state are identical on every rank (or, sharded, gathered on rank 0): rank 0
                // writes them, the others wait for it.
                var optimizer = student.CheckpointOptimizer();
                string dir = run.CheckpointPath(step + 1, last);
                run.Save(dir, _student, optimizer, new TrainerState
                {
                    Step = step + 1, Skipped = skipped, InARow = inARow, Balancer = _o.Method == TrainMethod.Raft ? balancer.State : null, WorldSize = world.WorldSize,
                }, ModelFilesFrom);
                log?.Invoke($"step {step + 1}: checkpoint {dir}");
                if (_o.SaveTotalLimit is int keep)
                    foreach (string gone in run.PruneCheckpoints(keep)) log?.Invoke($"step {step + 1}: removed {gone} (save_total_limit = {keep})");
                world.Barrier();
            }
        }
        student.SyncHostWeights();
        return new TrainResult(totalSteps, skipped, all, sw.Elapsed.TotalSeconds) { Truncation = _data.Truncation, Evals = evals };
    }

    /// <summary>
    /// Scores the student as it is after step <paramref name="step"/> on every eval set with <c>raft eval</c>'s evaluator
    /// (<see cref="ModelEvaluator"/>: greedy, the chat template, at most <see cref="TrainOptions.EvalMaxNewTokens"/> tokens).
    /// It only reads the weights (generation records nothing and draws no random number the training uses); LoRA dropout
    /// is off in it as in rollouts.
    /// </summary>
    private EvalMetrics Evaluate(int step)
    {
        var t0 = Stopwatch.GetTimestamp();
        var scores = new Dictionary<string, EvalSetMetrics>(StringComparer.Ordinal);
        foreach (var set in _evalSets)
            scores[set.Name] = EvalSetMetrics.From(ModelEvaluator.Evaluate(_student, _tokenizer, _template, set, _o.EvalMaxNewTokens));
        return new EvalMetrics { Step = step, Eval = scores, Seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds };
    }

    private static string Describe(EvalMetrics e)
    {
        static string Part(double? v, int num, int den) => v is double x ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{100 * x:F1}% ({num}/{den})") : "-";
        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"step {e.Step}: eval ") +
               string.Join("; ", e.Eval.Select(p => $"{p.Key}: accuracy {Part(p.Value.Accuracy, p.Value.Correct, p.Value.AnswerItems)}, format compliance {Part(p.Value.FormatCompliance, p.Value.Compliant, p.Value.InstructionItems)}")) +
               string.Create(System.Globalization.CultureInfo.InvariantCulture, $" ({e.Seconds:F1} s)");
    }

    /// <summary>Every rank starts from the same step (a run directory not shared by all ranks would break this) with rank 0's weights.</summary>
    private void AgreeOnStart(ICollective world, int startStep)
    {
        Span<double> at = [startStep, -startStep];
        world.AllReduce(at, ReduceOp.Max);
        if (at[0] != -at[1])
            throw new TrainingException($"rank {world.Rank} on {world.HostName} would start at step {startStep}, but the ranks disagree " +
                                        $"(steps {-at[1]}..{at[0]}): every rank must see the same run directory to resume.");
        foreach (var p in _student.Parameters.Tensors) world.Broadcast(p.Data.AsSpan(), 0);
        if (_student.Lora is { } lora) foreach (var p in lora.Parameters.Tensors) world.Broadcast(p.Data.AsSpan(), 0);
    }

    /// <summary>
    /// One step: this rank's slice of the step's batch as <see cref="TrainOptions.GradientAccumulationSteps"/> micro-batches
    /// (all rollouts and teacher scores first, so the loss normalizers are the whole step's token counts), the forwards and
    /// losses, the global reductions and weights, the backwards summed into one gradient, one update.
    /// <para>The accumulation rule (the update of one batch of batch_size × N): every micro-batch's losses are divided by
    /// the step's global token counts, so the micro-batches' losses and gradients add up to the big batch's. With the EMA
    /// balancer, the step's weights come from the summed losses of all its micro-batches (one EMA update per step): a
    /// first pass computes the micro-batches' losses, the balancer steps once, and a second pass recomputes each
    /// micro-batch's forward, weighs its gradient with the step's weights and accumulates its backward (one forward more
    /// per micro-batch; the memory of one). SFT and fixed weights need one pass.</para>
    /// </summary>
    private StepMetrics TrainStep(int step, IStudentBackend student, StepBuilder builder, StepLoss loss, EmaBalancer balancer, ICollective world, double elapsedBefore)
    {
        var t0 = Stopwatch.GetTimestamp();
        int b = _o.BatchSize, n = _o.GradientAccumulationSteps, ranks = world.WorldSize;
        bool multi = ranks > 1, raft = _o.Method == TrainMethod.Raft;
        var examples = Schedule.RankSlice(step, b * n, world.Rank, ranks);
        // Rollouts run on the host model; seeded by the global sequence index: (step, rank's offset in the global batch, rollout).
        if (raft) student.SyncHostWeights();
        int sequences = b * _o.RolloutsPerPrompt;
        ulong first = (ulong)step * (ulong)(sequences * n * ranks) + (ulong)(world.Rank * sequences * n);
        var micro = new PackedBatch[n];
        for (int m = 0; m < n; m++) micro[m] = builder.Build(examples[(m * b)..((m + 1) * b)], _student, first + (ulong)(m * sequences));

        // The loss normalizers: 0 lets the kernels count the rows of a single process's single batch; the step's (global)
        // counts otherwise, so that the sum of the micro-batches' and ranks' gradients is the step's mean loss's gradient.
        float kdNormalizer = 0f, ceNormalizer = 0f;
        if (multi || n > 1)
        {
            Span<double> counts = [micro.Sum(x => x.KdCount()), micro.Sum(x => x.CeCount())];
            if (multi) world.AllReduce(counts, ReduceOp.Sum);
            (kdNormalizer, ceNormalizer) = ((float)counts[0], (float)counts[1]);
        }
        void Forward(int m, out StepLosses l)
        {
            // LoRA dropout masks: a function of (seed, step, rank, micro-batch), fresh every step, the same in both passes
            if (_student.Lora is { } lora) lora.DropoutStep = ((ulong)step * (ulong)ranks + (ulong)world.Rank) * (ulong)n + (ulong)m;
            l = student.ForwardAndLoss(micro[m], loss, kdNormalizer, ceNormalizer);
        }
        double wKd = 0, wSft = 1;
        bool balanced = raft && _o.FixedWeights is null;
        if (raft && _o.FixedWeights is { } fw) (wKd, wSft) = (fw[0], fw[1]);
        // Pass 1: the losses of every micro-batch; the weights-known case backpropagates all but the last micro-batch here.
        StepLosses sum = default;
        bool localFinite = true;
        for (int m = 0; m < n; m++)
        {
            if (!localFinite) break; // a non-finite micro-batch skips the step: the rest need not run
            Forward(m, out var l);
            sum = m == 0 ? l : sum.Plus(l);
            localFinite = l.Finite;
            if (!balanced && localFinite && m < n - 1)
            {
                if (raft) student.Weigh(micro[m], wKd, wSft);
                student.AccumulateBackward();
            }
        }
        var (kd, ce, finite) = sum with { Finite = localFinite };
        long tokens = micro.Sum(x => x.Tokens);
        double rolloutTokens = micro.Sum(x => x.RolloutTokens);
        double rolloutLength = raft ? rolloutTokens / (_o.RolloutsPerPrompt * b * n) : 0;
        if (multi)
        {
            // Each rank's losses are its share of the global means (same normalizers): their sums are the global losses.
            Span<double> sums = [kd.Loss, ce.Loss, tokens, rolloutTokens];
            world.AllReduce(sums, ReduceOp.Sum);
            Span<double> bad = [finite ? 0 : 1];
            world.AllReduce(bad, ReduceOp.Max);
            finite = bad[0] == 0;
            kd = kd with { Loss = sums[0] };
            ce = ce with { Loss = sums[1] };
            tokens = (long)sums[2];
            if (raft) rolloutLength = sums[3] / (_o.RolloutsPerPrompt * b * n * ranks);
        }
        if (finite && balanced)
        {
            var w = balancer.Step([kd.Loss, ce.Loss]);
            (wKd, wSft) = (w[0], w[1]);
            // Pass 2 (several micro-batches): each forward again, weighed with the step's weights, backward accumulated.
            for (int m = 0; m < n - 1; m++)
            {
                Forward(m, out _);
                student.Weigh(micro[m], wKd, wSft);
                student.AccumulateBackward();
            }
            if (n > 1) Forward(n - 1, out _);
        }
        if (finite && raft) student.Weigh(micro[n - 1], wKd, wSft);
        double lr = student.CurrentLearningRate, gradNorm = double.NaN;
        if (finite) (gradNorm, finite) = student.BackwardAndUpdate(_o.ClipNorm);
        else student.DiscardGradients();
        double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        double rolloutSeconds = micro.Sum(x => x.RolloutSeconds), teacherSeconds = micro.Sum(x => x.TeacherSeconds);
        float tau2 = _o.Temperature * _o.Temperature;
        return new StepMetrics
        {
            Step = step + 1,
            Loss = wKd * kd.Loss + wSft * ce.Loss,
            KdLoss = raft ? kd.Loss : null,
            SftLoss = ce.Loss,
            WeightKd = raft ? wKd : null,
            WeightSft = wSft,
            Kl = raft ? kd.Loss / tau2 : null,
            GradNorm = gradNorm,
            RolloutLength = raft ? rolloutLength : null,
            Tokens = tokens,
            TokensPerSecond = tokens / Math.Max(seconds, 1e-9),
            LearningRate = lr,
            RolloutSeconds = raft ? rolloutSeconds : null,
            TeacherSeconds = raft ? teacherSeconds : null,
            TrainSeconds = seconds - rolloutSeconds - teacherSeconds,
            ElapsedSeconds = elapsedBefore + seconds,
            Skipped = !finite,
        };
    }

    /// <summary>The newest resumable checkpoint of a run directory (the final one, else the highest step), or null.</summary>
    public static string? LatestCheckpoint(string runDirectory) => RunDirectory.LatestCheckpoint(runDirectory);
}
