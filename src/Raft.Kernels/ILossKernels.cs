namespace Raft.Kernels;

/// <summary>
/// The loss math of RAFT's stage 2 behind one API, implemented three times: <see cref="ReferenceKernels"/>
/// (double-precision scalar code: the specification), <see cref="CpuKernels"/> (SIMD, threaded over rows)
/// and <see cref="IlgpuKernels"/> (the code that runs on CUDA). All tensors are row-major fp32 spans.
/// Every implementation validates its arguments identically and before writing anything; a NaN or infinite
/// logit met while computing throws <see cref="NonFiniteLogitException"/> naming the row (in the in-place
/// mode, rows already processed may have been overwritten by then).
/// </summary>
public interface ILossKernels
{
    /// <summary>A short name for logs and benchmark tables.</summary>
    string Name { get; }

    /// <summary>
    /// Top-K temperature softmax of teacher rows.
    /// Shapes: <paramref name="teacherLogits"/> [rows, vocab] → <paramref name="indices"/> [rows, k] and
    /// <paramref name="probs"/> [rows, k]. Indices are ordered by descending logit, ties to the lower index;
    /// probs[r, j] = exp(t[r, idx_j]/τ) / Σ_{kept} exp(t[r, ·]/τ).
    /// </summary>
    void TopKSoftmax(ReadOnlySpan<float> teacherLogits, int rows, int vocab, int k, float temperature,
        Span<int> indices, Span<float> probs);

    /// <summary>
    /// Fused distillation loss and gradient of student rows against the teacher's sparse top-K at
    /// temperature τ (see <see cref="DistillLossKind"/> for the divergences, <see cref="DistillSettings"/> for
    /// the τ² scaling). Shapes: <paramref name="studentLogits"/> [rows, vocab], <paramref name="teacherIndices"/>
    /// and <paramref name="teacherProbs"/> [rows, k], <paramref name="rowWeights"/> [rows] or empty (all 1),
    /// <paramref name="gradient"/> [rows, vocab], empty (loss only) or the very student buffer (in place).
    /// Returns Σ_r w_r·L_r / N with N = <paramref name="normalizer"/>, or Σ_r w_r when it is 0; the gradient
    /// written is that of the returned loss. Rows of weight 0 are neither read nor validated: their teacher indices and
    /// probabilities may hold anything (padding, duplicates, out-of-range values, NaN) and their student logits too (a
    /// NaN there raises no <see cref="NonFiniteLogitException"/>); they add nothing to the loss and get a zero gradient.
    /// </summary>
    LossResult Distill(ReadOnlySpan<float> studentLogits, int rows, int vocab,
        ReadOnlySpan<int> teacherIndices, ReadOnlySpan<float> teacherProbs, DistillSettings config,
        ReadOnlySpan<float> rowWeights, Span<float> gradient, float normalizer = 0f);

    /// <summary>
    /// Cross-entropy (the SFT term) with optional label smoothing ε, PyTorch's convention:
    /// L_r = −(1−ε)·log q[r, target_r] − (ε/vocab)·Σ_i log q[r, i], q = softmax(logits[r]).
    /// Shapes: <paramref name="logits"/> [rows, vocab], <paramref name="targets"/> [rows],
    /// <paramref name="gradient"/> [rows, vocab], empty (loss only) or the logits buffer itself (in place).
    /// Rows whose target is <paramref name="ignoreIndex"/> are not read and get a zero gradient.
    /// Returns Σ L_r / N, N = <paramref name="normalizer"/> or, when 0, the number of rows not ignored.
    /// </summary>
    LossResult CrossEntropy(ReadOnlySpan<float> logits, int rows, int vocab, ReadOnlySpan<int> targets,
        Span<float> gradient, int ignoreIndex = -100, float labelSmoothing = 0f, float normalizer = 0f);
}

