using System.Text.Json.Serialization;

namespace Raft.Pipeline.Training;

/// <summary>One line of <c>metrics.jsonl</c>: what a training step did. RAFT-only fields are null for SFT.</summary>
public sealed record StepMetrics
{
    /// <summary>The step number, 1-based.</summary>
    [JsonPropertyName("step")] public int Step { get; init; }
    /// <summary>The weighted total loss optimised this step.</summary>
    [JsonPropertyName("loss")] public double Loss { get; init; }
    /// <summary>The distillation loss (τ²·D, mean over rollout tokens).</summary>
    [JsonPropertyName("kd_loss")] public double? KdLoss { get; init; }
    /// <summary>The SFT cross-entropy (mean over answer tokens).</summary>
    [JsonPropertyName("sft_loss")] public double SftLoss { get; init; }
    /// <summary>The distillation term's weight.</summary>
    [JsonPropertyName("w_kd")] public double? WeightKd { get; init; }
    /// <summary>The SFT term's weight.</summary>
    [JsonPropertyName("w_sft")] public double WeightSft { get; init; }
    /// <summary>The divergence without the τ² factor (for forward KL: KL(teacher top-K ‖ student)).</summary>
    [JsonPropertyName("kl")] public double? Kl { get; init; }
    /// <summary>The global gradient norm before clipping.</summary>
    [JsonPropertyName("grad_norm")] public double GradNorm { get; init; }
    /// <summary>Mean rollout length in tokens.</summary>
    [JsonPropertyName("rollout_len")] public double? RolloutLength { get; init; }
    /// <summary>Tokens through the student's forward and backward this step.</summary>
    [JsonPropertyName("tokens")] public long Tokens { get; init; }
    /// <summary>Those tokens over the step's wall time (rollouts and teacher included).</summary>
    [JsonPropertyName("tokens_per_s")] public double TokensPerSecond { get; init; }
    /// <summary>The learning rate used by this step's update.</summary>
    [JsonPropertyName("lr")] public double LearningRate { get; init; }
    /// <summary>Seconds this step spent sampling rollouts (RAFT).</summary>
    [JsonPropertyName("rollout_s")] public double? RolloutSeconds { get; init; }
    /// <summary>Seconds this step spent in the teacher (RAFT).</summary>
    [JsonPropertyName("teacher_s")] public double? TeacherSeconds { get; init; }
    /// <summary>Seconds this step spent in the student's forward, losses, backward and update.</summary>
    [JsonPropertyName("train_s")] public double TrainSeconds { get; init; }
    /// <summary>Wall seconds since the run (or its resume) started.</summary>
    [JsonPropertyName("elapsed_s")] public double ElapsedSeconds { get; init; }
    /// <summary>True when the step was skipped for a non-finite loss or gradient (the weights were not touched).</summary>
    [JsonPropertyName("skipped")] public bool Skipped { get; init; }
}
