using ILGPU;

namespace Raft.Kernels.Ilgpu;

/// <summary>
/// Device kernels of the fused distillation loss (see <see cref="ReferenceKernels.DistillRow"/> for the math).
/// A call runs three kernels on one stream, with no host synchronisation between them:
/// <list type="number">
/// <item>For device-resident inputs only, <see cref="FindDuplicates"/> (one group per row): the smallest
/// teacher index that a row of non-zero weight repeats, into the row status.</item>
/// <item><see cref="Prepare"/> (one group): Σ w, the normalizer N, and, for device-resident inputs, the
/// checks of teacher indices (range, then distinctness), probabilities and weights, in the order of
/// <see cref="LossArguments.Distill"/> (teacher entries of rows of weight 0 are skipped, as there); an invalid
/// input makes every later kernel a no-op.</item>
/// <item><see cref="Rows"/> (one group per row): the row's loss and gradient.</item>
/// <item><see cref="RowKernels.Finish"/> (one group): Σ w·L and the first row that had a non-finite logit.</item>
/// </list>
/// </summary>
internal static class DistillKernels
{
    /// <summary>
    /// One group per row (grid = rows): rowStatus[r] = 1 + the smallest index value that appears more than
    /// once among the row's K teacher indices, or 0; 0 without reading them for a row of weight 0 (not validated).
    /// O(K²/groupSize) per thread. Shapes: <paramref name="weights"/> [rows] or empty, <paramref name="idx"/>
    /// [rows, k], <paramref name="rowStatus"/> [rows].
    /// </summary>
    public static void FindDuplicates(ArrayView<float> weights, ArrayView<int> idx, ArrayView<int> rowStatus, DistillParams p)
    {
        var si = SharedMemory.Allocate<int>(GroupMath.MaxGroupSize);
        int r = Grid.IdxX, t = Group.IdxX, g = Group.DimX;
        if (r >= p.Rows || r >= rowStatus.Length) return;
        int k = p.K;
        long kBase = (long)r * k;
        if (kBase + k > idx.Length) return;
        if (weights.Length > r && weights[r] == 0f)
        {
            if (t == 0) rowStatus[r] = 0;
            return;
        }
        int dup = int.MaxValue;
        for (int j = t; j < k; j += g)
        {
            int v = idx[kBase + j];
            if (v >= dup) continue;
            for (int j2 = 0; j2 < j; j2++)
            {
                if (idx[kBase + j2] == v) { dup = v; break; }
            }
        }
        dup = GroupMath.Min(si, dup);
        if (t == 0) rowStatus[r] = dup == int.MaxValue ? 0 : dup + 1;
    }

