using ILGPU;

namespace Raft.Gpu.Kernels;

/// <summary>Scalar arguments of the cross-entropy, norm and finish kernels.</summary>
internal struct LossParams
{
    public int Rows;
    public int Vocab;
    public int IgnoreIndex;
    /// <summary>The number of rows whose target is not ignored (the mean's denominator); 0: loss 0, gradient 0.</summary>
    public float Count;
    /// <summary>Global-norm clipping threshold; ≤ 0: no clipping (the factor is 1).</summary>
    public double MaxNorm;
    public long GradLength;
    /// <summary>1: the finish kernel sums the row losses.</summary>
    public int HasLoss;
}

/// <summary>The step's AdamW scalars (computed on the host in fp64 as <c>Raft.Model.AdamW</c> does).</summary>
internal struct AdamParams
{
    public float Beta1, OneMinusBeta1, Beta2, OneMinusBeta2, StepSize, SqrtBc2, Epsilon, DecayFactor;
    /// <summary>Values [0, DecayedLength) of the flat parameter buffer are weight-decayed, the rest not.</summary>
    public long DecayedLength;
    public long Length;
}

/// <summary>
/// The loss and optimizer end of a training step: cross-entropy rows, the gradient's squared norm, a one-group
/// finish that turns the partial sums into [loss, norm, clip factor] on the device, and AdamW reading the clip
/// factor (and skipping the update when the norm is not finite), so that a step needs no host synchronisation.
/// </summary>
internal static class TrainKernels
{
    /// <summary>Index of the loss in the step's scalars.</summary>
    public const int LossSlot = 0;
    /// <summary>Index of the gradient norm (before clipping).</summary>
    public const int NormSlot = 1;
    /// <summary>Index of the clip factor.</summary>
    public const int FactorSlot = 2;
    /// <summary>Groups of the norm's first pass.</summary>
    public const int NormGroups = 256;

    /// <summary>
    /// One group per row (mean cross-entropy, PyTorch's convention): rowLoss[r] = log Σ exp(s) − s_t, and in place
    /// logits[r, i] = (softmax(s)_i − [i = t]) / Count; an ignored row (or Count 0) gets 0 and a zero gradient.
    /// Shapes: logits [Rows, Vocab]; targets, rowLoss [Rows].
    /// </summary>
    public static void CrossEntropy(ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> rowLoss, LossParams p)
    {
        var sh = SharedMemory.Allocate<float>(LayerKernels.MaxGroup);
        int r = Grid.IdxX, t = Group.IdxX, g = Group.DimX, v = p.Vocab;
        long b = (long)r * v;
        if (r >= p.Rows || r >= targets.Length || r >= rowLoss.Length || b + v > logits.Length) return;
        int target = targets[r];
        if (target == p.IgnoreIndex || target < 0 || target >= v || p.Count <= 0f)
        {
            for (int i = t; i < v; i += g) logits[b + i] = 0f;
            if (t == 0) rowLoss[r] = 0f;
            return;
        }
        float mx = float.NegativeInfinity;
        for (int i = t; i < v; i += g) mx = MathF.Max(mx, logits[b + i]);
        mx = LayerKernels.GroupMax(sh, mx);
        float sum = 0f;
        for (int i = t; i < v; i += g) sum += MathF.Exp(logits[b + i] - mx);
        sum = LayerKernels.GroupSum(sh, sum);
        float logZ = MathF.Log(sum);
        float st = logits[b + target];
        Group.Barrier(); // every thread has read s_t before any gradient is written
        if (t == 0) rowLoss[r] = -((st - mx) - logZ);
        float scale = 1f / p.Count;
        for (int i = t; i < v; i += g)
        {
            float gi = MathF.Exp((logits[b + i] - mx) - logZ);
            if (i == target) gi -= 1f;
            logits[b + i] = gi * scale;
        }
    }