/// <summary>Argument validation shared by all <see cref="ILossKernels"/> implementations.</summary>
public static class LossArguments
{
    /// <summary>Validates a top-K softmax call; throws <see cref="ArgumentException"/> naming the argument and value.</summary>
    public static void TopKSoftmax(ReadOnlySpan<float> teacherLogits, int rows, int vocab, int k, float temperature,
        Span<int> indices, Span<float> probs)
    {
        Guard.Shape(rows, vocab);
        Guard.Length(teacherLogits.Length, (long)rows * vocab, nameof(teacherLogits), "[rows, vocab]");
        Guard.TopK(k, vocab);
        Guard.Temperature(temperature);
        Guard.Length(indices.Length, (long)rows * k, nameof(indices), "[rows, k]");
        Guard.Length(probs.Length, (long)rows * k, nameof(probs), "[rows, k]");
    }

    /// <summary>
    /// Validates a distillation call, including every teacher index and probability of the rows whose weight is not 0
    /// (rows of weight 0 are not read by the kernels, so their teacher entries are not checked either).
    /// </summary>
    public static void Distill(ReadOnlySpan<float> studentLogits, int rows, int vocab,
        ReadOnlySpan<int> teacherIndices, ReadOnlySpan<float> teacherProbs, DistillSettings config,
        ReadOnlySpan<float> rowWeights, Span<float> gradient, float normalizer)
    {
        Guard.Shape(rows, vocab);
        Guard.Length(studentLogits.Length, (long)rows * vocab, nameof(studentLogits), "[rows, vocab]");
        config.Validate(vocab);
        Guard.TeacherTopK(teacherIndices, teacherProbs, rows, vocab, config.TopK, rowWeights);
        Guard.RowWeights(rowWeights, rows);
        Guard.Gradient(studentLogits, gradient, nameof(studentLogits));
        Guard.Normalizer(normalizer);
    }

    /// <summary>
    /// The weighted-mean denominator of a distillation call: Σ_r w_r (all 1 when <paramref name="rowWeights"/>
    /// is empty), and the normaliser N actually used (the caller's when &gt; 0, else that sum).
    /// </summary>
    internal static (double WeightSum, double N) DistillNormalizer(ReadOnlySpan<float> rowWeights, int rows, float normalizer)
    {
        double weightSum = 0;
        for (int r = 0; r < rows; r++) weightSum += rowWeights.IsEmpty ? 1.0 : rowWeights[r];
        return (weightSum, normalizer > 0 ? normalizer : weightSum);
    }

    /// <summary>
    /// The mean's denominator of a cross-entropy call: the number of rows whose target is not
    /// <paramref name="ignoreIndex"/>, and the normaliser N actually used (the caller's when &gt; 0, else that count).
    /// </summary>
    internal static (int Count, double N) CrossEntropyNormalizer(ReadOnlySpan<int> targets, int ignoreIndex, float normalizer)
    {
        int count = 0;
        foreach (int t in targets) if (t != ignoreIndex) count++;
        return (count, normalizer > 0 ? normalizer : count);
    }

    /// <summary>Validates a cross-entropy call (including every target).</summary>
    public static void CrossEntropy(ReadOnlySpan<float> logits, int rows, int vocab, ReadOnlySpan<int> targets,
        Span<float> gradient, int ignoreIndex, float labelSmoothing, float normalizer)
    {
        Guard.Shape(rows, vocab);
        Guard.Length(logits.Length, (long)rows * vocab, nameof(logits), "[rows, vocab]");
        Guard.Length(targets.Length, rows, nameof(targets), "[rows]");
        for (int r = 0; r < targets.Length; r++)
            if (targets[r] != ignoreIndex && (uint)targets[r] >= (uint)vocab)
                Guard.Throw($"targets[{r}] must be in 0..{vocab - 1} or the ignore index {ignoreIndex}, got {targets[r]}.", nameof(targets));
        if (!(labelSmoothing >= 0f && labelSmoothing <= 1f))
            Guard.Throw($"labelSmoothing must be in [0, 1], got {labelSmoothing}.", nameof(labelSmoothing));
        Guard.Gradient(logits, gradient, nameof(logits));
        Guard.Normalizer(normalizer);
    }
}
