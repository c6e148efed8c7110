using System.Text.Json.Serialization;

namespace Raft.Kernels;

/// <summary>
/// The serializable state of an <see cref="EmaBalancer"/>: checkpoints store it and resume from it.
/// </summary>
/// <param name="Decay">d ∈ [0, 1): the EMA's decay per update.</param>
/// <param name="TargetRatio">r_k &gt; 0: the wanted share of each term's weighted contribution (normalised to sum 1 when used).</param>
/// <param name="Ema">m_k: the raw (biased) exponential moving averages of |L_k|.</param>
/// <param name="Steps">t: the number of updates so far.</param>
public sealed record EmaBalancerState(double Decay, double[] TargetRatio, double[] Ema, long Steps);

/// <summary>
/// EMA-based adaptive loss balancing (RAFT stage 2). For loss terms L_1..L_n (e.g. distillation and SFT):
/// <code>
/// update:   m_k ← d·m_k + (1−d)·|L_k|,   t ← t + 1
/// estimate: m̂_k = m_k / (1 − d^t)                          (bias correction, as in Adam)
/// weights:  w_k = (r_k / Σ_j r_j) · (Σ_j m̂_j) / max(m̂_k, ε),   ε = 1e-12
/// </code>
/// so that each weighted contribution w_k·m̂_k equals its share r_k/Σr of the total magnitude Σ_j m̂_j:
/// the terms follow the target ratio, and the overall scale of the loss (hence the meaning of the learning
/// rate) is that of the unweighted sum. Before the first update the weights are n·r_k/Σr.
/// The class is the double-precision definition and also the CPU implementation (a handful of scalars
/// per step: nothing to vectorise); <see cref="IlgpuKernels.EmaBalancerStep"/> is the device version, which
/// keeps the state next to device-resident losses so that no host synchronisation is needed.
/// </summary>
public sealed class EmaBalancer
{
    /// <summary>The floor ε of the magnitude estimate in the weight formula.</summary>
    public const double Epsilon = 1e-12;

    private readonly double[] _ratio;
    private readonly double[] _ema;
    private readonly double _decay;
    private long _steps;

    /// <summary>Creates a balancer for <paramref name="targetRatio"/>.Length terms.</summary>
    /// <param name="decay">d ∈ [0, 1) (0.99 is a common choice; 0 weighs only the last step).</param>
    /// <param name="targetRatio">r_k &gt; 0 for each term, e.g. [1, 1] for equal contributions.</param>
    public EmaBalancer(double decay, params double[] targetRatio)
        : this(new EmaBalancerState(decay, targetRatio, new double[targetRatio?.Length ?? 0], 0)) { }

    /// <summary>Resumes a balancer from a saved state (checked: throws <see cref="ArgumentException"/> on bad values).</summary>
    public EmaBalancer(EmaBalancerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!(state.Decay >= 0 && state.Decay < 1))
            Guard.Throw($"decay must be in [0, 1), got {state.Decay}.", "decay");
        if (state.TargetRatio is null || state.TargetRatio.Length == 0)
            Guard.Throw("targetRatio must name at least one term.", "targetRatio");
        for (int k = 0; k < state.TargetRatio.Length; k++)
            if (!(state.TargetRatio[k] > 0) || !double.IsFinite(state.TargetRatio[k]))
                Guard.Throw($"targetRatio[{k}] must be finite and > 0, got {state.TargetRatio[k]}.", "targetRatio");
        if (state.Ema is null || state.Ema.Length != state.TargetRatio.Length)
            Guard.Throw($"ema must have {state.TargetRatio.Length} values (one per term), got {state.Ema?.Length ?? 0}.", "ema");
        for (int k = 0; k < state.Ema.Length; k++)
            if (!(state.Ema[k] >= 0) || !double.IsFinite(state.Ema[k]))
                Guard.Throw($"ema[{k}] must be finite and ≥ 0, got {state.Ema[k]}.", "ema");
        if (state.Steps < 0) Guard.Throw($"steps must be ≥ 0, got {state.Steps}.", "steps");
        _decay = state.Decay;
        _ratio = (double[])state.TargetRatio.Clone();
        _ema = (double[])state.Ema.Clone();
        _steps = state.Steps;
    }

    /// <summary>The number of terms.</summary>
    public int Terms => _ratio.Length;

    /// <summary>The number of updates so far.</summary>
    public long Steps => _steps;

    /// <summary>A copy of the state, for checkpoints.</summary>
    [JsonIgnore]
    public EmaBalancerState State => new(_decay, (double[])_ratio.Clone(), (double[])_ema.Clone(), _steps);

    /// <summary>Feeds one step's loss values (one per term); a NaN or infinite value is rejected, leaving the state unchanged.</summary>
    public void Update(ReadOnlySpan<double> losses)
    {
        if (losses.Length != Terms) Guard.Throw($"losses must have {Terms} values (one per term), got {losses.Length}.", nameof(losses));
        for (int k = 0; k < losses.Length; k++)
            if (!double.IsFinite(losses[k])) Guard.Throw($"losses[{k}] must be finite, got {losses[k]}.", nameof(losses));
        for (int k = 0; k < losses.Length; k++) _ema[k] = _decay * _ema[k] + (1 - _decay) * Math.Abs(losses[k]);
        _steps++;
    }

    /// <summary>The bias-corrected magnitude estimates m̂_k (zeros before the first update).</summary>
    public double[] Estimates()
    {
        var m = new double[Terms];
        if (_steps == 0) return m;
        double correction = 1 - Math.Pow(_decay, _steps);
        for (int k = 0; k < m.Length; k++) m[k] = _ema[k] / correction;
        return m;
    }

    /// <summary>The current weights w_k (see the class comment for the formula).</summary>
    public double[] Weights()
    {
        double ratioSum = 0;
        foreach (double r in _ratio) ratioSum += r;
        var w = new double[Terms];
        if (_steps == 0)
        {
            for (int k = 0; k < w.Length; k++) w[k] = Terms * _ratio[k] / ratioSum;
            return w;
        }
        var m = Estimates();
        double total = 0;
        foreach (double v in m) total += v;
        for (int k = 0; k < w.Length; k++) w[k] = _ratio[k] / ratioSum * total / Math.Max(m[k], Epsilon);
        return w;
    }

    /// <summary>Updates with this step's losses and returns the weights to apply to them.</summary>
    public double[] Step(ReadOnlySpan<double> losses)
    {
        Update(losses);
        return Weights();
    }
}