    /// <summary>First pass of Σ g²: <see cref="NormGroups"/> groups, grid-stride, partial[group] in fp64.</summary>
    public static void SquaredNormPartials(ArrayView<float> grad, ArrayView<double> partial, LossParams p)
    {
        var sh = SharedMemory.Allocate<double>(LayerKernels.MaxGroup);
        double acc = 0;
        long n = Math.Min(p.GradLength, grad.Length);
        for (long e = (long)Grid.IdxX * Group.DimX + Group.IdxX; e < n; e += (long)Grid.DimX * Group.DimX)
        {
            double x = grad[e];
            acc += x * x;
        }
        acc = LayerKernels.GroupSumDouble(sh, acc);
        if (Group.IdxX == 0 && Grid.IdxX < partial.Length) partial[Grid.IdxX] = acc;
    }

    /// <summary>
    /// One group: scalars = [Σ rowLoss / Count (0 when Count is 0), ‖g‖, min(1, MaxNorm / (‖g‖ + 1e-6)) (1 without
    /// clipping or when the norm is not finite)], as <c>Raft.Model.GradientClipping.ClipByGlobalNorm</c>.
    /// </summary>
    public static void Finish(ArrayView<float> rowLoss, ArrayView<double> partial, ArrayView<double> scalars, LossParams p)
    {
        var sh = SharedMemory.Allocate<double>(LayerKernels.MaxGroup);
        int t = Group.IdxX, g = Group.DimX;
        if (scalars.Length < 3) return;
        double loss = 0, sq = 0;
        if (p.HasLoss != 0)
            for (int r = t; r < p.Rows && r < rowLoss.Length; r += g) loss += rowLoss[r];
        for (int i = t; i < partial.Length; i += g) sq += partial[i];
        loss = LayerKernels.GroupSumDouble(sh, loss);
        sq = LayerKernels.GroupSumDouble(sh, sq);
        if (t != 0) return;
        double norm = Math.Sqrt(sq);
        double factor = 1.0;
        if (p.MaxNorm > 0 && IsFinite(norm)) factor = Math.Min(1.0, p.MaxNorm / (norm + 1e-6));
        if (p.HasLoss != 0) scalars[LossSlot] = p.Count > 0f ? loss / p.Count : 0.0;
        scalars[NormSlot] = norm;
        scalars[FactorSlot] = factor;
    }

    /// <summary>True when x is neither NaN nor ±∞.</summary>
    public static bool IsFinite(double x) => (Interop.FloatAsInt(x) & 0x7FF0000000000000UL) != 0x7FF0000000000000UL;

    /// <summary>
    /// AdamW on the flat buffers, PyTorch's formulation as <c>Raft.Model.AdamW</c> (same fp32 operations), with the
    /// gradient scaled by the clip factor; does nothing when the norm in scalars is not finite (a skipped step).
    /// </summary>
    public static void AdamW(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v,
        ArrayView<double> scalars, AdamParams k)
    {
        if (scalars.Length < 3 || !IsFinite(scalars[NormSlot])) return;
        float f = (float)scalars[FactorSlot];
        long n = Math.Min(Math.Min(k.Length, param.Length), Math.Min(grad.Length, Math.Min(m.Length, v.Length)));
        for (long e = (long)Grid.IdxX * Group.DimX + Group.IdxX; e < n; e += (long)Grid.DimX * Group.DimX)
        {
            float gi = grad[e] * f;
            float decay = e < k.DecayedLength ? k.DecayFactor : 1f;
            float pi = param[e] * decay;
            float mi = k.Beta1 * m[e] + k.OneMinusBeta1 * gi;
            float vi = k.Beta2 * v[e] + k.OneMinusBeta2 * (gi * gi);
            float denom = MathF.Sqrt(vi) / k.SqrtBc2 + k.Epsilon;
            param[e] = pi - k.StepSize * (mi / denom);
            m[e] = mi;
            v[e] = vi;
        }
    }
}
