using Raft.Distributed;
using ILGPU.Runtime;
using System.CommandLine;
using System.Text.Json;
using Raft.Kernels;
using Raft.Model;
using Raft.Pipeline;
using Raft.Pipeline.Data;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Cli.Commands;

/// <summary>
/// <c>raft train</c> (RAFT stage 2) and <c>raft sft</c> (the plain SFT baseline): one command shape, the method differs.
/// Every <see cref="TrainOptions"/> field is a flag and a key of the <c>--config</c> JSON file.
/// </summary>
internal static class TrainCommand
{
    /// <summary>The help of <c>--rows</c> (train, sft, refine, eval).</summary>
    internal const string RowsHelp = "Only these rows of the data file, in Hugging Face's split-slice syntax FROM:TO, brackets optional: 0-based, TO excluded, either end optional, a negative end counts from the end, percentages of the rows allowed (rounded as datasets does; add (pct1_dropremainder) for its other rounding), e.g. 0:100, :1000, 10:, -5%:, [25%:75%]; rows are non-blank JSONL lines or Parquet rows, counted before any is parsed (default: all).";

    internal static string Describe(string key) => key switch
    {
        "steps" => "Optimizer steps (default 200); or give --epochs instead (not both).",
        "epochs" => "Passes over the data instead of --steps (fractions allowed): ⌈epochs × ⌈examples / global batch⌉⌉ steps, as Hugging Face counts; the schedule decays over them (default: none, --steps).",
        "rows" => RowsHelp,
        "report_to" => "Also write each step's metrics as TensorBoard scalars (train/KEY, the metrics.jsonl keys) to events.out.tfevents.raft in --out: tensorboard, or none (default none); view with tensorboard --logdir on the run folder or its parent.",
        "save_total_limit" => "Keep only the newest K checkpoints in checkpoints/ (older ones deleted after each save; final/ is not counted) (default: keep all).",
        "max_length" => "Most positions of a training sequence (HF SFTTrainer's max_length): a longer prompt + answer is truncated (its first N tokens; a prompt that alone leaves no room loses its start, down to its last N/2 tokens), not refused, and counted (the start log line, truncated_examples in the JSON line); RAFT rollouts are limited so that prompt + rollout <= N (default: the model's max_position_embeddings, the most allowed).",
        "eval_set" => "An evaluation JSONL, the format raft eval --set reads (repeatable; set name = file name without extension): the student is scored with raft eval's evaluator (greedy, chat template) every --eval-every steps and after the last; each evaluation is a line of metrics.jsonl, {\"step\", \"eval\": {SET: {\"accuracy\", \"format_compliance\", \"items\", ...}}, \"eval_s\"}, on rank 0; the training is the same with or without it (default: none).",
        "eval_every" => "With --eval-set: evaluate every N steps and after the last; 0 = after the last step only (default 0).",
        "eval_max_new_tokens" => "With --eval-set: most tokens per answer in those evaluations (default 64, as raft eval).",
        "batch_size" => "Prompts per micro-batch per rank (default 16); a step takes batch_size × gradient_accumulation_steps × ranks.",
        "gradient_accumulation_steps" => "Micro-batches per optimizer step (default 1): their gradients are summed, then one clipped update, the same as one batch of batch_size × N; memory grows with the micro-batch.",
        "learning_rate" => "Peak AdamW learning rate (default 1e-3), cosine decay after warm-up.",
        "min_learning_rate" => "Learning rate at the end of the decay (default: min_lr_ratio × learning_rate).",
        "min_lr_ratio" => "The end of the decay as a fraction of the learning rate when min_learning_rate is not given (default 0.1).",
        "warmup_steps" => "Linear warm-up updates W (default 10, cut to --steps): update s (from 0) uses learning_rate·(s+1)/W, so the first one already trains and the W-th is at the peak.",
        "weight_decay" => "AdamW decoupled weight decay on 2-D tensors (default 0).",
        "beta1" => "AdamW β1 (default 0.9).",
        "beta2" => "AdamW β2 (default 0.95).",
        "clip_norm" => "Global gradient-norm clip, 0 = off (default 1).",
        "seed" => "Seed of data order and rollout sampling (default 1).",
        "threads" => "CPU threads, 0 = all cores (default 0).",
        "checkpoint_every" => "Resumable checkpoint every N steps, 0 = only the final one (default 0).",
        "max_nonfinite_steps" => "Stop after this many NaN/inf steps in a row; each is skipped (default 5).",
        "shard_optimizer" => "ZeRO-1 under mpirun: each rank keeps AdamW's moments for its 1/N of the parameters (reduce-scatter, update, all-gather); checkpoints are the same files (default false).",
        "overlap_allreduce" => "Under mpirun: sum each gradient bucket on a communication thread while the backward goes on; false (default): after the backward. Same sums either way; it was slower with one core per rank (benchmarks/results/allreduce-cpu.md).",
        "trainable" => "Which parameters are trained: a regular expression over tensor names, e.g. mlp (the MLP blocks only; attention, norms and embeddings frozen). Frozen tensors get no update, decay or share of the clip norm (default: all).",
        "teacher_weights_dtype" => "How a checkpoint teacher holds its matrices: fp32 (widened), bf16 or fp16 (as stored, widened inside the matmul kernels, fp32 accumulation; a checkpoint in the other 16-bit dtype is refused) (default fp32).",
        "logits_chunk_rows" => "Rows of logits the CPU student's lm_head + loss and a checkpoint teacher's top-K compute at a time; [rows, vocab] never exists for the whole batch (default 0: as many rows as fit 64 MiB of fp32 logits).",
        "gradient_checkpointing" => "Keep only each layer's input in the student's forward and recompute the layer in the backward: the same gradients, much less activation memory, one more forward of the layers (CPU student; default false).",
        "precision" => "Mixed precision of the student's matmuls: fp32, or bf16 / fp16 — 16-bit copies of the weights, re-rounded after every update, feed the forward, the input gradients and the rollouts (widened in registers, fp32 accumulation); activations, the loss, the weight gradients and AdamW's master weights stay fp32 (CPU student; default fp32).",
        "base_weights_dtype" => "With lora_rank: how the frozen base holds its matrices: auto (as the checkpoint stores them), fp32 (widened), bf16 or fp16 (as stored, widened inside the forward and backward kernels, fp32 accumulation); with the base as teacher the teacher reads the same copy. Without LoRA: auto or fp32 (default auto).",
        "device" => DeviceOption.Help + " With cuda or cuda-c (or auto on a GPU) the student's forward, backward, clipping and AdamW run on the GPU too (ILGPU, one process); rollouts stay on the CPU model (default auto).",
        "lora_rank" => "Train LoRA adapters of rank r instead of the weights (frozen); checkpoints are PEFT adapters (adapter_config.json, adapter_model.safetensors). RAFT without --teacher: the teacher is the base (adapters off). Default: full fine-tuning.",
        "lora_alpha" => "LoRA α; the update is scaled by α/r (default 8, PEFT's).",
        "lora_dropout" => "LoRA dropout on the adapter input while training (default 0).",
        "lora_targets" => "LoRA target modules, comma-separated: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or all-linear (default q_proj,v_proj).",
        "top_k" => "RAFT: teacher entries kept per position (default 16).",
        "temperature" => "RAFT: distillation temperature τ; the loss is scaled by τ² (default 1).",
        "loss_kind" => "RAFT: divergence: forward-kl (KL(teacher‖student)), reverse-kl (on the teacher's top-K support) or jsd (generalized JSD with --jsd-beta), as raft kd (default forward-kl).",
        "jsd_beta" => "RAFT: β ∈ [0, 1] of --loss-kind jsd (0 = forward KL, 1 = reverse KL) (default 0.5).",
        "ema_decay" => "RAFT: EMA decay of the adaptive balancer (default 0.9).",
        "target_ratio" => "RAFT: target contribution ratio distillation,SFT of the balancer (default 1,1).",
        "fixed_weights" => "RAFT: fixed weights distillation,SFT instead of EMA balancing (default: none = EMA).",
        "answer_conditioned" => "RAFT: put the fused answer in the teacher's context (default true; false = ablation).",
        "rollout_temperature" => "RAFT: sampling temperature of the student's rollouts (default 1).",
        "rollout_max_tokens" => "RAFT: most new tokens per rollout (default 32).",
        "rollouts_per_prompt" => "RAFT: rollouts sampled per prompt (default 1).",
        _ => key,
    };

