using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;

namespace Raft.Pipeline.Training;

/// <summary>The trainer's state inside a checkpoint (<see cref="RunDirectory.StateFile"/>).</summary>
internal sealed record TrainerState
{
    [JsonPropertyName("step")] public int Step { get; init; }
    [JsonPropertyName("skipped_steps")] public int Skipped { get; init; }
    [JsonPropertyName("nonfinite_in_a_row")] public int InARow { get; init; }
    [JsonPropertyName("balancer")] public EmaBalancerState? Balancer { get; init; }
    /// <summary>The ranks that trained it (absent in checkpoints from before data parallelism: 1).</summary>
    [JsonPropertyName("world_size")] public int WorldSize { get; init; } = 1;
    [JsonPropertyName("config")] public JsonElement Config { get; init; }
}

/// <summary>Where a resumed run starts: the checkpoint's state and optimizer (its weights are already in the student).</summary>
internal sealed record ResumePoint(string Checkpoint, TrainerState State, AdamW Optimizer);

/// <summary>
/// A run directory: <see cref="ConfigFile"/> (the resolved options), <see cref="MetricsFile"/> (one JSON line per step,
/// and one per evaluation during training: <see cref="EvalMetrics"/>),
/// resumable checkpoints under <see cref="CheckpointsDir"/> and the final model as <see cref="FinalDir"/>, each with
/// the optimizer and <see cref="StateFile"/>; everything written atomically, by rank 0 only. Resuming compares the saved
/// configuration with the run's (the keys that do not change the result are exempt) and the global batch.
/// </summary>
internal sealed class RunDirectory
{
    public const string ConfigFile = "config.json";
    public const string MetricsFile = "metrics.jsonl";
    public const string StateFile = "trainer_state.json";
    public const string CheckpointsDir = "checkpoints";
    public const string FinalDir = "final";

    private static readonly JsonSerializerOptions StateJson = new() { WriteIndented = true };
    // A skipped step logs NaN (grad_norm, losses): written as "NaN" rather than failing the run.
    private static readonly JsonSerializerOptions MetricsJson = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private readonly string _path, _configJson, _metricsPath;
    private readonly bool _root;
    private TensorBoardLog? _events;

    private RunDirectory(string path, string configJson, bool root)
    {
        _path = path; _configJson = configJson; _root = root;
        _metricsPath = Path.Combine(path, MetricsFile);
    }

