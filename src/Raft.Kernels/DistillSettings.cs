namespace Raft.Kernels;

/// <summary>The divergence used to distil the teacher's top-K distribution into the student.</summary>
public enum DistillLossKind
{
    /// <summary>
    /// Forward KL, KL(p_K ‖ q): p_K is the teacher's top-K temperature softmax (zero outside its K
    /// indices), q = softmax(student/τ) over the whole vocabulary. RAFT's default.
    /// </summary>
    ForwardKL = 0,

    /// <summary>
    /// Reverse KL on the teacher's support, KL(q_K ‖ p_K): q_K = softmax(student/τ) renormalised over the
    /// teacher's K indices. The gradient is zero outside those K indices.
    /// </summary>
    ReverseKL = 1,

    /// <summary>
    /// Generalized Jensen–Shannon divergence of GKD (Agarwal et al., 2024):
    /// JSD(β) = β·KL(p_K ‖ M) + (1−β)·KL(q ‖ M), M = β·p_K + (1−β)·q, over the whole vocabulary with
    /// p_K zero outside its K indices. The value is not rescaled. At the end points the mixture
    /// degenerates (JSD(0) = JSD(1) = 0), so, as in TRL's GKD trainer, β = 0 is defined as the
    /// <see cref="ForwardKL"/> kind and β = 1 as the <see cref="ReverseKL"/> kind (on the teacher's
    /// support, because the full-vocabulary reverse KL against a top-K teacher is infinite).
    /// </summary>
    Jsd = 2,
}

/// <summary>
/// What a distillation call computes: the teacher's top-K size, the temperature τ and the divergence.
/// Every loss is multiplied by τ² (Hinton et al., 2015): the gradient of a divergence between softmaxes at
/// temperature τ shrinks roughly as 1/τ² for large τ, and the factor keeps its magnitude comparable across
/// temperatures, so that changing τ does not require retuning the loss weight. The returned loss is τ²·D and
/// the gradient is ∂(τ²·D)/∂student = τ·∂D/∂(student/τ).
/// </summary>
/// <param name="TopK">K, the number of teacher entries kept per row; 1 ≤ K ≤ vocabulary.</param>
/// <param name="Temperature">τ &gt; 0, applied to both teacher (at top-K time) and student logits.</param>
/// <param name="Kind">The divergence.</param>
/// <param name="Beta">β ∈ [0, 1] of the generalized JSD; ignored by the other kinds.</param>
public readonly record struct DistillSettings(int TopK, float Temperature, DistillLossKind Kind = DistillLossKind.ForwardKL, float Beta = 0.5f)
{
    /// <summary>Checks every field against a vocabulary size; throws <see cref="ArgumentException"/> naming the field and value.</summary>
    public void Validate(int vocab)
    {
        if (TopK < 1 || TopK > vocab)
            Guard.Throw($"{nameof(TopK)} must be in 1..{vocab} (the vocabulary size), got {TopK}.", nameof(TopK));
        if (!(Temperature > 0f) || !float.IsFinite(Temperature))
            Guard.Throw($"{nameof(Temperature)} must be a finite number > 0, got {Temperature}.", nameof(Temperature));
        if (!Enum.IsDefined(Kind))
            Guard.Throw($"{nameof(Kind)} is not a known loss kind, got {(int)Kind}.", nameof(Kind));
        if (!(Beta >= 0f && Beta <= 1f))
            Guard.Throw($"{nameof(Beta)} must be in [0, 1], got {Beta}.", nameof(Beta));
    }

    /// <summary>The kind that is actually computed: JSD at β = 0 or 1 resolves to forward or reverse KL.</summary>
    public DistillLossKind EffectiveKind => Kind switch
    {
        DistillLossKind.Jsd when Beta == 0f => DistillLossKind.ForwardKL,
        DistillLossKind.Jsd when Beta == 1f => DistillLossKind.ReverseKL,
        _ => Kind,
    };
}

/// <summary>
/// The result of a loss call. <see cref="Loss"/> = <see cref="LossSum"/> / <see cref="Normalizer"/>, the
/// weighted mean over rows; the gradient written by the call is the gradient of <see cref="Loss"/>.
/// </summary>
/// <param name="Loss">The weighted mean loss (0 when the normalizer is 0).</param>
/// <param name="LossSum">Σ_r w_r·L_r over the rows of this call.</param>
/// <param name="WeightSum">Σ_r w_r over the rows of this call (for cross-entropy: the number of non-ignored rows).</param>
/// <param name="Normalizer">The divisor used: <see cref="WeightSum"/> unless the caller gave one (for chunked batches).</param>
public readonly record struct LossResult(double Loss, double LossSum, double WeightSum, double Normalizer);