    /// <summary>
    /// One group. Shapes: <paramref name="weights"/> [rows] or empty, <paramref name="idx"/> and
    /// <paramref name="probs"/> [rows, k], <paramref name="dupStatus"/> [rows] (from <see cref="FindDuplicates"/>,
    /// read only when validating), <paramref name="summary"/> [1]. The teacher entries of a row of weight 0 are not
    /// validated (nor read): the row kernel skips it.
    /// </summary>
    public static void Prepare(ArrayView<float> weights, ArrayView<int> idx, ArrayView<float> probs,
        ArrayView<int> dupStatus, ArrayView<DeviceSummary> summary, DistillParams p)
    {
        var sd = SharedMemory.Allocate<double>(GroupMath.MaxGroupSize);
        var si = SharedMemory.Allocate<int>(GroupMath.MaxGroupSize);
        int t = Group.IdxX, g = Group.DimX;
        bool hasWeights = weights.Length > 0;

        double wsum = 0;
        int badW = int.MaxValue;
        for (int r = t; r < p.Rows; r += g)
        {
            float w = hasWeights ? weights[r] : 1f;
            if (p.Validate != 0 && (!(w >= 0f) || !GroupMath.IsFinite(w)))
            {
                if (r < badW) badW = r;
                continue;
            }
            wsum += w;
        }
        int badI = int.MaxValue, badP = int.MaxValue, badDup = int.MaxValue;
        if (p.Validate != 0)
        {
            int total = p.Rows * p.K;
            for (int i = t; i < total && i < idx.Length && i < probs.Length; i += g)
            {
                if (hasWeights && weights[i / p.K] == 0f) continue;
                if ((uint)idx[i] >= (uint)p.Vocab && i < badI) badI = i;
                float q = probs[i];
                if (!(q >= 0f && q <= 1.0001f) && i < badP) badP = i;
            }
            for (int r = t; r < p.Rows && r < dupStatus.Length; r += g)
                if (dupStatus[r] != 0 && r < badDup) badDup = r;
        }
        wsum = GroupMath.SumDouble(sd, wsum);
        badW = GroupMath.Min(si, badW);
        badI = GroupMath.Min(si, badI);
        badP = GroupMath.Min(si, badP);
        badDup = GroupMath.Min(si, badDup);
        if (t == 0)
        {
            DeviceSummary s = default;
            s.WeightSum = wsum;
            s.Normalizer = p.Normalizer > 0f ? p.Normalizer : wsum;
            s.BadRow = -1;
            s.BadColumn = -1;
            // The order of LossArguments.Distill: teacher top-K ranges (index before probability at one position),
            // then distinctness, then weights.
            if (badI != int.MaxValue && badI <= badP) { s.ArgError = ArgErrors.TeacherIndices; s.ArgIndex = badI; }
            else if (badP != int.MaxValue) { s.ArgError = ArgErrors.TeacherProbs; s.ArgIndex = badP; }
            else if (badDup != int.MaxValue)
            {
                s.ArgError = ArgErrors.DuplicateTeacherIndex; s.ArgIndex = badDup; s.ArgValue = dupStatus[badDup] - 1;
            }
            else if (badW != int.MaxValue) { s.ArgError = ArgErrors.RowWeights; s.ArgIndex = badW; }
            summary[0] = s;
        }
    }

