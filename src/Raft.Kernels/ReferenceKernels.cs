namespace Raft.Kernels;

/// <summary>
/// The specification of the loss math: plain scalar code in double precision, written to be read.
/// Every fast implementation is tested against this class on fresh random inputs, and every gradient
/// here is tested against central finite differences of the loss here.
/// </summary>
public sealed class ReferenceKernels : ILossKernels
{
    /// <summary>
    /// Teacher probabilities below this floor are raised to it before their logarithm is taken (reverse KL
    /// and JSD), so that a teacher probability that underflowed to 0 in fp32 gives a large finite loss
    /// instead of an infinite one. Forward KL needs no floor: a zero probability contributes 0·log 0 = 0.
    /// </summary>
    public const double ProbabilityFloor = 1e-30;

    /// <summary>The shared instance (the class has no state).</summary>
    public static readonly ReferenceKernels Instance = new();

    /// <inheritdoc />
    public string Name => "reference";

    // ---------------------------------------------------------------- top-K temperature softmax

    /// <inheritdoc />
    public void TopKSoftmax(ReadOnlySpan<float> teacherLogits, int rows, int vocab, int k, float temperature,
        Span<int> indices, Span<float> probs)
    {
        LossArguments.TopKSoftmax(teacherLogits, rows, vocab, k, temperature, indices, probs);
        var p = new double[k];
        for (int r = 0; r < rows; r++)
        {
            TopKSoftmaxRow(teacherLogits.Slice(r * vocab, vocab), r, k, temperature, indices.Slice(r * k, k), p);
            for (int j = 0; j < k; j++) probs[r * k + j] = (float)p[j];
        }
    }

