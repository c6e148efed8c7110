using ILGPU.Runtime;
using Raft.Gpu;
using System.Diagnostics;
using System.Numerics.Tensors;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Raft.Distributed;
using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;

namespace Raft.Pipeline.Training;

/// <summary>Raised when a run cannot go on (too many non-finite steps in a row, a resume that does not match).</summary>
public sealed class TrainingException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>What a finished run returns.</summary>
public sealed record TrainResult(int Steps, int SkippedSteps, IReadOnlyList<StepMetrics> Metrics, double Seconds);

/// <summary>
/// The training loop shared by plain SFT and RAFT stage 2 (see <see cref="TrainMethod"/>), on the CPU.
/// <para>A RAFT step, for a batch of B examples (prompt, fused answer):</para>
/// <list type="number">
/// <item>the student samples R rollouts per prompt (its chat template, <see cref="Generator"/> with a KV cache); the
/// randomness of rollout g of the run depends only on (seed, g), so a resumed run samples what the uninterrupted one would;</item>
/// <item>the teacher reads each rollout after <see cref="PromptTemplates.AnswerConditioned"/> (prompt + fused answer)
/// and returns its top-K at temperature τ at every rollout position;</item>
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
    public const string ConfigFile = "config.json";
    /// <summary>The run directory's per-step metrics.</summary>
    public const string MetricsFile = "metrics.jsonl";
    /// <summary>The trainer's state inside a checkpoint directory.</summary>
    public const string StateFile = "trainer_state.json";
    /// <summary>The sub-directory of resumable checkpoints.</summary>
    public const string CheckpointsDir = "checkpoints";
    /// <summary>The sub-directory of the final model.</summary>
    public const string FinalDir = "final";

    private readonly LlamaModel _student;
    private readonly ChatTemplate _template;
    private readonly ITokenizer _tokenizer;
    private readonly TrainOptions _o;
    private readonly ITeacher? _teacher;
    private readonly ILossKernels _kernels;
    private int[][]? _layerBuffers; // per layer: the GradientBucketer buffer indices of its gradient tensors
    private readonly Encoded[] _data;
    private readonly int[] _stops;
    private readonly Dictionary<int, int[]> _orders = new();

    private sealed record Encoded(int[] Prompt, int[] Full, bool[] Mask, int[] TeacherContext);

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
    /// The accelerator that runs the student's forward, backward, clipping and AdamW (<see cref="GpuLlamaModel"/>, with
    /// the weights, gradients and moments resident on it across steps); null (the default): the CPU model. The losses
    /// are computed on host logits by the loss kernels as on the CPU path, the rollouts by the CPU model on weights
    /// copied back when next needed (RAFT: every step), and checkpoints are the same files. One process only for now.
    /// </summary>
    public Accelerator? StudentAccelerator { get; init; }

    /// <summary>
    /// Floats per gradient bucket of the data-parallel all-reduce (default <see cref="GradientBucketer.DefaultBucketElements"/>,
    /// 25 MB): smaller buckets start reducing sooner when <see cref="TrainOptions.OverlapAllReduce"/> is on, at the
    /// cost of more collective calls.
    /// </summary>
    public int GradientBucketElements { get; init; } = GradientBucketer.DefaultBucketElements;

    /// <summary>
    /// Prepares a run of <paramref name="options"/> over <paramref name="data"/>, training <paramref name="student"/> in place.
    /// RAFT needs a <paramref name="teacher"/> with the student's vocabulary.
    /// </summary>
    public Trainer(LlamaModel student, ITokenizer tokenizer, ChatTemplate template, IReadOnlyList<TrainExample> data,
        TrainOptions options, ITeacher? teacher = null, ILossKernels? kernels = null)
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
        if (options.Method == TrainMethod.Raft)
        {
            if (teacher is null) throw new ArgumentException("RAFT needs a teacher (the original model); none was given.", nameof(teacher));
            if (teacher.VocabSize != student.Config.VocabSize)
                throw new ArgumentException($"the teacher's vocabulary has {teacher.VocabSize} tokens, the student's {student.Config.VocabSize}; they must be the same model family.", nameof(teacher));
            if (options.TopK > student.Config.VocabSize)
                throw new ArgumentException($"top_k = {options.TopK}: must be ≤ the vocabulary size {student.Config.VocabSize}.", nameof(options));
        }
        _student = student; _tokenizer = tokenizer; _template = template; _o = options; _teacher = teacher;
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
        _stops = template.StopIds(tokenizer);
        int maxPos = student.Config.MaxPositionEmbeddings;
        _data = new Encoded[data.Count];
        for (int i = 0; i < data.Count; i++)
        {
            var e = data[i] ?? throw new ArgumentException($"data[{i}] is null.", nameof(data));
            var prompt = template.Encode(tokenizer, [ChatMessage.User(e.Prompt)], addGenerationPrompt: true).Ids;
            var full = template.Encode(tokenizer, [ChatMessage.User(e.Prompt), ChatMessage.Assistant(e.Answer)]);
            var ctx = options.AnswerConditioned
                ? template.Encode(tokenizer, [ChatMessage.User(PromptTemplates.AnswerConditioned(e.Prompt, e.Answer))], addGenerationPrompt: true).Ids
                : prompt;
            int longest = Math.Max(full.Ids.Length, options.Method == TrainMethod.Raft ? Math.Max(prompt.Length, ctx.Length) + options.RolloutMaxTokens : 0);
            if (longest > maxPos)
                throw new ArgumentException($"data[{i}] (prompt \"{Clip(e.Prompt)}\") needs {longest} positions with its answer or rollout; the model's max_position_embeddings is {maxPos}.", nameof(data));
            _data[i] = new Encoded(prompt, full.Ids, full.AssistantMask, ctx);
        }
    }

    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "…";

    // The names of the tensors TrainOptions.Trainable freezes; null when every tensor is trained.
    private readonly HashSet<string>? _frozen;

    private bool IsTrainable(string name) => _frozen is null || !_frozen.Contains(name);

    // Frozen tensors take no part in the clipping norm nor the update: their gradients are zeroed after the backward.
    private void ZeroFrozenGradients(TensorSet grads)
    {
        if (_frozen is null) return;
        foreach (var g in grads.Tensors) if (_frozen.Contains(g.Name)) Array.Clear(g.Data);
    }

    private sealed record State
    {
        [JsonPropertyName("step")] public int Step { get; init; }
        [JsonPropertyName("skipped_steps")] public int Skipped { get; init; }
        [JsonPropertyName("nonfinite_in_a_row")] public int InARow { get; init; }
        [JsonPropertyName("balancer")] public EmaBalancerState? Balancer { get; init; }
        /// <summary>The ranks that trained it (absent in checkpoints from before data parallelism: 1).</summary>
        [JsonPropertyName("world_size")] public int WorldSize { get; init; } = 1;
        [JsonPropertyName("config")] public JsonElement Config { get; init; }
    }

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
        var schedule = new LearningRateSchedule
        {
            PeakLearningRate = _o.LearningRate, MinLearningRate = _o.MinLearningRate,
            WarmupSteps = Math.Min(_o.WarmupSteps, _o.Steps), TotalSteps = _o.Steps, Decay = LearningRateDecay.Cosine,
        };
        var adamOptions = new AdamWOptions { Beta1 = _o.Beta1, Beta2 = _o.Beta2, WeightDecay = _o.WeightDecay };
        AdamW? loaded = null; // a resumed run's optimizer state
        var balancer = new EmaBalancer(_o.EmaDecay, _o.TargetRatio);
        int startStep = 0, skipped = 0, inARow = 0;
        string configJson = _o.ToJson();
        string? metricsPath = null;
        if (runDirectory is not null)
        {
            try { Directory.CreateDirectory(runDirectory); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"cannot create the run directory {runDirectory}: {e.Message}", e);
            }
            metricsPath = Path.Combine(runDirectory, MetricsFile);
            if (resume && LatestCheckpoint(runDirectory) is { } ckpt)
            {
                var state = ReadState(ckpt);
                string saved = state.Config.GetRawText();
                if (!SameConfig(saved, configJson, out string diff))
                    throw new TrainingException($"cannot resume from {ckpt}: it was trained with a different configuration ({diff}).");
                CheckGlobalBatch(ckpt, state, world.WorldSize);
                var (_, weights) = Checkpoint.Load(ckpt);
                foreach (var p in _student.Parameters.Tensors) weights[p.Name].Data.AsSpan().CopyTo(p.Data);
                loaded = AdamW.LoadState(ckpt, _student.Parameters);
                if (state.Balancer is not null) balancer = new EmaBalancer(state.Balancer);
                (startStep, skipped, inARow) = (state.Step, state.Skipped, state.InARow);
                if (root) TruncateMetrics(metricsPath, startStep);
                log?.Invoke($"resumed from {ckpt} at step {startStep}");
            }
            else if (root && File.Exists(metricsPath)) File.Delete(metricsPath);
            if (root) AtomicFile.WriteText(Path.Combine(runDirectory, ConfigFile), configJson);
        }
        if (world.WorldSize > 1)
        {
            // Every rank must start from the same step (a run directory not shared by all ranks would break this).
            Span<double> at = [startStep, -startStep];
            world.AllReduce(at, ReduceOp.Max);
            if (at[0] != -at[1])
                throw new TrainingException($"rank {world.Rank} on {world.HostName} would start at step {startStep}, but the ranks disagree " +
                                            $"(steps {-at[1]}..{at[0]}): every rank must see the same run directory to resume.");
            // Identical initial weights on every rank: rank 0's.
            foreach (var p in _student.Parameters.Tensors) world.Broadcast(p.Data.AsSpan(), 0);
        }

        var grads = _student.Parameters.ZerosLike();
        // The gradients in the order backward completes them (last layer first), summed over the ranks bucket by bucket.
        var bucketer = new GradientBucketer(world, grads.Tensors.Reverse().Select(g => g.Data).ToArray(), GradientBucketElements);
        // For the overlapped all-reduce: the bucketer's buffer indices of each layer's gradient tensors.
        var bufferIndex = grads.Tensors.Reverse().Select((g, i) => (g.Name, i)).ToDictionary(x => x.Name, x => x.i);
        _layerBuffers = Enumerable.Range(0, _student.Config.NumHiddenLayers)
            .Select(l => _student.LayerTensorNames(l).Select(name => bufferIndex[name]).ToArray()).ToArray();
        // ZeRO-1: each rank keeps the moments of its chunk only (the full state exists only while a checkpoint is written).
        var zero = _o.ShardOptimizer && world.WorldSize > 1 ? new ZeroOptimizer(world, _student.Parameters, grads, adamOptions, schedule, loaded) : null;
        var optimizer = zero is null ? loaded ?? new AdamW(_student.Parameters, adamOptions, schedule) : null;
        loaded = null;
        if (_frozen is not null)
        {
            optimizer?.SetTrainable(IsTrainable);
            zero?.SetTrainable(IsTrainable);
        }
        GpuLlamaModel? gpu = null;
        if (StudentAccelerator is not null)
        {
            if (world.WorldSize > 1)
                throw new TrainingException($"the student on {StudentAccelerator.Name} runs in one process for now ({world.WorldSize} ranks here): " +
                                            "its gradients are not all-reduced on the device; run the ranks with device = cpu.");
            if (zero is not null || optimizer is null) throw new TrainingException("shard_optimizer needs several ranks, which the GPU student does not support yet.");
            gpu = new GpuLlamaModel(StudentAccelerator, _student);
            gpu.SetOptimizer(adamOptions, schedule, optimizer.StepCount);
            if (_frozen is not null) gpu.SetTrainable(IsTrainable);
            if (optimizer.StepCount > 0) gpu.UploadOptimizerState(optimizer.FirstMoment, optimizer.SecondMoment);
        }
        using var gpuOwner = gpu;
        var acts = new ModelActivations();
        var all = new List<StepMetrics>();
        log?.Invoke($"{_o.Method.ToString().ToLowerInvariant()}: {_data.Length} examples, {_o.Steps} steps of {_o.BatchSize}" +
                    (world.WorldSize > 1 ? $" per rank × {world.WorldSize} ranks ({world.Backend})" : "") +
                    (_teacher is null ? "" : $", teacher {_teacher.Description}") + $", loss kernels {_kernels.Name}" +
                    (gpu is null ? "" : $", student on {StudentAccelerator!.Name} (ILGPU)") +
                    (_frozen is null ? "" : $", training {_student.Parameters.Count - _frozen.Count} of {_student.Parameters.Count} tensors (trainable \"{_o.Trainable}\")") +
                    (zero is not null ? $", optimizer state sharded over the ranks (ZeRO-1, {zero.ChunkLength} parameters on rank 0)"
                        : _o.ShardOptimizer ? " (shard_optimizer has no effect in a single process)" : ""));
        for (int step = startStep; step < _o.Steps; step++)
        {
            if (cancellation.IsCancellationRequested)
            {
                SyncHostWeights(gpu); // the caller's model holds the weights of the last step taken
                cancellation.ThrowIfCancellationRequested();
            }
            var m = TrainStep(step, optimizer, zero, gpu, balancer, grads, bucketer, world, acts, sw.Elapsed.TotalSeconds);
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
            if (root && metricsPath is not null) File.AppendAllText(metricsPath, JsonSerializer.Serialize(m, MetricsJson) + "\n");
            if (root) Progress?.Invoke(step + 1, _o.Steps, m);
            if (AfterStep is not null)
            {
                SyncHostWeights(gpu);
                AfterStep(m, _student);
            }
            bool last = step + 1 == _o.Steps;
            if (runDirectory is not null && (last || (_o.CheckpointEvery > 0 && (step + 1) % _o.CheckpointEvery == 0)))
            {
                SyncHostWeights(gpu);
                var state = new State { Step = step + 1, Skipped = skipped, InARow = inARow, Balancer = _o.Method == TrainMethod.Raft ? balancer.State : null,
                    WorldSize = world.WorldSize, Config = JsonDocument.Parse(configJson).RootElement.Clone() };
                string dir = last ? Path.Combine(runDirectory, FinalDir) : Path.Combine(runDirectory, CheckpointsDir, $"step-{step + 1:D7}");
                // The weights and optimizer state are identical on every rank (or, sharded, gathered on rank 0): rank 0
                // writes them, the others wait for it.
                var full = gpu is not null ? GpuOptimizerSnapshot(gpu, adamOptions, schedule) : zero is null ? optimizer : zero.GatherFull();
                if (root)
                {
                    Checkpoint.Save(dir, _student.Config, _student.Parameters, full,
                        staging => AtomicFile.WriteText(Path.Combine(staging, StateFile), JsonSerializer.Serialize(state, StateJson)));
                    log?.Invoke($"step {step + 1}: checkpoint {dir}");
                }
                world.Barrier();
            }
        }
        SyncHostWeights(gpu);
        return new TrainResult(_o.Steps, skipped, all, sw.Elapsed.TotalSeconds);
    }

    // The GPU student's weights are copied back to the host model only when it is needed (rollouts, callbacks,
    // checkpoints, the end of the run), not after every update.
    private bool _hostWeightsStale;

    private void SyncHostWeights(GpuLlamaModel? gpu)
    {
        if (gpu is null || !_hostWeightsStale) return;
        gpu.Download(_student.Parameters);
        _hostWeightsStale = false;
    }

    // The GPU student's optimizer as a host AdamW (its moments copied back), for a checkpoint; the weights are already on the host.
    private AdamW GpuOptimizerSnapshot(GpuLlamaModel gpu, AdamWOptions options, LearningRateSchedule schedule)
    {
        var snapshot = AdamW.AtStep(_student.Parameters, options, schedule, gpu.OptimizerStep);
        gpu.DownloadOptimizerState(snapshot.FirstMoment, snapshot.SecondMoment);
        return snapshot;
    }

    private static readonly JsonSerializerOptions StateJson = new() { WriteIndented = true };

    // A skipped step logs NaN (grad_norm, losses): written as "NaN" rather than failing the run.
    private static readonly JsonSerializerOptions MetricsJson = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The newest resumable checkpoint of a run directory (the final one, else the highest step), or null.</summary>
    public static string? LatestCheckpoint(string runDirectory)
    {
        string final = Path.Combine(runDirectory, FinalDir);
        if (File.Exists(Path.Combine(final, StateFile))) return final;
        string dir = Path.Combine(runDirectory, CheckpointsDir);
        if (!Directory.Exists(dir)) return null;
        return Directory.GetDirectories(dir, "step-*")
            .Where(d => File.Exists(Path.Combine(d, StateFile)))
            .OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal)
            .LastOrDefault();
    }

    private static State ReadState(string checkpoint)
    {
        string path = Path.Combine(checkpoint, StateFile);
        try
        {
            return JsonSerializer.Deserialize<State>(File.ReadAllText(path), StateJson) ?? throw new InvalidDataException($"{path}: empty.");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a trainer state ({e.Message}).", e); }
    }

    private static bool SameConfig(string saved, string current, out string diff)
    {
        diff = "";
        using var a = JsonDocument.Parse(saved);
        using var b = JsonDocument.Parse(current);
        foreach (var p in b.RootElement.EnumerateObject())
        {
            // batch_size is per rank: CheckGlobalBatch compares batch_size × ranks. shard_optimizer changes where the
            // moments live during the run, not the checkpoint's files or the result.
            if (p.Name is "threads" or "checkpoint_every" or "device" or "batch_size" or "shard_optimizer" or "overlap_allreduce") continue;
            // Compared without whitespace: the saved config is nested (and indented) inside the state file.
            string was = a.RootElement.TryGetProperty(p.Name, out var v) ? Compact(v) : "(absent)";
            string now = Compact(p.Value);
            if (was != now) { diff = $"{p.Name}: checkpoint {was}, now {now}"; return false; }
        }
        return true;
    }

    /// <summary>
    /// A run resumes with the global batch it was trained with (batch_size × ranks): the data order, the rollout seeds and
    /// the optimizer's steps follow it. Any world size that keeps it works: a checkpoint of N ranks × b resumes in one
    /// process with batch N·b.
    /// </summary>
    private void CheckGlobalBatch(string checkpoint, State state, int worldSize)
    {
        int savedBatch = state.Config.ValueKind == JsonValueKind.Object && state.Config.TryGetProperty("batch_size", out var b) && b.TryGetInt32(out int v) ? v : _o.BatchSize;
        int savedWorld = Math.Max(1, state.WorldSize);
        long saved = (long)savedBatch * savedWorld, now = (long)_o.BatchSize * worldSize;
        if (saved == now) return;
        string hint = saved % worldSize == 0 ? $"; with {worldSize} rank(s) use batch_size {saved / worldSize}" : "";
        throw new TrainingException($"cannot resume from {checkpoint}: it was trained with a global batch of {saved} (batch_size {savedBatch} × {savedWorld} rank(s)), " +
                                    $"now {now} (batch_size {_o.BatchSize} × {worldSize} rank(s)){hint}.");
    }

    private static string Compact(JsonElement e)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer)) e.WriteTo(w);
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void TruncateMetrics(string path, int lastStep)
    {
        if (!File.Exists(path)) return;
        var keep = new StringBuilder();
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0) continue;
            int step;
            try { step = JsonDocument.Parse(line).RootElement.GetProperty("step").GetInt32(); }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException) { break; }
            if (step > lastStep) break;
            keep.Append(line).Append('\n');
        }
        AtomicFile.WriteText(path, keep.ToString());
    }

    private int[] Order(int epoch)
    {
        if (_orders.TryGetValue(epoch, out var order)) return order;
        order = Enumerable.Range(0, _data.Length).ToArray();
        // A seed that is the same in every process (HashCode.Combine is randomised per process, so it must not be used).
        new Random(EpochSeed(_o.Seed, epoch)).Shuffle(order);
        if (_orders.Count > 4) _orders.Clear();
        return _orders[epoch] = order;
    }

    /// <summary>The shuffling seed of an epoch: SplitMix64 of (seed, epoch), folded to 31 bits; identical in every process.</summary>
    internal static int EpochSeed(int seed, int epoch)
    {
        ulong z = ((ulong)(uint)seed << 32 | (uint)epoch) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }

    /// <summary>The example indices of step <paramref name="step"/> (0-based): a deterministic function of (seed, step).</summary>
    internal int[] BatchIndices(int step) => GlobalBatchIndices(step, _o.BatchSize);

    /// <summary>The example indices of step <paramref name="step"/> for a (global) batch of <paramref name="batchSize"/>.</summary>
    internal int[] GlobalBatchIndices(int step, int batchSize)
    {
        var idx = new int[batchSize];
        for (int i = 0; i < idx.Length; i++)
        {
            long g = (long)step * batchSize + i;
            idx[i] = Order((int)(g / _data.Length))[(int)(g % _data.Length)];
        }
        return idx;
    }

    private StepMetrics TrainStep(int step, AdamW? optimizer, ZeroOptimizer? zero, GpuLlamaModel? gpu, EmaBalancer balancer, TensorSet grads, GradientBucketer bucketer, ICollective world,
        ModelActivations acts, double elapsedBefore)
    {
        var t0 = Stopwatch.GetTimestamp();
        int v = _student.Config.VocabSize;
        int b = _o.BatchSize, ranks = world.WorldSize;
        // This rank's slice of the global batch (the whole batch in a single process).
        var batch = ranks == 1 ? BatchIndices(step) : GlobalBatchIndices(step, b * ranks).AsSpan(world.Rank * b, b).ToArray();
        bool multi = ranks > 1;
        bool raft = _o.Method == TrainMethod.Raft;

        // Sequences: [rollout sequences (RAFT only) ; answer sequences]. A sequence's inputs are its tokens but the last.
        var kdSeqs = new List<(int[] Tokens, int PromptLen)>();
        IReadOnlyList<Raft.Teacher.TeacherTopK>? topk = null;
        double rolloutLen = 0, rolloutSeconds = 0, teacherSeconds = 0;
        if (raft)
        {
            SyncHostWeights(gpu); // the rollouts run on the host model
            int r = _o.RolloutsPerPrompt;
            var prompts = new int[batch.Length * r][];
            for (int i = 0; i < batch.Length; i++)
                for (int j = 0; j < r; j++) prompts[i * r + j] = _data[batch[i]].Prompt;
            var sampling = new SamplingOptions
            {
                Temperature = _o.RolloutTemperature, MaxNewTokens = _o.RolloutMaxTokens, StopTokenIds = _stops, Seed = (ulong)_o.Seed,
            };
            // Seeded by the global sequence index: (step, rank's offset in the global batch, rollout).
            ulong first = (ulong)step * (ulong)(prompts.Length * ranks) + (ulong)(world.Rank * prompts.Length);
            var gens = Generator.Generate(_student, prompts, sampling, firstSequenceIndex: first);
            var contexts = new int[prompts.Length][];
            var rollouts = new int[prompts.Length][];
            for (int i = 0; i < prompts.Length; i++)
            {
                contexts[i] = _data[batch[i / r]].TeacherContext;
                rollouts[i] = gens[i].Tokens;
                rolloutLen += rollouts[i].Length;
                kdSeqs.Add(([.. prompts[i], .. rollouts[i]], prompts[i].Length));
            }
            if (!multi) rolloutLen /= prompts.Length;
            rolloutSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            topk = _teacher!.Score(contexts, rollouts, _o.TopK, _o.Temperature);
            teacherSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds - rolloutSeconds;
        }

        int t = 1;
        foreach (var (tokens, _) in kdSeqs) t = Math.Max(t, tokens.Length - 1);
        foreach (int i in batch) t = Math.Max(t, _data[i].Full.Length - 1);
        int nKd = kdSeqs.Count, nSft = batch.Length, rowsKd = nKd * t, rowsSft = nSft * t;
        int pad = _tokenizer.PadId ?? 0;
        var inputs = new int[(nKd + nSft) * t];
        Array.Fill(inputs, pad);
        for (int s = 0; s < nKd; s++) kdSeqs[s].Tokens.AsSpan(0, kdSeqs[s].Tokens.Length - 1).CopyTo(inputs.AsSpan(s * t));
        var targets = new int[rowsSft];
        Array.Fill(targets, -100);
        long tokensTrained = 0;
        for (int s = 0; s < nSft; s++)
        {
            var e = _data[batch[s]];
            e.Full.AsSpan(0, e.Full.Length - 1).CopyTo(inputs.AsSpan((nKd + s) * t));
            for (int p = 0; p + 1 < e.Full.Length; p++)
                if (e.Mask[p + 1]) targets[s * t + p] = e.Full[p + 1];
            tokensTrained += e.Full.Length - 1;
        }

        // The loss normalizers: this rank's token counts in a single process (0 lets the kernels count them), the global
        // counts over the ranks otherwise, so that the sum of the ranks' gradients is the global-batch mean's gradient.
        float kdNormalizer = 0f, ceNormalizer = 0f;
        if (multi)
        {
            double kdCount = 0, ceCount = 0;
            if (raft) foreach (var tk in topk!) kdCount += tk.Rows;
            foreach (int target in targets) if (target != -100) ceCount++;
            Span<double> counts = [kdCount, ceCount];
            world.AllReduce(counts, ReduceOp.Sum);
            (kdNormalizer, ceNormalizer) = ((float)counts[0], (float)counts[1]);
        }

        float[] logits;
        if (gpu is not null)
        {
            gpu.Forward(inputs, nKd + nSft, t);
            logits = gpu.DownloadLogits();
        }
        else logits = _student.Forward(inputs, nKd + nSft, t, acts);
        var kdLogits = logits.AsSpan(0, rowsKd * v);
        var sftLogits = logits.AsSpan(rowsKd * v, rowsSft * v);
        LossResult kd = default, ce = default;
        bool finite = true, teacherFinite = true;
        try
        {
            if (raft)
            {
                int k = _o.TopK;
                var idx = new int[rowsKd * k];
                var probs = new float[rowsKd * k];
                var weights = new float[rowsKd];
                for (int row = 0; row < rowsKd; row++)
                    for (int j = 0; j < k; j++) { idx[row * k + j] = j; probs[row * k + j] = 1f / k; }
                for (int s = 0; s < nKd; s++)
                {
                    var (tokens, promptLen) = kdSeqs[s];
                    var tk = topk![s];
                    foreach (float p in tk.Probs) teacherFinite &= float.IsFinite(p);
                    for (int j = 0; j < tk.Rows; j++)
                    {
                        int row = s * t + promptLen - 1 + j;
                        weights[row] = 1f;
                        tk.Indices.AsSpan(j * k, k).CopyTo(idx.AsSpan(row * k));
                        tk.Probs.AsSpan(j * k, k).CopyTo(probs.AsSpan(row * k));
                    }
                    tokensTrained += tokens.Length - 1;
                }
                // A teacher that overflowed (NaN or infinite probabilities) makes a non-finite step, skipped like one.
                if (teacherFinite)
                {
                    var config = new DistillSettings(k, _o.Temperature, _o.LossKind, _o.JsdBeta);
                    kd = _kernels.Distill(kdLogits, rowsKd, v, idx, probs, config, weights, kdLogits, kdNormalizer);
                }
            }
            if (teacherFinite)
            {
                ce = _kernels.CrossEntropy(sftLogits, rowsSft, v, targets, sftLogits, normalizer: ceNormalizer);
                finite = double.IsFinite(kd.Loss) && double.IsFinite(ce.Loss);
            }
            else (finite, kd) = (false, new LossResult(double.NaN, double.NaN, 0, 0));
        }
        catch (NonFiniteLogitException)
        {
            // The losses are unknown: logged as NaN (not 0, which would read as a perfect step).
            finite = false;
            ce = new LossResult(double.NaN, double.NaN, 0, 0);
            if (raft) kd = new LossResult(double.NaN, double.NaN, 0, 0);
        }

        if (multi)
        {
            // Each rank's losses are its share of the global means (same normalizers): their sums are the global losses.
            Span<double> sums = [kd.Loss, ce.Loss, tokensTrained, rolloutLen];
            world.AllReduce(sums, ReduceOp.Sum);
            Span<double> bad = [finite ? 0 : 1];
            world.AllReduce(bad, ReduceOp.Max);
            finite = bad[0] == 0;
            kd = kd with { Loss = sums[0] };
            ce = ce with { Loss = sums[1] };
            tokensTrained = (long)sums[2];
            if (raft) rolloutLen = sums[3] / (_o.RolloutsPerPrompt * b * ranks);
        }
        double wKd = 0, wSft = 1;
        if (finite && raft)
        {
            if (_o.FixedWeights is { } fw) (wKd, wSft) = (fw[0], fw[1]);
            else
            {
                var w = balancer.Step([kd.Loss, ce.Loss]);
                (wKd, wSft) = (w[0], w[1]);
            }
            TensorPrimitives.Multiply(kdLogits, (float)wKd, kdLogits);
            TensorPrimitives.Multiply(sftLogits, (float)wSft, sftLogits);
        }
        double gradNorm = double.NaN;
        double lr = gpu?.CurrentLearningRate ?? zero?.CurrentLearningRate ?? optimizer!.CurrentLearningRate;
        if (finite && gpu is not null)
        {
            // backward, clipping and AdamW on the device (a non-finite norm leaves weights and moments untouched); the
            // updated weights come back when the rollouts, the callbacks or a checkpoint next need them
            gpu.ZeroGradients();
            gpu.Backward(logits);
            var r = gpu.ClipAndUpdate(_o.ClipNorm);
            gradNorm = r.GradNorm;
            finite = r.Applied && double.IsFinite(gradNorm);
            if (r.Applied) _hostWeightsStale = true; // copied back when the host model is next needed
        }
        else if (finite && zero is not null)
        {
            foreach (var g in grads.Tensors) Array.Clear(g.Data);
            _student.Backward(acts, logits, grads);
            ZeroFrozenGradients(grads);
            // Reduce-scatter, global norm, clip, update of this rank's chunk, all-gather; the norm is global, so is the decision.
            gradNorm = zero.Step(_o.ClipNorm);
            finite = double.IsFinite(gradNorm);
        }
        else if (finite)
        {
            foreach (var g in grads.Tensors) Array.Clear(g.Data);
            if (multi && _o.OverlapAllReduce && bucketer.Buckets.Count > 1)
            {
                // each layer's bucket is summed over the ranks (on a communication thread) while the backward computes
                // the layers before it; the sums are AllReduceSum's, bit for bit
                bucketer.BeginOverlappedSum();
                try
                {
                    _student.Backward(acts, logits, grads, l => { foreach (int i in _layerBuffers![l]) bucketer.MarkReady(i); });
                }
                finally { bucketer.EndOverlappedSum(); }
            }
            else
            {
                _student.Backward(acts, logits, grads);
                bucketer.AllReduceSum();
            }
            ZeroFrozenGradients(grads);
            gradNorm = _o.ClipNorm > 0 ? GradientClipping.ClipByGlobalNorm(grads, _o.ClipNorm) : GradientClipping.GlobalNorm(grads);
            finite = double.IsFinite(gradNorm);
            if (multi)
            {
                Span<double> bad = [finite ? 0 : 1];
                world.AllReduce(bad, ReduceOp.Max);
                finite = bad[0] == 0;
            }
            if (finite) optimizer!.Update(grads);
        }
        double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
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
            RolloutLength = raft ? rolloutLen : null,
            Tokens = tokensTrained,
            TokensPerSecond = tokensTrained / Math.Max(seconds, 1e-9),
            LearningRate = lr,
            RolloutSeconds = raft ? rolloutSeconds : null,
            TeacherSeconds = raft ? teacherSeconds : null,
            TrainSeconds = seconds - rolloutSeconds - teacherSeconds,
            ElapsedSeconds = elapsedBefore + seconds,
            Skipped = !finite,
        };
    }
}