    /// <summary>
    /// Creates (or reopens) the run directory. With <paramref name="resume"/> and a checkpoint there, checks it against
    /// the run, loads its weights into <paramref name="student"/> and returns where to start; otherwise a fresh run
    /// (old metrics removed). Rank 0 writes the configuration. A damaged checkpoint (a file that does not read: truncated,
    /// bit-flipped, missing) is named on <paramref name="log"/> and the one before it is used; a checkpoint that reads but
    /// does not fit the run (configuration, global batch, model shape) is a <see cref="RunMismatchException"/>.
    /// </summary>
    public static (RunDirectory Directory, ResumePoint? Resume) Open(string path, bool resume, TrainOptions options, string configJson,
        int rank, int worldSize, LlamaModel student, Action<string>? log = null)
    {
        try { Directory.CreateDirectory(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot create the run directory {path}: {e.Message}", e);
        }
        bool root = rank == 0;
        var run = new RunDirectory(path, configJson, root);
        ResumePoint? point = null;
        if (resume && Checkpoints(path) is { Count: > 0 } candidates)
        {
            var damaged = new List<string>();
            foreach (string ckpt in candidates)
            {
                try { point = LoadCheckpoint(ckpt, options, configJson, worldSize, student); }
                catch (Exception e) when (e is InvalidDataException or IOException or JsonException or KeyNotFoundException)
                {
                    damaged.Add($"{ckpt} ({e.Message})");
                    log?.Invoke($"warning: checkpoint {ckpt} is damaged and skipped: {e.Message}");
                    continue;
                }
                if (damaged.Count > 0) log?.Invoke($"resuming from the previous checkpoint {ckpt} instead");
                break;
            }
            if (point is null)
                throw new InvalidDataException($"cannot resume from {path}: every checkpoint is damaged: {string.Join("; ", damaged)}.");
            if (root) TruncateMetrics(run._metricsPath, point.State.Step);
        }
        else if (root && File.Exists(run._metricsPath)) File.Delete(run._metricsPath);
        if (root)
        {
            // the event file follows metrics.jsonl: cut to the checkpoint's step on resume, new on a fresh run, none stale without report_to
            if (options.ReportsToTensorBoard) run._events = TensorBoardLog.Open(path, point?.State.Step);
            else TensorBoardLog.Remove(path, point?.State.Step);
        }
        if (root) AtomicFile.WriteText(Path.Combine(path, ConfigFile), configJson);
        return (run, point);
    }

    /// <summary>
    /// Reads checkpoint <paramref name="ckpt"/> whole and checks it against the run before anything is copied into
    /// <paramref name="student"/> (a damaged file then leaves the student as it was, for the previous checkpoint).
    /// </summary>
    private static ResumePoint LoadCheckpoint(string ckpt, TrainOptions options, string configJson, int worldSize, LlamaModel student)
    {
        var state = ReadState(ckpt);
        if (!SameConfig(state.Config.GetRawText(), configJson, out string diff))
            throw new RunMismatchException($"cannot resume from {ckpt}: it was trained with a different configuration ({diff}).");
        CheckGlobalBatch(ckpt, state, options.BatchSize, options.GradientAccumulationSteps, worldSize);
        if (student.Lora is { } lora)
        {
            // a LoRA run's checkpoint holds the adapters (PEFT's files) and their optimizer state; the base is the student's
            var saved = LoraFiles.Load(ckpt, student.Layout);
            CheckShapes(ckpt, saved.Parameters, lora.Parameters, "adapter");
            var optimizer = AdamW.LoadState(ckpt, lora.Parameters);
            foreach (var p in lora.Parameters.Tensors) saved.Parameters[p.Name].Data.AsSpan().CopyTo(p.Data);
            return new ResumePoint(ckpt, state, optimizer);
        }
        var (_, weights) = Checkpoint.Load(ckpt);
        CheckShapes(ckpt, weights, student.Parameters, "tensor");
        var adam = AdamW.LoadState(ckpt, student.Parameters);
        foreach (var p in student.Parameters.Tensors) weights[p.Name].Data.AsSpan().CopyTo(p.Data);
        return new ResumePoint(ckpt, state, adam);
    }

    /// <summary>Every tensor of the run's model must be in the checkpoint with the same shape: a differently shaped --model is named, not copied.</summary>
    private static void CheckShapes(string ckpt, TensorSet saved, TensorSet model, string what)
    {
        foreach (var p in model.Tensors)
        {
            if (!saved.TryGet(p.Name, out var s))
                throw new RunMismatchException($"cannot resume from {ckpt}: it has no {what} {p.Name}, which the model being trained has: it was trained from a different model.");
            if (!s.Shape.AsSpan().SequenceEqual(p.Shape))
                throw new RunMismatchException($"cannot resume from {ckpt}: {what} {p.Name} is {s.ShapeText} there but {p.ShapeText} in the model being trained: it was trained from a differently shaped model.");
        }
    }

    /// <summary>Appends a step's metrics (rank 0).</summary>
    public void Append(StepMetrics m)
    {
        if (!_root) return;
        File.AppendAllText(_metricsPath, JsonSerializer.Serialize(m, MetricsJson) + "\n");
        _events?.Append(m.Step, (System.Text.Json.Nodes.JsonObject)JsonSerializer.SerializeToNode(m, MetricsJson)!);
    }

    /// <summary>Appends an evaluation's line (rank 0), after its step's line.</summary>
    public void AppendEval(EvalMetrics e)
    {
        if (_root) File.AppendAllText(_metricsPath, JsonSerializer.Serialize(e, MetricsJson) + "\n");
    }

    /// <summary>The checkpoint directory of a step: <see cref="FinalDir"/> for the last, else checkpoints/step-NNNNNNN.</summary>
    public string CheckpointPath(int step, bool last) =>
        last ? Path.Combine(_path, FinalDir) : Path.Combine(_path, CheckpointsDir, $"step-{step:D7}");

    /// <summary>
    /// Writes a checkpoint of <paramref name="student"/> with <paramref name="optimizer"/> and the trainer state (rank 0);
    /// with <paramref name="modelFilesFrom"/>, the tokenizer, chat template and generation config of that model folder
    /// travel into it (<see cref="ModelSideFiles"/>), so the checkpoint can be loaded, evaluated and exported alone.
    /// </summary>
    public void Save(string dir, LlamaModel student, AdamW? optimizer, TrainerState state, string? modelFilesFrom = null)
    {
        if (!_root) return;
        state = state with { Config = JsonDocument.Parse(_configJson).RootElement.Clone() };
        if (student.Lora is { } lora)
        {
            // PEFT's adapter layout (no base weights: they are the base model's, unchanged), the adapters' optimizer state
            AtomicFile.WriteDirectory(dir, staging =>
            {
                LoraFiles.Save(staging, lora, modelFilesFrom is null ? null : Path.GetFullPath(modelFilesFrom));
                optimizer?.SaveState(staging);
                AtomicFile.WriteText(Path.Combine(staging, StateFile), JsonSerializer.Serialize(state, StateJson));
                if (modelFilesFrom is not null) ModelSideFiles.Copy(modelFilesFrom, staging);
            });
            return;
        }
        Checkpoint.Save(dir, student.Config, student.Parameters, optimizer,
            staging =>
            {
                AtomicFile.WriteText(Path.Combine(staging, StateFile), JsonSerializer.Serialize(state, StateJson));
                if (modelFilesFrom is not null) ModelSideFiles.Copy(modelFilesFrom, staging);
            });
    }

    /// <summary>
    /// Deletes all but the newest <paramref name="keep"/> checkpoints under <see cref="CheckpointsDir"/> (rank 0; others
    /// return nothing) and returns the deleted paths. Each is first renamed out of the <c>step-*</c> names (one atomic
    /// rename), so an interruption never leaves a half-deleted checkpoint that <see cref="LatestCheckpoint"/> could pick;
    /// leftovers of an interrupted deletion are removed too. The newest checkpoint, the one a resume reads, is never touched.
    /// </summary>
    public IReadOnlyList<string> PruneCheckpoints(int keep)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        string dir = Path.Combine(_path, CheckpointsDir);
        if (!_root || !Directory.Exists(dir)) return [];
        var removed = new List<string>();
        var steps = Directory.GetDirectories(dir, "step-*").OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal).ToList();
        foreach (string old in steps.Take(Math.Max(0, steps.Count - keep)))
        {
            string doomed = Path.Combine(dir, PruneMark + Path.GetFileName(old));
            if (Directory.Exists(doomed)) Directory.Delete(doomed, recursive: true);
            Directory.Move(old, doomed);
            removed.Add(old);
        }
        foreach (string doomed in Directory.GetDirectories(dir, PruneMark + "*")) Directory.Delete(doomed, recursive: true);
        return removed;
    }

    /// <summary>The prefix a checkpoint being deleted is renamed to (never a <c>step-*</c> name).</summary>
    internal const string PruneMark = ".deleting-";

    /// <summary>The newest resumable checkpoint of a run directory (the final one, else the highest step), or null.</summary>
    public static string? LatestCheckpoint(string runDirectory) => Checkpoints(runDirectory).FirstOrDefault();

    /// <summary>The resumable checkpoints of a run directory, newest first: the final one, then the steps from the highest.</summary>
    public static IReadOnlyList<string> Checkpoints(string runDirectory)
    {
        var found = new List<string>();
        string final = Path.Combine(runDirectory, FinalDir);
        if (File.Exists(Path.Combine(final, StateFile))) found.Add(final);
        string dir = Path.Combine(runDirectory, CheckpointsDir);
        if (Directory.Exists(dir))
            found.AddRange(Directory.GetDirectories(dir, "step-*")
                .Where(d => File.Exists(Path.Combine(d, StateFile)))
                .OrderByDescending(d => Path.GetFileName(d), StringComparer.Ordinal));
        return found;
    }

    private static TrainerState ReadState(string checkpoint)
    {
        string path = Path.Combine(checkpoint, StateFile);
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), StateJson) ?? throw new InvalidDataException($"{path}: empty.");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a trainer state ({e.Message}).", e); }
    }

    private static string LossKindName(string json) =>
        json.Length > 1 && json[0] == '"' && DistillLossKinds.TryParse(json[1..^1], out var kind) ? $"\"{DistillLossKinds.Name(kind)}\"" : json;

    private static bool SameConfig(string saved, string current, out string diff)
    {
        diff = "";
        using var a = JsonDocument.Parse(saved);
        using var b = JsonDocument.Parse(current);
        foreach (var p in b.RootElement.EnumerateObject())
        {
            // batch_size is per rank: CheckGlobalBatch compares batch_size × ranks × gradient_accumulation_steps. shard_optimizer changes where the
            // moments live during the run, not the checkpoint's files or the result.
            // logits_chunk_rows and gradient_checkpointing change the memory a step takes, not what it computes (up to fp32
            // summation order); save_total_limit only which old checkpoints are kept; report_to only where the numbers are also
            // written; the eval_* keys only what is measured (evaluation reads the weights), so a resumed run may add, change or
            // drop its evaluation.
            if (p.Name is "threads" or "checkpoint_every" or "save_total_limit" or "eval_set" or "eval_every" or "eval_max_new_tokens" or "device" or "batch_size" or "gradient_accumulation_steps" or "shard_optimizer" or "overlap_allreduce"
                or "logits_chunk_rows" or "gradient_checkpointing" or "report_to") continue;
            // Compared without whitespace: the saved config is nested (and indented) inside the state file.
            // a run saved before teacher_weights_dtype existed had the fp32 teacher
            string was = a.RootElement.TryGetProperty(p.Name, out var v) ? Compact(v) : p.Name == "teacher_weights_dtype" ? "\"fp32\"" :
                // before base_weights_dtype a LoRA base was widened to fp32: the same values as a 16-bit base widened in the kernels
                p.Name == "base_weights_dtype" ? "\"auto\"" :
                // before precision the student computed in fp32
                p.Name == "precision" ? "\"fp32\"" : "(absent)";
            string now = Compact(p.Value);
            // loss_kind was written "ForwardKL" before it was spelled "forward-kl": the same kind
            if (p.Name == "loss_kind") { was = LossKindName(was); now = LossKindName(now); }
            // the LoRA keys came later: a checkpoint without them was trained without LoRA (without epochs: by steps; without max_length: the model's limit; without rows: on every row)
            if (was == "(absent)" && now == "null" && (p.Name.StartsWith("lora_", StringComparison.Ordinal) || p.Name is "epochs" or "max_length" or "rows")) continue;
            if (was != now) { diff = $"{p.Name}: checkpoint {was}, now {now}"; return false; }
        }
        return true;
    }

    /// <summary>
    /// A run resumes with the global batch it was trained with (batch_size × ranks × gradient_accumulation_steps): the data
    /// order, the rollout seeds and the optimizer's steps follow it. Any split that keeps it works: a checkpoint of N ranks × b
    /// resumes in one process with batch N·b, or with batch b and N accumulation steps.
    /// </summary>
    private static void CheckGlobalBatch(string checkpoint, TrainerState state, int batchSize, int accumulation, int worldSize)
    {
        bool obj = state.Config.ValueKind == JsonValueKind.Object;
        int savedBatch = obj && state.Config.TryGetProperty("batch_size", out var b) && b.TryGetInt32(out int v) ? v : batchSize;
        int savedAccumulation = obj && state.Config.TryGetProperty("gradient_accumulation_steps", out var a) && a.TryGetInt32(out int n) ? n : 1;
        int savedWorld = Math.Max(1, state.WorldSize);
        long saved = (long)savedBatch * savedWorld * savedAccumulation, now = (long)batchSize * worldSize * accumulation;
        if (saved == now) return;
        long perRank = (long)worldSize * accumulation;
        string hint = saved % perRank == 0 ? $"; with {worldSize} rank(s) and {accumulation} accumulation step(s) use batch_size {saved / perRank}" : "";
        throw new RunMismatchException($"cannot resume from {checkpoint}: it was trained with a global batch of {saved} (batch_size {savedBatch} × {savedWorld} rank(s) × {savedAccumulation} accumulation step(s)), " +
                                    $"now {now} (batch_size {batchSize} × {worldSize} rank(s) × {accumulation} accumulation step(s)){hint}.");
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
}