    /// <summary>
    /// One group per row (grid = rows). Shapes: <paramref name="student"/> [rows, vocab];
    /// <paramref name="gradient"/> [rows, vocab], empty (loss only) or the very student view (in place);
    /// <paramref name="idx"/>, <paramref name="probs"/> and <paramref name="scratch"/> [rows, k];
    /// <paramref name="weights"/> [rows] or empty; <paramref name="rowLoss"/> and <paramref name="rowStatus"/> [rows].
    /// Writes rowLoss[r] = τ²·D_r (0 for a skipped row) and rowStatus[r] = 0, or 1 + the first non-finite
    /// column. The student row is only read before the first gradient write (barrier-separated), so the
    /// in-place mode is safe; per-teacher-entry gradient terms go through <paramref name="scratch"/> and are
    /// added after the dense sweep (the K indices of a row are distinct, as validated, so the adds do not race).
    /// </summary>
    public static void Rows(ArrayView<float> student, ArrayView<float> gradient, ArrayView<int> idx,
        ArrayView<float> probs, ArrayView<float> weights, ArrayView<float> rowLoss, ArrayView<int> rowStatus,
        ArrayView<float> scratch, ArrayView<DeviceSummary> summary, DistillParams p)
    {
        var s0 = SharedMemory.Allocate<float>(GroupMath.MaxGroupSize);
        var s1 = SharedMemory.Allocate<float>(GroupMath.MaxGroupSize);
        var s2 = SharedMemory.Allocate<float>(GroupMath.MaxGroupSize);
        var s3 = SharedMemory.Allocate<float>(GroupMath.MaxGroupSize);
        var si = SharedMemory.Allocate<int>(GroupMath.MaxGroupSize);
        var d0 = SharedMemory.Allocate<double>(GroupMath.MaxGroupSize);
        var d1 = SharedMemory.Allocate<double>(GroupMath.MaxGroupSize);
        var d2 = SharedMemory.Allocate<double>(GroupMath.MaxGroupSize);

        int r = Grid.IdxX, t = Group.IdxX, g = Group.DimX;
        if (r >= p.Rows || r >= rowLoss.Length || r >= rowStatus.Length) return;
        if (summary[0].ArgError != ArgErrors.None) return;

        int vocab = p.Vocab, k = p.K;
        long rowBase = (long)r * vocab, kBase = (long)r * k;
        if (rowBase + vocab > student.Length || kBase + k > idx.Length || kBase + k > probs.Length) return;
        bool hasGrad = gradient.Length >= rowBase + vocab && scratch.Length >= kBase + k;
        double n = summary[0].Normalizer;
        float w = weights.Length > r ? weights[r] : 1f;

        if (w == 0f || n == 0.0)
        {
            // Not read; zero gradient.
            if (hasGrad)
                for (int i = t; i < vocab; i += g) gradient[rowBase + i] = 0f;
            if (t == 0) { rowLoss[r] = 0f; rowStatus[r] = 0; }
            return;
        }

        float tau = p.Tau, invTau = p.InvTau;
        double scale = w / n;

        // Sweep 1 (read only): online max / Σ exp over the row at τ, and the non-finite check.
        var lse = OnlineLse.Empty;
        int bad = int.MaxValue;
        for (int i = t; i < vocab; i += g)
        {
            float x = student[rowBase + i];
            if (!GroupMath.IsFinite(x))
            {
                if (i < bad) bad = i;
                continue;
            }
            lse = GroupMath.Add(lse, x, invTau);
        }
        if (Group.BarrierOr(bad != int.MaxValue))
        {
            int col = GroupMath.Min(si, bad);
            if (t == 0) { rowStatus[r] = col + 1; rowLoss[r] = 0f; }
            return;
        }
        lse = GroupMath.ReduceLse(s0, s1, s2, s3, lse, invTau);
        float m = lse.Max;               // max_i s_i (raw)
        float logZ = MathF.Log(lse.SumExp); // log Σ exp((s_i − m)/τ)

        // The K teacher entries are handled in double: the divergences subtract logarithms of similar size
        // (log q − log p, log q − log M), which fp32 would leave with ~1e-6 absolute error; K is small next
        // to the vocabulary, so this costs little even where fp64 is slow. The O(vocab) sweeps stay fp32.
        double tauD = tau;
        double logZd = logZ;
        double d;          // the divergence D (before τ²)
        float baseCoef;    // gradient off the teacher's support: τ·q_i·baseCoef·scale
        if (p.Kind == (int)DistillLossKind.ForwardKL)
        {
            // D = Σ_j p_j (log p_j − log q_j); ∂D/∂z_i = q_i·Σp − p_i.
            var acc = new Double3(); // X: D, Y: Σ p
            for (int j = t; j < k; j += g)
            {
                float pj = probs[kBase + j];
                int ij = idx[kBase + j];
                if ((uint)ij >= (uint)vocab) continue;
                acc.Y += pj;
                if (pj > 0f)
                {
                    double logq = (student[rowBase + ij] - (double)m) / tauD - logZd;
                    acc.X += pj * (Math.Log(pj) - logq);
                }
            }
            acc = GroupMath.Sum3(d0, d1, d2, acc);
            d = acc.X;
            baseCoef = (float)acc.Y;
            if (hasGrad)
            {
                for (int j = t; j < k; j += g)
                    scratch[kBase + j] = (float)(-tauD * probs[kBase + j] * scale);
            }
        }
        else if (p.Kind == (int)DistillLossKind.ReverseKL)
        {
            // q_K = softmax(s/τ) over the K indices; D = Σ_j q_j (log q_j − log p_j); ∂D/∂z_j = q_j (f_j − D).
            float mK = float.NegativeInfinity;
            for (int j = t; j < k; j += g)
            {
                int ij = idx[kBase + j];
                if ((uint)ij < (uint)vocab) mK = MathF.Max(mK, student[rowBase + ij]);
            }
            mK = GroupMath.Max(s0, mK);
            double sumK = 0;
            for (int j = t; j < k; j += g)
            {
                int ij = idx[kBase + j];
                if ((uint)ij < (uint)vocab) sumK += Math.Exp((student[rowBase + ij] - (double)mK) / tauD);
            }
            double logZK = Math.Log(GroupMath.SumDouble(d0, sumK));
            double acc = 0;
            for (int j = t; j < k; j += g)
            {
                int ij = idx[kBase + j];
                if ((uint)ij >= (uint)vocab) continue;
                double logq = (student[rowBase + ij] - (double)mK) / tauD - logZK;
                double f = logq - Math.Log(Math.Max(probs[kBase + j], ReferenceKernels.ProbabilityFloor));
                acc += Math.Exp(logq) * f;
            }
            d = GroupMath.SumDouble(d0, acc);
            baseCoef = 0f;
            if (hasGrad)
            {
                for (int j = t; j < k; j += g)
                {
                    int ij = idx[kBase + j];
                    double c = 0;
                    if ((uint)ij < (uint)vocab)
                    {
                        double logq = (student[rowBase + ij] - (double)mK) / tauD - logZK;
                        double f = logq - Math.Log(Math.Max(probs[kBase + j], ReferenceKernels.ProbabilityFloor));
                        c = tauD * Math.Exp(logq) * (f - d) * scale;
                    }
                    scratch[kBase + j] = (float)c;
                }
            }
        }
        else
        {
            // Generalized JSD(β), 0 < β < 1. g_i = (1−β)·log(q_i/M_i); outside the K indices g_i = c.
            double beta = p.Beta, lb = Math.Log(beta), l1b = Math.Log(1 - beta);
            double cOut = -(1 - beta) * l1b;
            var acc = new Double3(); // X: D, Y: Σ_K q, Z: Σ_K q·g
            for (int j = t; j < k; j += g)
            {
                int ij = idx[kBase + j];
                if ((uint)ij >= (uint)vocab) continue;
                double pj = probs[kBase + j];
                double logq = (student[rowBase + ij] - (double)m) / tauD - logZd;
                double q = Math.Exp(logq);
                double logM = JsdLogM(pj, logq, lb, l1b);
                if (pj > 0) acc.X += beta * pj * (Math.Log(pj) - logM);
                double gj = (1 - beta) * (logq - logM);
                acc.X += (1 - beta) * q * (logq - logM);
                acc.Y += q;
                acc.Z += q * gj;
            }
            acc = GroupMath.Sum3(d0, d1, d2, acc);
            double rest = Math.Max(0, 1 - acc.Y);
            d = acc.X + rest * cOut;
            double gBar = acc.Z + rest * cOut;
            baseCoef = (float)(cOut - gBar);
            if (hasGrad)
            {
                for (int j = t; j < k; j += g)
                {
                    int ij = idx[kBase + j];
                    double c = 0;
                    if ((uint)ij < (uint)vocab)
                    {
                        double logq = (student[rowBase + ij] - (double)m) / tauD - logZd;
                        double logM = JsdLogM(probs[kBase + j], logq, lb, l1b);
                        double gj = (1 - beta) * (logq - logM);
                        c = tauD * Math.Exp(logq) * (gj - cOut) * scale;
                    }
                    scratch[kBase + j] = (float)c;
                }
            }
        }

        if (t == 0) { rowLoss[r] = (float)(tauD * tauD * d); rowStatus[r] = 0; }
        if (!hasGrad) return;

        // Every read of the student row is above this barrier: from here on the row may be overwritten.
        Group.Barrier();
        float dense = (float)(tau * baseCoef * scale);
        for (int i = t; i < vocab; i += g)
        {
            long at = rowBase + i;
            gradient[at] = dense == 0f ? 0f : dense * MathF.Exp((student[at] - m) * invTau - logZ);
        }
        Group.Barrier();
        for (int j = t; j < k; j += g)
        {
            int ij = idx[kBase + j];
            if ((uint)ij < (uint)vocab) gradient[rowBase + ij] += scratch[kBase + j];
        }
    }

    /// <summary>log M = log(β·p + (1−β)·q) from log β, log(1−β) and log q (p = 0 outside the teacher's support).</summary>
    private static double JsdLogM(double p, double logq, double lb, double l1b)
    {
        if (!(p > 0)) return l1b + logq;
        double a = lb + Math.Log(p), b = l1b + logq;
        double hi = Math.Max(a, b), lo = Math.Min(a, b);
        return hi + Math.Log(1 + Math.Exp(lo - hi));
    }
}
