using System.Text.Json.Serialization;

namespace Raft.Model;

/// <summary>How the learning rate falls after warm-up.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<LearningRateDecay>))]
public enum LearningRateDecay
{
    /// <summary>Half a cosine from the peak down to the minimum.</summary>
    Cosine,
    /// <summary>A straight line from the peak down to the minimum.</summary>
    Linear,
    /// <summary>Stays at the peak.</summary>
    Constant,
}

/// <summary>
/// Learning rate per optimizer step: a linear warm-up to <see cref="PeakLearningRate"/> over the first
/// <see cref="WarmupSteps"/> W updates (lr = peak·(s+1)/W for the update at step s &lt; W, 0-based: the first update
/// already moves the weights, the last warm-up update, s = W−1, is at the peak), then a cosine or linear decay from the
/// peak at s = W reaching <see cref="MinLearningRate"/> at <see cref="TotalSteps"/> and staying there. Its position is
/// the optimizer's step count, saved with it.
/// <para>Against Hugging Face (<c>get_cosine_schedule_with_warmup</c> / <c>get_linear_schedule_with_warmup</c> under a
/// <c>LambdaLR</c>, stepped after each <c>optimizer.step()</c>): HF's update s uses lr_lambda(s), s from 0, so its first
/// update has lr 0 (a one-step run trains nothing) and it reaches the peak at update W. Ours uses HF's lr_lambda(s+1)
/// during warm-up and HF's lr_lambda(s) from s = W on: the decay is HF's exactly (the peak is used by updates W−1 and W);
/// without warm-up the two are identical.</para>
/// </summary>
public sealed record LearningRateSchedule
{
    /// <summary>The learning rate at the end of warm-up.</summary>
    public double PeakLearningRate { get; init; } = 1e-5;
    /// <summary>The floor reached at the end of the decay.</summary>
    public double MinLearningRate { get; init; }
    /// <summary>Steps of linear warm-up (0: start at the peak).</summary>
    public long WarmupSteps { get; init; }
    /// <summary>The step at which the decay reaches <see cref="MinLearningRate"/> (≥ <see cref="WarmupSteps"/>).</summary>
    public long TotalSteps { get; init; } = 1;
    /// <summary>The decay's shape.</summary>
    public LearningRateDecay Decay { get; init; } = LearningRateDecay.Cosine;

    /// <summary>A constant learning rate.</summary>
    public static LearningRateSchedule Constant(double learningRate) =>
        new() { PeakLearningRate = learningRate, MinLearningRate = learningRate, Decay = LearningRateDecay.Constant };

    /// <summary>Checks the fields; throws <see cref="ArgumentException"/> naming the field and value.</summary>
    public void Validate()
    {
        if (!(PeakLearningRate >= 0) || !double.IsFinite(PeakLearningRate))
            throw new ArgumentException($"PeakLearningRate must be finite and ≥ 0, got {PeakLearningRate}.", nameof(PeakLearningRate));
        if (!(MinLearningRate >= 0) || MinLearningRate > PeakLearningRate)
            throw new ArgumentException($"MinLearningRate must be in 0..PeakLearningRate ({PeakLearningRate}), got {MinLearningRate}.", nameof(MinLearningRate));
        if (WarmupSteps < 0) throw new ArgumentException($"WarmupSteps must be ≥ 0, got {WarmupSteps}.", nameof(WarmupSteps));
        if (TotalSteps < WarmupSteps)
            throw new ArgumentException($"TotalSteps must be ≥ WarmupSteps ({WarmupSteps}), got {TotalSteps}.", nameof(TotalSteps));
        if (!Enum.IsDefined(Decay)) throw new ArgumentException($"Decay must be Cosine, Linear or Constant, got {Decay}.", nameof(Decay));
    }

    /// <summary>The learning rate for the update made at <paramref name="step"/> (0-based).</summary>
    public double At(long step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "step must be ≥ 0.");
        if (step < WarmupSteps) return PeakLearningRate * (step + 1) / WarmupSteps;
        if (Decay == LearningRateDecay.Constant) return PeakLearningRate;
        long span = TotalSteps - WarmupSteps;
        double progress = span == 0 ? 1.0 : Math.Min(1.0, (double)(step - WarmupSteps) / span);
        double factor = Decay == LearningRateDecay.Cosine ? 0.5 * (1.0 + Math.Cos(Math.PI * progress)) : 1.0 - progress;
        return MinLearningRate + (PeakLearningRate - MinLearningRate) * factor;
    }
}
