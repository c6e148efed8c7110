using ILGPU.Runtime;
using Raft.Distributed;
using Raft.Kernels;
using Raft.Model;

namespace Raft.Pipeline.Training;

/// <summary>
/// Where the student trains: its forward, the loss on its logits, the backward, the gradient reduction over ranks,
/// clipping and AdamW. Where the logits, gradients and optimizer state live is the backend's business:
/// <see cref="CpuStudent"/> (host, gradients all-reduced over the ranks), <see cref="ZeroStudent"/> (host, optimizer
/// state sharded over the ranks, ZeRO-1) and <see cref="GpuStudent"/> (an ILGPU accelerator; logits never leave it).
/// The host <see cref="LlamaModel"/> stays the one the rollouts and checkpoints read (<see cref="SyncHostWeights"/>).
/// </summary>
internal interface IStudentBackend : IDisposable
{
    /// <summary>The learning rate of the next update.</summary>
    double CurrentLearningRate { get; }

    /// <summary>What the run's log line says of this backend ("" for the plain CPU path).</summary>
    string Describe();

    /// <summary>The forward of the batch and the losses on its logits (gradients in place, unweighted).</summary>
    StepLosses ForwardAndLoss(PackedBatch batch, StepLoss loss, float kdNormalizer, float ceNormalizer);

    /// <summary>Scales the two gradient parts by the balancer's weights (RAFT).</summary>
    void Weigh(PackedBatch batch, double wKd, double wSft);

    /// <summary>
    /// Backward of the current micro-batch from its weighted gradients, added to the step's gradients (gradient
    /// accumulation); the last micro-batch's backward is <see cref="BackwardAndUpdate"/>'s.
    /// </summary>
    void AccumulateBackward();

    /// <summary>Drops the gradients accumulated in a step that is skipped (the next step starts from zero).</summary>
    void DiscardGradients();

    /// <summary>
    /// Backward from the weighted gradients (added to those of <see cref="AccumulateBackward"/>), reduction over the ranks, clipping (<paramref name="clipNorm"/> ≤ 0: none)
    /// and, when the global norm is finite, the update. Returns the norm before clipping and whether the update was taken
    /// (the same decision on every rank).
    /// </summary>
    (double Norm, bool Applied) BackwardAndUpdate(double clipNorm);

    /// <summary>Makes the host model hold the latest weights (before rollouts, callbacks and checkpoints).</summary>
    void SyncHostWeights();

    /// <summary>The full optimizer state for a checkpoint (every rank calls it; null on the ranks that do not write).</summary>
    AdamW? CheckpointOptimizer();
}

/// <summary>Everything a student backend is built from.</summary>
internal sealed record StudentSetup(LlamaModel Model, ICollective World, TrainOptions Options, ILossKernels Kernels, AdamWOptions Adam,
    LearningRateSchedule Schedule, AdamW? Loaded, IReadOnlySet<string>? Frozen, Accelerator? Accelerator, int BucketElements)
{
    /// <summary>Whether a tensor is trained (every tensor when nothing is frozen).</summary>
    public bool IsTrainable(string name) => Frozen is null || !Frozen.Contains(name);

    /// <summary>The host optimizer: the resumed one, or fresh moments; frozen tensors get no update.</summary>
    public AdamW HostOptimizer()
    {
        var optimizer = Loaded ?? new AdamW(Model.Lora?.Parameters ?? Model.Parameters, Adam, Schedule);
        if (Frozen is not null) optimizer.SetTrainable(IsTrainable);
        return optimizer;
    }
}

/// <summary>Picks the backend a run's options and accelerator ask for.</summary>
internal static class StudentBackends
{
    public static IStudentBackend Create(StudentSetup s)
    {
        if (s.Model.IsInferenceOnly && s.Model.Lora is null)
            throw new TrainingException($"the student holds {s.Model.WeightsDescription} weights: 16-bit matrices are frozen (a LoRA base); full fine-tuning trains fp32 weights (base_weights_dtype = fp32).");
        if (s.Accelerator is not null)
        {
            if (s.Options.GradientCheckpointing)
                throw new TrainingException($"gradient_checkpointing = true: the GPU student ({s.Accelerator.Name}) does not recompute layers yet; run with device = cpu or without it.");
            if (s.Options.ComputeDType is not null)
                throw new TrainingException($"precision = {s.Options.Precision}: the GPU student ({s.Accelerator.Name}) computes in fp32; run with device = cpu or precision = fp32.");
            // LoRA trains on the device (a 16-bit base is widened to fp32 there); its dropout masks are not drawn there
            if (s.Model.Lora is { Config.Dropout: > 0 } lora)
                throw new TrainingException($"lora_dropout = {lora.Config.Dropout}: the GPU student ({s.Accelerator.Name}) does not draw LoRA dropout masks yet; run with lora_dropout = 0 or device = cpu.");
            if (s.Options.GradientAccumulationSteps > 1)
                throw new TrainingException($"gradient_accumulation_steps = {s.Options.GradientAccumulationSteps}: the GPU student ({s.Accelerator.Name}) does not accumulate micro-batches yet; run with device = cpu or raise batch_size.");
            if (s.World.WorldSize > 1)
                throw new TrainingException($"the student on {s.Accelerator.Name} runs in one process for now ({s.World.WorldSize} ranks here): " +
                                            "its gradients are not all-reduced on the device; run the ranks with device = cpu.");
            return new GpuStudent(s);
        }
        return s.Options.ShardOptimizer && s.World.WorldSize > 1 ? new ZeroStudent(s) : new CpuStudent(s);
    }
}
