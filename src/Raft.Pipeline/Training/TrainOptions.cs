using System.Text.Json;
using System.Text.Json.Serialization;
using Raft.Model;
using Raft.Kernels;

namespace Raft.Pipeline.Training;

/// <summary>Which objective a run trains.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TrainMethod>))]
public enum TrainMethod
{
    /// <summary>Cross-entropy on the target answers (plain SFT; also the base model's instruction tuning).</summary>
    Sft,
    /// <summary>RAFT stage 2: on-policy rollouts, answer-conditioned teacher top-K distillation + SFT on the fused answer, EMA-balanced.</summary>
    Raft,
}

/// <summary>
/// Every option of a training run, with documented defaults. Serialised as the run directory's <c>config.json</c>
/// (snake_case keys); a JSON file of the same shape can be given to the CLI with <c>--config</c>.
/// </summary>
public sealed record TrainOptions
{
    /// <summary>The objective.</summary>
    [JsonPropertyName("method")] public TrainMethod Method { get; init; } = TrainMethod.Raft;
    /// <summary>Optimizer steps (unused when <see cref="Epochs"/> is set; the CLI refuses both).</summary>
    [JsonPropertyName("steps")] public int Steps { get; init; } = 200;
    /// <summary>
    /// Passes over the data instead of <see cref="Steps"/> (Hugging Face's <c>num_train_epochs</c>, fractions allowed); null
    /// (the default): <see cref="Steps"/>. The run takes ⌈epochs × ⌈examples / global batch⌉⌉ steps (HF's count), the
    /// schedule decays over them; a step never has a short batch: the last one of an epoch continues into the next
    /// epoch's shuffle (<see cref="StepsFor"/>).
    /// </summary>
    [JsonPropertyName("epochs")] public double? Epochs { get; init; }
    /// <summary>
    /// Keep only the newest K checkpoints under checkpoints/ (Hugging Face's <c>save_total_limit</c>); older ones are
    /// deleted after each new one is written (never the newest, the one a resume needs; <c>final/</c> is not counted);
    /// null (the default): keep all. Not compared on resume.
    /// </summary>
    [JsonPropertyName("save_total_limit")] public int? SaveTotalLimit { get; init; }

    /// <summary>
    /// Evaluation sets (JSONL files in the format <c>raft eval --set</c> reads: <see cref="Raft.Pipeline.Eval.EvalSet"/>)
    /// the student is scored on during training with <c>raft eval</c>'s evaluator (greedy answers, the chat template,
    /// accuracy and format compliance), every <see cref="EvalEvery"/> steps and at the last step; each evaluation is a
    /// line of metrics.jsonl (<see cref="EvalMetrics"/>). null (the default): none. Evaluation reads the weights only:
    /// the run's weights, sampling and resume are the same with or without it. Not compared on resume.
    /// </summary>
    [JsonPropertyName("eval_set")] public string[]? EvalSet { get; init; }
    /// <summary>Evaluate on <see cref="EvalSet"/> every N steps (Hugging Face's <c>eval_steps</c>), and at the last; 0 (the default): at the last step only. Needs eval_set.</summary>
    [JsonPropertyName("eval_every")] public int EvalEvery { get; init; }
    /// <summary>The most tokens of an answer in those evaluations (default 64, <c>raft eval</c>'s <c>--max-new-tokens</c> default).</summary>
    [JsonPropertyName("eval_max_new_tokens")] public int EvalMaxNewTokens { get; init; } = 64;

    /// <summary>
    /// The run's optimizer steps for <paramref name="examples"/> examples and a global batch of
    /// <paramref name="globalBatch"/>: <see cref="Steps"/>, or with <see cref="Epochs"/> ⌈epochs × ⌈examples / batch⌉⌉.
    /// </summary>
    public int StepsFor(int examples, int globalBatch)
    {
        if (Epochs is not double e) return Steps;
        double perEpoch = Math.Ceiling((double)examples / Math.Max(1, globalBatch));
        double steps = Math.Ceiling(e * perEpoch - 1e-9);
        if (!(steps <= int.MaxValue))
            throw new ArgumentException($"epochs = {Format(e)}: {examples} examples in batches of {globalBatch} make {steps:0} steps, more than {int.MaxValue}.", "epochs");
        return Math.Max(1, (int)steps);
    }
    /// <summary>
    /// The most positions of a training sequence (Hugging Face SFTTrainer's <c>max_length</c>); null (the default): the
    /// model's max_position_embeddings, and a larger value is refused. A longer prompt + answer is truncated, not refused:
    /// it keeps its first N tokens (the answer loses its end); a prompt that alone leaves no answer token loses its start,
    /// down to its last ⌊N/2⌋ tokens. RAFT rollouts are limited so that prompt + rollout ≤ N. The counts are logged at
    /// the start and returned in <see cref="TrainResult.Truncation"/> (details: TrainData.Encode).
    /// </summary>
    [JsonPropertyName("max_length")] public int? MaxLength { get; init; }