    /// <summary>The --help placeholders that are not the key's type (N, TEXT): the values a word option takes, or what the text is.</summary>
    internal static string? HelpName(string key) => key switch
    {
        "precision" or "teacher_weights_dtype" => "fp32|bf16|fp16",
        "base_weights_dtype" => "auto|fp32|bf16|fp16",
        "trainable" => "REGEX",
        "lora_targets" => "MODULES",
        "rows" => "FROM:TO",
        "report_to" => "none|tensorboard",
        _ => null,
    };

    /// <summary>The options of RAFT's distillation and rollouts: no flags of raft sft, and in its --config only at their defaults.</summary>
    internal static readonly string[] RaftOnlyKeys =
        ["top_k", "temperature", "loss_kind", "jsd_beta", "ema_decay", "target_ratio", "fixed_weights", "answer_conditioned", "rollout_temperature", "rollout_max_tokens", "rollouts_per_prompt", "teacher_weights_dtype"];

    public static Command Create(TrainMethod method)
    {
        bool raft = method == TrainMethod.Raft;
        var model = new Option<string>("--model") { Description = "The student's checkpoint folder (config.json, model.safetensors, tokenizer files).", Required = true, HelpName = "DIR" };
        var data = new Option<string>("--data") { Description = raft ? "Training data: refined JSONL from raft refine (prompt + fused answer), or any prompt/answer JSONL, or Parquet (.parquet) with the same columns." : "Training data: JSONL, {\"prompt\",\"answer\"} or {\"messages\": [...]} per line (refined.jsonl works too), or Parquet (.parquet) with those columns.", Required = true, HelpName = "FILE" };
        var output = new Option<string>("--out") { Description = "The run directory: config.json, metrics.jsonl, checkpoints/, final/.", Required = true, HelpName = "DIR" };
        var config = new Option<string?>("--config") { Description = "A JSON file of options (the keys of the run directory's config.json); flags override it.", HelpName = "FILE" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the newest checkpoint in --out (same result as an uninterrupted run); exit 2 when there is none." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Start afresh in a non-empty --out: the old run's config.json, metrics.jsonl, checkpoints/ and final/ are removed first (other files are left alone)." };
        var allowChange = new Option<bool>("--allow-data-change") { Description = $"With --resume: continue although --model, --teacher or --data differ from what the run was made from (its {RunRecord.FileName} records their paths and SHA-256); the change is recorded. Without it such a resume exits 2 naming the input." };
        var skipBad = new Option<bool>("--skip-bad-lines") { Description = "Skip malformed data lines (each is reported and counted) instead of stopping." };
        var teacher = new Option<string?>("--teacher") { Description = "RAFT: the teacher folder (the original model): model.onnx served by ONNX Runtime, or a checkpoint. Default: --model (with --lora-rank: the student's own frozen base, adapters off, no second copy).", HelpName = "DIR" };
        var collective = DistributedCli.CollectiveOption();
        var provider = new Option<string>("--teacher-provider") { Description = "RAFT: ONNX Runtime provider for the teacher: auto (CUDA when it starts, else CPU), cpu or cuda.", DefaultValueFactory = _ => "auto", HelpName = "auto|cpu|cuda" };
        var binder = new OptionsBinder<TrainOptions>(TrainOptions.Json, Describe, raft ? ["method"] : ["method", .. RaftOnlyKeys],
            raft ? [] : RaftOnlyKeys, "applies to raft train only (raft sft has no teacher, rollouts or distillation; its flag is refused too)", HelpName);
        var command = new Command(raft ? "train" : "sft", raft
            ? "RAFT stage 2: on-policy rollouts of the student, scored by the answer-conditioned teacher (top-K at τ), distillation + SFT on the fused answer with EMA balancing, AdamW."
            : "The SFT baseline: cross-entropy on the answers with the same optimizer and budget options as raft train.");
        foreach (Option o in (Option[])[model, data, output, config, resume, overwrite, allowChange, skipBad, collective]) command.Options.Add(o);
        if (raft) { command.Options.Add(teacher); command.Options.Add(provider); }
        foreach (var o in binder.Options) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var stderr = parse.InvocationConfiguration.Error;
            var options = binder.Bind(parse, new TrainOptions { Method = method }, parse.GetValue(config)) with { Method = method };
            if (options.Epochs is not null && binder.GivenKeys.Contains("steps"))
                throw new UsageException($"--steps {options.Steps} and --epochs {options.Epochs}: give one of them (flags or --config keys steps / epochs), not both.");
            try { options.Validate(); }
            catch (ArgumentException e) { throw binder.Usage(e); }
            string modelDir = parse.GetValue(model)!, dataPath = parse.GetValue(data)!, outDir = parse.GetValue(output)!;
            CliChecks.CheckInputDirectory("--model", modelDir);
            CliChecks.CheckInputFile("--data", dataPath);
            foreach (string f in options.EvalSet ?? []) CliChecks.CheckInputFile("--eval-set", f);
            // RAFT with LoRA and no --teacher: the teacher is the student's own base (adapters off), not a second copy of --model
            string? teacherDir = raft ? parse.GetValue(teacher) ?? (options.LoraRank is null ? modelDir : null) : null;
            if (teacherDir is not null) CliChecks.CheckInputDirectory("--teacher", teacherDir);
            CliChecks.CheckOutputsApart(
                [new("--model", modelDir), new("--data", dataPath), new("--teacher", raft ? parse.GetValue(teacher) : null), new("--config", parse.GetValue(config)),
                 .. (options.EvalSet ?? []).Select(f => new CliChecks.PathArgument("--eval-set", f))],
                [new("--out", outDir)]);
            bool fresh = CheckRunFolder(outDir, parse.GetValue(resume), parse.GetValue(overwrite));
            if (parse.GetValue(allowChange) && !parse.GetValue(resume)) throw new UsageException("--allow-data-change goes with --resume (a fresh run records its inputs anyway).");

            using var world = DistributedCli.Open(parse.GetValue(collective)!, stderr);
            var run = new RunFlags(parse.GetValue(resume), Clear: fresh && parse.GetValue(overwrite), parse.GetValue(overwrite), parse.GetValue(allowChange));
            return DistributedCli.Guard(world, () => Train(parse, world, binder, method, options, modelDir, dataPath, outDir, teacherDir, parse.GetValue(provider)!,
                parse.GetValue(skipBad), run));
        });
        return command;
    }

    /// <summary>
    /// The half-written files a killed run leaves (SIGKILL, a power cut, a full disk mid-write): the staging folders
    /// (<c>.NAME.staging-GUID</c>) and temporary files (<c>.NAME.GUID.tmp</c>) of <see cref="AtomicFile"/> in the run
    /// folder, in <c>checkpoints/</c> and in the checkpoints themselves. Removed on resume, under the run's lock (no other
    /// run writes there); only those names, never another file.
    /// </summary>
    internal static void RemoveLeftovers(string outDir, TextWriter info)
    {
        var staging = new System.Text.RegularExpressions.Regex(@"^\..+\.staging-[0-9a-f]{32}$");
        var temp = new System.Text.RegularExpressions.Regex(@"^\..+\.[0-9a-f]{32}\.tmp$");
        var folders = new List<string> { outDir };
        string checkpoints = Path.Combine(outDir, Trainer.CheckpointsDir);
        if (Directory.Exists(checkpoints)) folders.Add(checkpoints);
        folders.AddRange(folders.ToArray().SelectMany(f => Directory.GetDirectories(f).Where(d => !staging.IsMatch(Path.GetFileName(d)))));
        int removed = 0;
        foreach (string folder in folders.Distinct())
        {
            foreach (string d in Directory.GetDirectories(folder).Where(d => staging.IsMatch(Path.GetFileName(d))))
            {
                Directory.Delete(d, recursive: true);
                removed++;
            }
            foreach (string f in Directory.GetFiles(folder).Where(f => temp.IsMatch(Path.GetFileName(f))))
            {
                File.Delete(f);
                removed++;
            }
        }
        if (removed > 0) info.WriteLine($"raft: removed {removed} half-written file(s) or folder(s) an interrupted run left in {outDir}");
    }

    /// <summary>How the run folder is used: resumed, cleared first (--overwrite of a non-empty one), and whether changed inputs are allowed on resume.</summary>
    private readonly record struct RunFlags(bool Resume, bool Clear, bool Overwrite, bool AllowDataChange);

    /// <summary>The entries of a run folder that --overwrite removes: the trainer's and the input record.</summary>
    internal static IReadOnlyList<string> RunEntries { get; } = [.. Trainer.RunEntries, RunRecord.FileName];

    private static int Train(ParseResult parse, Raft.Distributed.ICollective world, OptionsBinder<TrainOptions> binder, TrainMethod method, TrainOptions options, string modelDir, string dataPath,
        string outDir, string? teacherDir, string provider, bool skipBad, RunFlags run)
    {
        var stderr = parse.InvocationConfiguration.Error;
        // Rank 0 alone reports warnings, the teacher and progress; the others stay quiet.
        var info = world.Rank == 0 ? stderr : TextWriter.Null;
        bool resume = run.Resume;
        // What the run is made from (rank 0 keeps the run folder): a resume with other inputs is refused before any loading.
        RunRecord? record = world.Rank != 0 ? null : Inputs(modelDir, dataPath, teacherDir, outDir, run, info, options.Rows);
        // Every input is read and checked (down to the Trainer's checks) before --out is created, so that a wrong input leaves no run directory behind.
        var examples = Load(dataPath, skipBad, info, options.RowSelection());
        // a LoRA base is kept as stored (bf16 / fp16, frozen) unless base_weights_dtype says otherwise
        var matrices = options.StudentMatrices(Checkpoint.StoredMatrixDType(modelDir));
        LoadedModel student;
        try { student = ModelStore.LoadStudent(modelDir, matrices, options.Threads); }
        catch (InvalidDataException e) when (matrices != SafeTensorDType.F32) { throw new UsageException($"--model {modelDir}: base_weights_dtype = {options.BaseWeightsDType}: {e.Message}"); }
        if (student.Model.IsInferenceOnly) info.WriteLine($"raft: the LoRA base holds {student.Model.WeightsDescription} weights (frozen, as stored)");
        var device = options.Device;
        using var backend = DeviceOption.Create(device, options.Threads == 0 ? null : options.Threads); // said below, once the inputs passed
        var kernels = backend.Kernels;
        using var teacherModel = teacherDir is null ? null : OpenTeacher(teacherDir, provider, kernels, student.Model.Config.VocabSize, options.Threads, info,
            vocabLimit: student.Tokenizer.VocabSize, weights: SafeTensorDTypes.ParseWeightsDType(options.TeacherWeightsDType, "teacher_weights_dtype"),
            logitsChunkRows: options.LogitsChunkRows);
        var progress = new ProgressReporter(stderr, ProgressReporter.IsTerminal(stderr));
        var studentAccelerator = StudentAccelerator(device, backend, world, info);
        // A resume's record is rewritten once a step ran from it (a resume that fails, e.g. on a differently shaped model,
        // leaves the old record); a fresh run's is written before the first step.
        Action? recordAfterStep = null;
        Trainer trainer;
        try
        {
            trainer = new Trainer(student.Model, student.Tokenizer, student.Template,
                examples.Select(e => new TrainExample(e.Prompt, e.Answer)).ToArray(), options, teacherModel, kernels)
            {
                Log = line => stderr.WriteLine(line),
                Progress = (done, total, m) => { recordAfterStep?.Invoke(); progress.Report(done, total, m); },
                Collective = world,
                AfterStep = FaultInjection.AfterStep(world.Rank, stderr),
                StudentAccelerator = studentAccelerator,
                ModelFilesFrom = modelDir,
            };
        }
        catch (ArgumentException e) { throw binder.Usage(e); }
        CliChecks.CheckOutputDirectory("--out", outDir);
        // One run per folder: rank 0 holds the lock while it writes there (released on exit; a crashed run's is taken over).
        using var folderLock = world.Rank == 0 ? RunLock.Acquire("--out", outDir, $"raft {(method == TrainMethod.Raft ? "train" : "sft")}", info) : null;
        if (world.Rank == 0)
        {
            CheckRunFolder(outDir, resume, run.Overwrite); // again under the lock: a run that ended meanwhile may have filled it
            if (run.Clear) ClearRun(outDir, info);
            if (resume) RemoveLeftovers(outDir, info);
            if (!resume) record!.Write(outDir);
            else recordAfterStep = () => { record!.Write(outDir); recordAfterStep = null; };
        }
        info.WriteLine($"chat template: {student.Template.Origin}");   // said once the inputs passed, as the device is
        DeviceOption.Announce(device, backend, info);
        using var signals = world.WorldSize == 1 ? new SignalStop(info) : null;
        TrainResult result;
        try { result = trainer.Run(outDir, resume, signals?.Token ?? default); }
        catch (OperationCanceledException) when (signals?.Signal is { } signal)
        {
            return SignalStop.Stopped(signal, Trainer.LatestCheckpoint(outDir), info);
        }
        recordAfterStep?.Invoke(); // a resume with nothing left to do
        if (world.Rank != 0) return ExitCodes.Success;
        // A non-finite last loss (a skipped step) is null here, with final_loss_nonfinite: true (JSON has no NaN).
        double? finalLoss = result.Metrics.Count > 0 ? result.Metrics[^1].Loss : null;
        bool nonFinite = finalLoss is double l && !double.IsFinite(l);
        parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new
        {
            method = method.ToString().ToLowerInvariant(), steps = result.Steps, skipped_steps = result.SkippedSteps,
            max_length = result.Truncation?.MaxLength, truncated_examples = result.Truncation?.Truncated,
            eval = result.Evals.Count > 0 ? result.Evals[^1].Eval : null, eval_step = result.Evals.Count > 0 ? result.Evals[^1].Step : (int?)null,
            final_loss = nonFinite ? null : finalLoss, final_loss_nonfinite = nonFinite,
            seconds = Math.Round(result.Seconds, 2), model = Path.Combine(outDir, Trainer.FinalDir),
            device = ComputeDevices.Name(options.Device), kernels = backend.Description,
            student = studentAccelerator is null ? "cpu" : $"cuda: {studentAccelerator.Name} ({studentAccelerator.NumMultiprocessors} SMs)",
        }));
        return ExitCodes.Success;
    }

    /// <summary>
    /// The run-folder rule, checked before any work (and, under mpirun, by every rank before they connect, so before rank 0
    /// writes anything): a non-empty <paramref name="outDir"/> needs <c>--resume</c> (and then a checkpoint in it) or
    /// <c>--overwrite</c>; <c>--resume</c> needs a checkpoint. Returns whether the run starts afresh in a non-empty folder.
    /// </summary>
    internal static bool CheckRunFolder(string outDir, bool resume, bool overwrite)
    {
        if (resume && overwrite) throw new UsageException("--resume and --overwrite exclude each other: continue the run in --out, or start it afresh.");
        // a lock file alone (a run that crashed before writing anything) leaves the folder empty
        bool nonEmpty = Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any(e => Path.GetFileName(e) != RunLock.FileName);
        if (resume)
        {
            if (Trainer.LatestCheckpoint(outDir) is null)
                throw new UsageException($"--resume: the run folder {outDir} holds no checkpoint ({Trainer.FinalDir}/ or {Trainer.CheckpointsDir}/step-*/ with {Trainer.StateFile}); " +
                                         "drop --resume to start a run (--overwrite in a non-empty folder).");
            return false;
        }
        if (nonEmpty && !overwrite)
            throw new UsageException($"--out {outDir}: the run folder is not empty; give --resume to continue its run or --overwrite to start afresh " +
                                     $"(which removes its {string.Join(", ", RunEntries)}).");
        return nonEmpty;
    }

    /// <summary>
    /// The record of the run's inputs: on resume, checked against the one in the run folder (<see cref="RunRecord.CheckResume"/>);
    /// a run from before the record existed is said and recorded now.
    /// </summary>
    private static RunRecord Inputs(string modelDir, string dataPath, string? teacherDir, string outDir, RunFlags run, TextWriter info, string? rows)
    {
        RunRecord? saved = run.Resume ? RunRecord.Read(outDir) : null;
        var now = RunRecord.Of([new("model", "--model", modelDir), new("teacher", "--teacher", teacherDir), new("data", "--data", dataPath, rows)], saved);
        if (!run.Resume) return now;
        if (saved is null)
        {
            info.WriteLine($"raft: --resume: {outDir} has no {RunRecord.FileName} (a run from an older raft): its inputs cannot be checked; recording them now");
            return now;
        }
        return now.CheckResume(saved, run.AllowDataChange, outDir, info);
    }

    /// <summary>Removes the old run's entries (<see cref="RunEntries"/>) from <paramref name="outDir"/>; other files stay.</summary>
    private static void ClearRun(string outDir, TextWriter info)
    {
        foreach (string entry in RunEntries)
        {
            string path = Path.Combine(outDir, entry);
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else if (File.Exists(path)) File.Delete(path);
        }
        info.WriteLine($"raft: --overwrite: removed the previous run's files from {outDir}");
    }

    /// <summary>
    /// The accelerator for the student's forward, backward and AdamW: the one the loss kernels run on (ILGPU's CUDA
    /// accelerator, shared, owned by <paramref name="backend"/>) when they resolved to cuda or cuda-c (asked for, or
    /// auto that found a GPU) in a single process; null (the CPU model) otherwise. Several ranks keep the student on
    /// the CPU (its device gradients are not all-reduced yet) and say so.
    /// </summary>
    private static Accelerator? StudentAccelerator(ComputeDevice device, KernelBackend backend, ICollective world, TextWriter info)
    {
        if (backend.Device is not (ComputeDevice.Cuda or ComputeDevice.CudaC)) return null;
        if (world.WorldSize > 1)
        {
            info.WriteLine($"raft: the student stays on the CPU with {world.WorldSize} ranks (the GPU student runs in one process for now)");
            return null;
        }
        if (backend.Accelerator is { } accelerator) return accelerator;
        // Not reached with KernelBackendFactory's backends (a GPU backend runs on an accelerator); kept for the contract.
        string reason = $"the loss kernels on {backend.Description} expose no accelerator";
        if (device == ComputeDevice.Auto)
        {
            info.WriteLine($"raft: the student stays on the CPU (auto: {reason})");
            return null;
        }
        throw new UsageException($"--device {ComputeDevices.Name(device)}: the student cannot run on the GPU ({reason}).");
    }

    /// <summary>
    /// The examples of <c>--data</c> (JSONL or Parquet), only the rows <paramref name="rows"/> selects; every problem is a
    /// usage error naming the file (and the line or row, or the column), a selection that fails names <c>--rows</c>.
    /// </summary>
    internal static IReadOnlyList<DomainExample> Load(string path, bool skipBad, TextWriter stderr, RowSlice? rows = null)
    {
        JsonlReadResult read;
        try { read = JsonlDataset.Read(path, skipBad, line => stderr.WriteLine($"warning: {line}"), rows); }
        catch (DataFormatException e) { throw new UsageException(DataError(e)); }
        catch (ArgumentException e) when (e.ParamName == "rows") { throw new UsageException($"--rows {CliErrors.WithoutParameter(e)} (--data {path})."); }
        string unit = DataFormatException.UnitOf(path);
        if (read.SkippedLines > 0) stderr.WriteLine($"skipped {read.SkippedLines} malformed {unit}(s) of {path}");
        if (read.Examples.Count == 0)
            throw new UsageException(rows is null ? $"--data {path}: no examples." : $"--data {path}: no examples in the rows selected by --rows {rows}.");
        if (rows is not null) stderr.WriteLine($"--rows {rows}: {read.Examples.Count + read.SkippedLines} {unit}(s) of {path}");
        return read.Examples;
    }

    /// <summary>A data file's error for the user: a record's (line or row) says that --skip-bad-lines skips it; a file's (a column) does not.</summary>
    internal static string DataError(DataFormatException e) => e.IsRecord ? e.Message + " (--skip-bad-lines skips such lines)" : e.Message;

    internal static ITeacher OpenTeacher(string dir, string providerText, ILossKernels kernels, int vocab, int threads, TextWriter stderr, int vocabLimit = 0,
        SafeTensorDType weights = SafeTensorDType.F32, int logitsChunkRows = 0)
    {
        // ONNX Runtime's providers: CUDA or the CPU; cuda-c names loss kernels, not a provider.
        if (!ComputeDevices.TryParse(providerText, out var provider) || provider == ComputeDevice.CudaC)
            throw new UsageException($"--teacher-provider must be auto, cpu or cuda, got '{providerText}'.");
        provider = TeacherProvider.Resolve(provider, out string? cpuReason);
        try
        {
            var options = new TeacherOptions { Provider = provider, CpuReason = cpuReason, AllowCpuFallback = false, IntraOpThreads = threads, Log = l => stderr.WriteLine(l) };
            var t = ModelStore.OpenTeacher(dir, options, kernels, vocab, threads, vocabLimit, weights, logitsChunkRows);
            stderr.WriteLine($"teacher: {t.Description}");
            return t;
        }
        catch (ArgumentException e) { throw new UsageException($"--teacher {dir}: {e.Message}"); }
        catch (FileNotFoundException e) { throw new UsageException($"--teacher {dir}: {e.Message}"); }
        catch (InvalidDataException e) { throw new UsageException($"--teacher {dir}: {e.Message}"); }
        catch (InvalidOperationException e) when (provider == ComputeDevice.Cuda) { throw new UsageException($"--teacher-provider cuda: {e.Message}"); }
    }
}