    /// <summary>
    /// One row, [vocab] → [k]: the k largest logits by descending value (ties to the lower index) and
    /// their softmax at temperature τ, computed in double.
    /// </summary>
    public static void TopKSoftmaxRow(ReadOnlySpan<float> logits, int row, int k, double temperature,
        Span<int> indices, Span<double> probs)
    {
        int vocab = logits.Length;
        var order = new int[vocab];
        for (int i = 0; i < vocab; i++)
        {
            if (!float.IsFinite(logits[i])) Guard.ThrowNonFinite("teacherLogits", row, i, logits[i]);
            order[i] = i;
        }
        var values = logits.ToArray();
        Array.Sort(order, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        double max = values[order[0]], sum = 0;
        for (int j = 0; j < k; j++)
        {
            indices[j] = order[j];
            probs[j] = Math.Exp((values[order[j]] - max) / temperature);
            sum += probs[j];
        }
        for (int j = 0; j < k; j++) probs[j] /= sum;
    }

    // ---------------------------------------------------------------- distillation

    /// <inheritdoc />
    public LossResult Distill(ReadOnlySpan<float> studentLogits, int rows, int vocab,
        ReadOnlySpan<int> teacherIndices, ReadOnlySpan<float> teacherProbs, DistillSettings config,
        ReadOnlySpan<float> rowWeights, Span<float> gradient, float normalizer = 0f)
    {
        LossArguments.Distill(studentLogits, rows, vocab, teacherIndices, teacherProbs, config, rowWeights, gradient, normalizer);
        int k = config.TopK;
        var (weightSum, n) = LossArguments.DistillNormalizer(rowWeights, rows, normalizer);

        var s = new double[vocab];
        var g = new double[vocab];
        var p = new double[k];
        double lossSum = 0;
        for (int r = 0; r < rows; r++)
        {
            double w = rowWeights.IsEmpty ? 1.0 : rowWeights[r];
            var gradRow = gradient.IsEmpty ? default : gradient.Slice(r * vocab, vocab);
            if (w == 0 || n == 0)
            {
                gradRow.Clear();
                continue;
            }
            var row = studentLogits.Slice(r * vocab, vocab);
            for (int i = 0; i < vocab; i++)
            {
                if (!float.IsFinite(row[i])) Guard.ThrowNonFinite(nameof(studentLogits), r, i, row[i]);
                s[i] = row[i];
            }
            for (int j = 0; j < k; j++) p[j] = teacherProbs[r * k + j];
            double loss = DistillRow(s, teacherIndices.Slice(r * k, k), p, config, g);
            lossSum += w * loss;
            for (int i = 0; i < gradRow.Length; i++) gradRow[i] = (float)(g[i] * w / n);
        }
        return new LossResult(n == 0 ? 0 : lossSum / n, lossSum, weightSum, n);
    }

    /// <summary>
    /// One row in double: returns τ²·D(teacher ‖ student) for the configured divergence and writes
    /// ∂(τ²·D)/∂s into <paramref name="grad"/> [vocab]. <paramref name="s"/> [vocab] are student logits,
    /// <paramref name="idx"/> and <paramref name="p"/> [k] the teacher's top-K indices and probabilities.
    /// </summary>
    public static double DistillRow(ReadOnlySpan<double> s, ReadOnlySpan<int> idx, ReadOnlySpan<double> p,
        DistillSettings config, Span<double> grad)
    {
        int vocab = s.Length, k = idx.Length;
        double tau = config.Temperature;
        grad.Clear();
        switch (config.EffectiveKind)
        {
            case DistillLossKind.ForwardKL:
            {
                // D = Σ_j p_j (log p_j − log q_j), q = softmax(s/τ) over the vocabulary.
                // ∂D/∂z_i = q_i·Σ_j p_j − p_i  (z = s/τ)
                double lse = LogSumExp(s, tau);
                double d = 0, pSum = 0;
                for (int j = 0; j < k; j++)
                {
                    pSum += p[j];
                    if (p[j] > 0) d += p[j] * (Math.Log(p[j]) - (s[idx[j]] / tau - lse));
                }
                for (int i = 0; i < vocab; i++) grad[i] = tau * Math.Exp(s[i] / tau - lse) * pSum;
                for (int j = 0; j < k; j++) grad[idx[j]] -= tau * p[j];
                return tau * tau * d;
            }
            case DistillLossKind.ReverseKL:
            {
                // q_K = softmax(s/τ) over the teacher's K indices. D = Σ_j q_j (log q_j − log p_j).
                // ∂D/∂z_j = q_j (log q_j − log p_j − D)
                double max = double.NegativeInfinity;
                for (int j = 0; j < k; j++) max = Math.Max(max, s[idx[j]] / tau);
                double sum = 0;
                for (int j = 0; j < k; j++) sum += Math.Exp(s[idx[j]] / tau - max);
                double lseK = max + Math.Log(sum);
                Span<double> f = new double[k], q = new double[k];
                double d = 0;
                for (int j = 0; j < k; j++)
                {
                    double logq = s[idx[j]] / tau - lseK;
                    q[j] = Math.Exp(logq);
                    f[j] = logq - Math.Log(Math.Max(p[j], ProbabilityFloor));
                    d += q[j] * f[j];
                }
                for (int j = 0; j < k; j++) grad[idx[j]] += tau * q[j] * (f[j] - d);
                return tau * tau * d;
            }
            default:
            {
                // JSD(β) = β·KL(p ‖ M) + (1−β)·KL(q ‖ M), M = β·p + (1−β)·q, p zero outside its K indices.
                // With g_i = ∂D/∂q_i = (1−β)·log(q_i / M_i): ∂D/∂z_i = q_i (g_i − Σ_m q_m g_m).
                // Outside the K indices M_i = (1−β)·q_i, so g_i = c = −(1−β)·log(1−β).
                double beta = config.Beta, lb = Math.Log(beta), l1b = Math.Log(1 - beta);
                double c = -(1 - beta) * l1b;
                double lse = LogSumExp(s, tau);
                double qK = 0, gBar = 0, d = 0;
                Span<double> gK = new double[k];
                for (int j = 0; j < k; j++)
                {
                    double logq = s[idx[j]] / tau - lse, q = Math.Exp(logq);
                    double logM = p[j] > 0 ? LogAddExp(lb + Math.Log(p[j]), l1b + logq) : l1b + logq;
                    if (p[j] > 0) d += beta * p[j] * (Math.Log(p[j]) - logM);
                    d += (1 - beta) * q * (logq - logM);
                    gK[j] = (1 - beta) * (logq - logM);
                    qK += q;
                    gBar += q * gK[j];
                }
                double rest = Math.Max(0, 1 - qK);
                d += rest * c;
                gBar += rest * c;
                for (int i = 0; i < vocab; i++) grad[i] = tau * Math.Exp(s[i] / tau - lse) * (c - gBar);
                for (int j = 0; j < k; j++)
                {
                    double q = Math.Exp(s[idx[j]] / tau - lse);
                    grad[idx[j]] += tau * q * (gK[j] - c);
                }
                return tau * tau * d;
            }
        }
    }

    // ---------------------------------------------------------------- cross-entropy

    /// <inheritdoc />
    public LossResult CrossEntropy(ReadOnlySpan<float> logits, int rows, int vocab, ReadOnlySpan<int> targets,
        Span<float> gradient, int ignoreIndex = -100, float labelSmoothing = 0f, float normalizer = 0f)
    {
        LossArguments.CrossEntropy(logits, rows, vocab, targets, gradient, ignoreIndex, labelSmoothing, normalizer);
        var (count, n) = LossArguments.CrossEntropyNormalizer(targets, ignoreIndex, normalizer);
        var s = new double[vocab];
        var g = new double[vocab];
        double lossSum = 0;
        for (int r = 0; r < rows; r++)
        {
            var gradRow = gradient.IsEmpty ? default : gradient.Slice(r * vocab, vocab);
            if (targets[r] == ignoreIndex || n == 0)
            {
                gradRow.Clear();
                continue;
            }
            var row = logits.Slice(r * vocab, vocab);
            for (int i = 0; i < vocab; i++)
            {
                if (!float.IsFinite(row[i])) Guard.ThrowNonFinite(nameof(logits), r, i, row[i]);
                s[i] = row[i];
            }
            lossSum += CrossEntropyRow(s, targets[r], labelSmoothing, g);
            for (int i = 0; i < gradRow.Length; i++) gradRow[i] = (float)(g[i] / n);
        }
        return new LossResult(n == 0 ? 0 : lossSum / n, lossSum, count, n);
    }

    /// <summary>
    /// One row in double: L = −(1−ε)·log q_t − (ε/V)·Σ_i log q_i with q = softmax(s); writes
    /// ∂L/∂s_i = q_i − (1−ε)·[i = t] − ε/V into <paramref name="grad"/> [vocab].
    /// </summary>
    public static double CrossEntropyRow(ReadOnlySpan<double> s, int target, double labelSmoothing, Span<double> grad)
    {
        int vocab = s.Length;
        double lse = LogSumExp(s, 1.0), sumLogQ = 0;
        for (int i = 0; i < vocab; i++)
        {
            sumLogQ += s[i] - lse;
            grad[i] = Math.Exp(s[i] - lse) - labelSmoothing / vocab;
        }
        grad[target] -= 1 - labelSmoothing;
        return -(1 - labelSmoothing) * (s[target] - lse) - labelSmoothing / vocab * sumLogQ;
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>log Σ_i exp(s_i/τ), computed stably.</summary>
    public static double LogSumExp(ReadOnlySpan<double> s, double tau)
    {
        double max = double.NegativeInfinity;
        foreach (double v in s) max = Math.Max(max, v / tau);
        double sum = 0;
        foreach (double v in s) sum += Math.Exp(v / tau - max);
        return max + Math.Log(sum);
    }

    /// <summary>log(exp(a) + exp(b)), computed stably.</summary>
    public static double LogAddExp(double a, double b)
    {
        double m = Math.Max(a, b);
        return m + Math.Log(Math.Exp(a - m) + Math.Exp(b - m));
    }
}