    /// <summary>
    /// Which rows of the data file the run trains on, in Hugging Face's split-slicing syntax without the split name
    /// (<see cref="Data.RowSlice"/>: <c>[:1000]</c>, <c>[10:20]</c>, <c>[:10%]</c>, <c>[-5%:]</c>); null (the default): all.
    /// Applied by whoever reads the data (the CLI's <c>--data</c>), before the examples reach the <see cref="Trainer"/>;
    /// compared on resume (another selection is other data).
    /// </summary>
    [JsonPropertyName("rows")] public string? Rows { get; init; }

    /// <summary><see cref="Rows"/> parsed, or null for every row; a bad slice is an <see cref="ArgumentException"/> for key <c>rows</c>.</summary>
    public Data.RowSlice? RowSelection() => Rows is null ? null : ParseRows(Rows);

    /// <summary>Parses a <c>rows</c> value; a bad one is an <see cref="ArgumentException"/> with parameter name <c>rows</c>.</summary>
    public static Data.RowSlice ParseRows(string rows)
    {
        try { return Data.RowSlice.Parse(rows); }
        catch (ArgumentException e) { throw new ArgumentException($"rows = {e.Message}", "rows", e); }
    }

    /// <summary>Prompts per micro-batch per rank (Hugging Face's <c>per_device_train_batch_size</c>).</summary>
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 16;
    /// <summary>
    /// Micro-batches per optimizer step (Hugging Face's <c>gradient_accumulation_steps</c>, default 1): a step takes
    /// <see cref="BatchSize"/> × N examples per rank, runs them as N micro-batches of <see cref="BatchSize"/> whose
    /// gradients are summed, then clips and updates once: the update of one batch of BatchSize × N (the losses are
    /// normalised by the whole step's token counts). Memory grows with the micro-batch. The global batch is
    /// batch_size × ranks × N.
    /// </summary>
    [JsonPropertyName("gradient_accumulation_steps")] public int GradientAccumulationSteps { get; init; } = 1;
    /// <summary>Examples per optimizer step per rank: <see cref="BatchSize"/> × <see cref="GradientAccumulationSteps"/>.</summary>
    [JsonIgnore] public int StepBatchSize => BatchSize * GradientAccumulationSteps;
    /// <summary>Peak learning rate (AdamW).</summary>
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 1e-3;
    /// <summary>The learning rate at the end of the cosine decay; null (the default): <see cref="MinLearningRateRatio"/> × <see cref="LearningRate"/>.</summary>
    [JsonPropertyName("min_learning_rate")] public double? MinLearningRate { get; init; }
    /// <summary>The end of the cosine decay as a fraction of <see cref="LearningRate"/> when <see cref="MinLearningRate"/> is not given (default 0.1).</summary>
    [JsonPropertyName("min_lr_ratio")] public double MinLearningRateRatio { get; init; } = 0.1;
    /// <summary>The learning rate at the end of the decay, resolved: <see cref="MinLearningRate"/>, else the ratio times the peak.</summary>
    [JsonIgnore] public double FloorLearningRate => MinLearningRate ?? MinLearningRateRatio * LearningRate;
    /// <summary>Linear warm-up steps.</summary>
    [JsonPropertyName("warmup_steps")] public int WarmupSteps { get; init; } = 10;
    /// <summary>AdamW decoupled weight decay (2-D tensors only).</summary>
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; } = 0.0;
    /// <summary>AdamW β₁.</summary>
    [JsonPropertyName("beta1")] public double Beta1 { get; init; } = 0.9;
    /// <summary>AdamW β₂.</summary>
    [JsonPropertyName("beta2")] public double Beta2 { get; init; } = 0.95;
    /// <summary>Global gradient-norm clip (0: off).</summary>
    [JsonPropertyName("clip_norm")] public double ClipNorm { get; init; } = 1.0;
    /// <summary>Seed of data order and rollout sampling.</summary>
    [JsonPropertyName("seed")] public int Seed { get; init; } = 1;
    /// <summary>CPU threads (0: all cores).</summary>
    [JsonPropertyName("threads")] public int Threads { get; init; }
    /// <summary>Save a resumable checkpoint every N steps (0: only at the end).</summary>
    [JsonPropertyName("checkpoint_every")] public int CheckpointEvery { get; init; }
    /// <summary>Stop with an error after this many non-finite steps in a row (each one is skipped).</summary>
    [JsonPropertyName("max_nonfinite_steps")] public int MaxNonFiniteSteps { get; init; } = 5;
    /// <summary>
    /// Where the loss kernels run: auto, cpu, cuda (ILGPU) or cuda-c (the CUDA C kernels), written in config.json as
    /// those strings (<see cref="ComputeDevices"/>; read case-insensitively). The caller turns it into the kernels it
    /// passes to the <see cref="Trainer"/> (the CLI does, through Raft.Kernels.Cuda's KernelBackendFactory, and gives a
    /// GPU student their accelerator). Not compared on resume (like <see cref="Threads"/>).
    /// </summary>
    [JsonPropertyName("device"), JsonConverter(typeof(ComputeDeviceJsonConverter))]
    public ComputeDevice Device { get; init; } = ComputeDevice.Auto;

    /// <summary>
    /// Where the per-step metrics go besides metrics.jsonl (Hugging Face's <c>report_to</c>): null or "none" (the
    /// default), or "tensorboard": an event file <see cref="TensorBoardEvents.FileName"/> in the run directory with each
    /// step's numbers as scalars <c>train/KEY</c> (<see cref="TensorBoardEvents"/>). Not compared on resume.
    /// </summary>
    [JsonPropertyName("report_to")] public string? ReportTo { get; init; }

    /// <summary>True when <see cref="ReportTo"/> asks for TensorBoard event files.</summary>
    [JsonIgnore] public bool ReportsToTensorBoard => ReportTo == "tensorboard";

    /// <summary>
    /// ZeRO stage 1 in a data-parallel run: each rank keeps AdamW's moments for its 1/N of the parameters only
    /// (reduce-scatter of the gradients, update of the slice, all-gather of the weights), cutting the optimizer's memory
    /// by the number of ranks; checkpoints are gathered on rank 0 and are the files of an unsharded run. No effect in a
    /// single process. Not compared on resume (like <see cref="Threads"/>): either setting resumes either checkpoint.
    /// </summary>
    [JsonPropertyName("shard_optimizer")] public bool ShardOptimizer { get; init; }

    /// <summary>
    /// In a data-parallel run, sum each gradient bucket over the ranks on a communication thread while the backward
    /// computes the layers before it; false (the default): the buckets are summed after the backward. The same sums bit
    /// for bit either way. Off by default because it was measured to hurt where each rank has one core: 2 ranks × 1
    /// core, demo model, 308 ms/step overlapped against 118 ms after the backward (benchmarks/results/allreduce-cpu.md).
    /// Worth trying with several cores per rank and a gradient of many buckets (it does nothing with one bucket).
    /// Not compared on resume.
    /// </summary>
    [JsonPropertyName("overlap_allreduce")] public bool OverlapAllReduce { get; init; }

    /// <summary>
    /// Which parameters are trained: a regular expression matched (anywhere, .NET syntax) against each tensor's name, e.g.
    /// <c>mlp</c> trains the MLP blocks and freezes attention, norms and embeddings (Hugging Face names:
    /// <c>model.layers.3.mlp.down_proj.weight</c>). null (the default): every parameter. Frozen tensors get no update, no
    /// weight decay and no share of the clipping norm (PyTorch's <c>requires_grad = False</c>); the checkpoints still hold
    /// every tensor. A pattern that matches no tensor is an error.
    /// </summary>
    [JsonPropertyName("trainable")] public string? Trainable { get; init; }

    /// <summary>
    /// LoRA rank r: train adapters y = W·x + (α/r)·B·A·x on <see cref="LoraTargets"/> instead of the weights, which stay
    /// frozen (PEFT's layout in every checkpoint: adapter_config.json, adapter_model.safetensors); null (the default): full
    /// fine-tuning. For RAFT without a separate teacher, the teacher is the same weights with the adapters off.
    /// </summary>
    [JsonPropertyName("lora_rank")] public int? LoraRank { get; init; }
    /// <summary>LoRA α (PEFT's lora_alpha; null: 8, PEFT's default); the update is scaled by α/r.</summary>
    [JsonPropertyName("lora_alpha")] public double? LoraAlpha { get; init; }
    /// <summary>LoRA dropout on the adapter input in training (PEFT's lora_dropout; null: 0).</summary>
    [JsonPropertyName("lora_dropout")] public double? LoraDropout { get; init; }
    /// <summary>The wrapped projections, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or all-linear; null: q_proj,v_proj, PEFT's default for these models).</summary>
    [JsonPropertyName("lora_targets")] public string? LoraTargets { get; init; }

    /// <summary>The LoRA hyper-parameters, or null without <see cref="LoraRank"/>.</summary>
    public LoraConfig? Lora() => LoraRank is not int r ? null : new LoraConfig
    {
        Rank = r, Alpha = LoraAlpha ?? 8, Dropout = LoraDropout ?? 0,
        TargetModules = LoraConfig.ParseTargets(LoraTargets ?? "q_proj,v_proj", "lora_targets"),
    };

    /// <summary>Teacher top-K per position (RAFT).</summary>
    [JsonPropertyName("top_k")] public int TopK { get; init; } = 16;
    /// <summary>Distillation temperature τ (RAFT).</summary>
    [JsonPropertyName("temperature")] public float Temperature { get; init; } = 1.0f;
    /// <summary>The divergence (RAFT).</summary>
    [JsonPropertyName("loss_kind"), JsonConverter(typeof(DistillLossKindJsonConverter))] public DistillLossKind LossKind { get; init; } = DistillLossKind.ForwardKL;
    /// <summary>β of the generalized JSD (RAFT, loss kind Jsd).</summary>
    [JsonPropertyName("jsd_beta")] public float JsdBeta { get; init; } = 0.5f;
    /// <summary>EMA decay of the adaptive balancer (RAFT).</summary>
    [JsonPropertyName("ema_decay")] public double EmaDecay { get; init; } = 0.9;
    /// <summary>Target contribution ratio [distillation, SFT] of the balancer (RAFT).</summary>
    [JsonPropertyName("target_ratio")] public double[] TargetRatio { get; init; } = [1.0, 1.0];
    /// <summary>Fixed weights [distillation, SFT] instead of EMA balancing (RAFT ablation); null: EMA.</summary>
    [JsonPropertyName("fixed_weights")] public double[]? FixedWeights { get; init; }
    /// <summary>Place the fused answer in the teacher's context (RAFT); false is the "no answer conditioning" ablation.</summary>
    [JsonPropertyName("answer_conditioned")] public bool AnswerConditioned { get; init; } = true;
    /// <summary>Sampling temperature of the student's rollouts (RAFT).</summary>
    [JsonPropertyName("rollout_temperature")] public float RolloutTemperature { get; init; } = 1.0f;
    /// <summary>Most new tokens per rollout (RAFT).</summary>
    [JsonPropertyName("rollout_max_tokens")] public int RolloutMaxTokens { get; init; } = 32;
    /// <summary>The most rollouts per prompt a run accepts (a step also needs its logits to fit one array: see <see cref="Trainer"/>).</summary>
    public const int MaxRolloutsPerPrompt = 1024;
    /// <summary>Rollouts per prompt (RAFT).</summary>
    [JsonPropertyName("rollouts_per_prompt")] public int RolloutsPerPrompt { get; init; } = 1;
    /// <summary>
    /// How a checkpoint teacher (frozen) holds its matrices: fp32 (widened, the default), bf16 or fp16 (as stored, widened
    /// in the matmul kernels with fp32 accumulation). The student always trains on fp32 weights.
    /// </summary>
    [JsonPropertyName("teacher_weights_dtype")] public string TeacherWeightsDType { get; init; } = "fp32";

    /// <summary>
    /// Rows of logits the CPU student's lm_head + loss and an engine teacher's top-K compute at a time (0, the default: as
    /// many as fit 64 MiB of fp32 logits, <see cref="Raft.Model.LogitsChunk"/>); the whole [rows, V] never exists.
    /// </summary>
    [JsonPropertyName("logits_chunk_rows")] public int LogitsChunkRows { get; init; }
    /// <summary>
    /// Keep only each layer's input in the student's forward and recompute the layer in the backward (the same gradients,
    /// for one more forward of the layers; CPU student only).
    /// </summary>
    [JsonPropertyName("gradient_checkpointing")] public bool GradientCheckpointing { get; init; }
    /// <summary>
    /// The student's matmul precision: fp32 (the default) or mixed precision bf16 / fp16 — every fp32 matrix gets a
    /// 16-bit compute copy (round to nearest even) that the forward, the input gradients and the rollouts read (widened
    /// in registers, fp32 accumulation); activations, norms, the loss and the weight gradients stay fp32 and AdamW
    /// updates the fp32 master weights, after which the copies are re-rounded. CPU student only.
    /// </summary>
    [JsonPropertyName("precision")] public string Precision { get; init; } = "fp32";

    /// <summary>The 16-bit compute dtype <see cref="Precision"/> names, or null for fp32.</summary>
    [JsonIgnore]
    public Raft.Model.SafeTensorDType? ComputeDType =>
        Raft.Model.SafeTensorDTypes.ParseWeightsDType(Precision, "precision") is var d && d != Raft.Model.SafeTensorDType.F32 ? d : null;

    /// <summary>
    /// How a LoRA student holds its frozen base matrices: auto (the default: as the checkpoint stores them, so a bf16
    /// checkpoint stays bf16), fp32 (widened), bf16 or fp16 (as stored; the other 16-bit dtype is refused). 16-bit base
    /// weights are widened inside the forward and backward kernels (fp32 accumulation) and, with the base as teacher,
    /// serve the teacher too (one copy). Without LoRA every matrix trains in fp32: only auto and fp32 apply.
    /// </summary>
    [JsonPropertyName("base_weights_dtype")] public string BaseWeightsDType { get; init; } = "auto";

    /// <summary>
    /// The dtype the student's matrices are loaded in for <paramref name="storedMatrices"/> (the checkpoint's: F32, BF16
    /// or F16): F32 unless LoRA freezes the base and <see cref="BaseWeightsDType"/> asks for (or, auto, finds) 16 bits.
    /// </summary>
    public Raft.Model.SafeTensorDType StudentMatrices(Raft.Model.SafeTensorDType storedMatrices)
    {
        if (LoraRank is null) return Raft.Model.SafeTensorDType.F32;
        return BaseWeightsDType.Equals("auto", StringComparison.OrdinalIgnoreCase)
            ? storedMatrices
            : Raft.Model.SafeTensorDTypes.ParseWeightsDType(BaseWeightsDType, "base_weights_dtype");
    }

    /// <summary>The distillation settings (K, τ, loss kind, β) the teacher scores with and the loss uses.</summary>
    [JsonIgnore] public DistillSettings Distill => new(TopK, Temperature, LossKind, JsdBeta);

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the option and its value.</summary>
    public void Validate()
    {
        static void Fail(string name, object? value, string rule) =>
            throw new ArgumentException($"{name} = {Format(value)}: {rule}.", name);
        if (Steps < 1) Fail("steps", Steps, "must be ≥ 1");
        _ = RowSelection();
        if (Epochs is double epochs && !(epochs > 0 && double.IsFinite(epochs))) Fail("epochs", epochs, "must be finite and > 0 (or null: use steps)");
        if (SaveTotalLimit is int keep && keep < 1) Fail("save_total_limit", keep, "must be ≥ 1 (or null: keep every checkpoint)");
        if (EvalEvery < 0) Fail("eval_every", EvalEvery, "must be ≥ 0 (0: evaluate at the last step only)");
        if (EvalEvery > 0 && EvalSet is not { Length: > 0 }) Fail("eval_every", EvalEvery, "needs eval_set (the evaluation files to score the student on)");
        if (EvalSet is not null && EvalSet.Any(string.IsNullOrWhiteSpace)) Fail("eval_set", EvalSet, "holds an empty file name");
        if (EvalMaxNewTokens < 1) Fail("eval_max_new_tokens", EvalMaxNewTokens, "must be ≥ 1");
        if (BatchSize < 1) Fail("batch_size", BatchSize, "must be ≥ 1");
        if (MaxLength is int maxLength && maxLength < 2) Fail("max_length", maxLength, "must be ≥ 2 (or null: the model's max_position_embeddings)");
        if (GradientAccumulationSteps < 1) Fail("gradient_accumulation_steps", GradientAccumulationSteps, "must be ≥ 1");
        if (GradientAccumulationSteps > 1 && (long)BatchSize * GradientAccumulationSteps > int.MaxValue / 64)
            Fail("gradient_accumulation_steps", GradientAccumulationSteps, $"batch_size {BatchSize} × it must stay below {int.MaxValue / 64}");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) Fail("learning_rate", LearningRate, "must be finite and > 0");
        if (MinLearningRate is double min && (!(min >= 0) || min > LearningRate)) Fail("min_learning_rate", min, "must be in [0, learning_rate]");
        if (!(MinLearningRateRatio >= 0) || MinLearningRateRatio > 1) Fail("min_lr_ratio", MinLearningRateRatio, "must be in [0, 1]");
        if (WarmupSteps < 0) Fail("warmup_steps", WarmupSteps, "must be ≥ 0");
        if (!(WeightDecay >= 0)) Fail("weight_decay", WeightDecay, "must be ≥ 0");
        if (!(Beta1 >= 0 && Beta1 < 1)) Fail("beta1", Beta1, "must be in [0, 1)");
        if (!(Beta2 >= 0 && Beta2 < 1)) Fail("beta2", Beta2, "must be in [0, 1)");
        if (!(ClipNorm >= 0)) Fail("clip_norm", ClipNorm, "must be ≥ 0 (0: off)");
        if (Threads < 0) Fail("threads", Threads, "must be ≥ 0 (0: all cores)");
        if (CheckpointEvery < 0) Fail("checkpoint_every", CheckpointEvery, "must be ≥ 0");
        if (MaxNonFiniteSteps < 1) Fail("max_nonfinite_steps", MaxNonFiniteSteps, "must be ≥ 1");
        if (!Enum.IsDefined(Device)) Fail("device", (int)Device, $"must be {ComputeDevices.Choices}");
        if (ReportTo is not (null or "none" or "tensorboard")) Fail("report_to", $"\"{ReportTo}\"", "must be tensorboard or none");
        if (Trainable is not null) _ = TrainablePattern();
        if (LoraRank is null)
        {
            if (LoraAlpha is not null) Fail("lora_alpha", LoraAlpha, "needs lora_rank");
            if (LoraDropout is not null) Fail("lora_dropout", LoraDropout, "needs lora_rank");
            if (LoraTargets is not null) Fail("lora_targets", LoraTargets, "needs lora_rank");
        }
        else
        {
            if (Trainable is not null) Fail("trainable", Trainable, "cannot be combined with lora_rank (LoRA trains the adapters only)");
            try { Lora()!.Validate(); }
            catch (ArgumentException e)
            {
                (string key, object? value) = e.ParamName switch
                {
                    "r" => ("lora_rank", (object?)LoraRank), "lora_alpha" => ("lora_alpha", LoraAlpha), "lora_dropout" => ("lora_dropout", LoraDropout),
                    _ => ("lora_targets", LoraTargets),
                };
                // the rule alone: without .NET's " (Parameter 'r')" and "Actual value was …", and without its own full stop (Fail adds one)
                Fail(key, value, e.Message.Split(" (Parameter '")[0].TrimEnd('.'));
            }
        }
        _ = Raft.Model.SafeTensorDTypes.ParseWeightsDType(TeacherWeightsDType, "teacher_weights_dtype");
        try { _ = ComputeDType; }
        catch (ArgumentException) { Fail("precision", Precision, $"must be {Raft.Model.SafeTensorDTypes.WeightsDTypeChoices}"); }
        if (LogitsChunkRows < 0) Fail("logits_chunk_rows", LogitsChunkRows, "must be ≥ 0 (0: as many rows as fit 64 MiB of logits)");
        if (BaseWeightsDType is null || !BaseWeightsDType.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            Raft.Model.SafeTensorDType dtype = default;
            try { dtype = Raft.Model.SafeTensorDTypes.ParseWeightsDType(BaseWeightsDType, "base_weights_dtype"); }
            catch (ArgumentException) { Fail("base_weights_dtype", BaseWeightsDType, $"must be auto, {Raft.Model.SafeTensorDTypes.WeightsDTypeChoices}"); }
            if (LoraRank is null && dtype != Raft.Model.SafeTensorDType.F32)
                Fail("base_weights_dtype", BaseWeightsDType, "keeps a LoRA student's frozen base in 16 bits and needs lora_rank (full fine-tuning trains every matrix in fp32: auto or fp32)");
        }
        if (Method != TrainMethod.Raft) return;
        if (TopK < 1) Fail("top_k", TopK, "must be ≥ 1");
        if (!(Temperature > 0) || !float.IsFinite(Temperature)) Fail("temperature", Temperature, "must be finite and > 0");
        if (!(JsdBeta >= 0 && JsdBeta <= 1)) Fail("jsd_beta", JsdBeta, "must be in [0, 1]");
        if (!(EmaDecay >= 0 && EmaDecay < 1)) Fail("ema_decay", EmaDecay, "must be in [0, 1)");
        if (TargetRatio is not { Length: 2 } || !TargetRatio.All(r => r > 0 && double.IsFinite(r)))
            Fail("target_ratio", TargetRatio, "must be two finite values > 0 ([distillation, sft])");
        if (FixedWeights is not null && (FixedWeights.Length != 2 || !FixedWeights.All(w => w >= 0 && double.IsFinite(w)) || FixedWeights.Sum() == 0))
            Fail("fixed_weights", FixedWeights, "must be two finite values ≥ 0, not both 0 ([distillation, sft])");
        if (!(RolloutTemperature >= 0) || !float.IsFinite(RolloutTemperature)) Fail("rollout_temperature", RolloutTemperature, "must be finite and ≥ 0 (0: greedy)");
        if (RolloutMaxTokens < 1) Fail("rollout_max_tokens", RolloutMaxTokens, "must be ≥ 1");
        if (RolloutsPerPrompt < 1 || RolloutsPerPrompt > MaxRolloutsPerPrompt)
            Fail("rollouts_per_prompt", RolloutsPerPrompt, $"must be in [1, {MaxRolloutsPerPrompt}]");
    }

    /// <summary>
    /// <see cref="Trainable"/> compiled (null when every parameter is trained); an empty or invalid pattern throws an
    /// <see cref="ArgumentException"/> naming the option and the pattern.
    /// </summary>
    public System.Text.RegularExpressions.Regex? TrainablePattern()
    {
        if (Trainable is null) return null;
        if (Trainable.Length == 0) throw new ArgumentException("trainable = \"\": must be a regular expression over tensor names, or null for all.", "trainable");
        try
        {
            return new System.Text.RegularExpressions.Regex(Trainable, System.Text.RegularExpressions.RegexOptions.CultureInvariant, TimeSpan.FromSeconds(2));
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"trainable = \"{Trainable}\": not a valid regular expression ({e.Message}).", "trainable", e);
        }
    }

    private static string Format(object? value) => value switch
    {
        null => "null",
        double[] a => "[" + string.Join(", ", a) + "]",
        string[] a => "[" + string.Join(", ", a.Select(x => $"\"{x}\"")) + "]",
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>The JSON options used for config files (snake_case, enums as strings, indented).</summary>
    public static JsonSerializerOptions Json { get; } = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>The options as indented JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads options from a JSON file; an unknown key or a bad value is reported with the file.</summary>
    public static TrainOptions Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config file {path} does not exist.", path);
        try
        {
            return JsonSerializer.Deserialize<TrainOptions>(File.ReadAllText(path), Json)
                   ?? throw new InvalidDataException($"{path}: the config is null.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: line {(e.LineNumber ?? 0) + 1}: {e.Message}", e);
        }
    }
}
