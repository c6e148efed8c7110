using ILGPU;

namespace Raft.Kernels.Ilgpu;

/// <summary>
/// Device kernels of cross-entropy with label smoothing (see <see cref="ReferenceKernels.CrossEntropyRow"/>):
/// <see cref="Prepare"/> (one group: count of rows not ignored, N, target checks), <see cref="Rows"/> (one
/// group per row), then <see cref="RowKernels.Finish"/>.
/// </summary>
internal static class CrossEntropyKernels
{
    /// <summary>One group. Shapes: <paramref name="targets"/> [rows], <paramref name="summary"/> [1].</summary>
    public static void Prepare(ArrayView<int> targets, ArrayView<DeviceSummary> summary, CrossEntropyParams p)
    {
        var sd = SharedMemory.Allocate<double>(GroupMath.MaxGroupSize);
        var si = SharedMemory.Allocate<int>(GroupMath.MaxGroupSize);
        int t = Group.IdxX, g = Group.DimX;
        double count = 0;
        int bad = int.MaxValue;
        for (int r = t; r < p.Rows; r += g)
        {
            int target = targets[r];
            if (target == p.IgnoreIndex) continue;
            if (p.Validate != 0 && (uint)target >= (uint)p.Vocab && r < bad) bad = r;
            count += 1;
        }
        count = GroupMath.SumDouble(sd, count);
        bad = GroupMath.Min(si, bad);
        if (t == 0)
        {
            DeviceSummary s = default;
            s.WeightSum = count;
            s.Normalizer = p.Normalizer > 0f ? p.Normalizer : count;
            s.BadRow = -1;
            s.BadColumn = -1;
            if (bad != int.MaxValue) { s.ArgError = ArgErrors.Targets; s.ArgIndex = bad; }
            summary[0] = s;
        }
    }

    /// <summary>
    /// One group per row (grid = rows). Shapes: <paramref name="logits"/> [rows, vocab];
    /// <paramref name="gradient"/> [rows, vocab], empty or the logits view itself (in place);
    /// <paramref name="targets"/>, <paramref name="rowLoss"/>, <paramref name="rowStatus"/> [rows].
    /// One read-only sweep (online max, Σ exp, Σ (s − max), non-finite check), then one sweep writing
    /// ∂L/∂s_i = (q_i − ε/V − (1−ε)·[i = t]) / N.
    /// </summary>
    public static void Rows(ArrayView<float> logits, ArrayView<float> gradient, ArrayView<int> targets,
        ArrayView<float> rowLoss, ArrayView<int> rowStatus, ArrayView<DeviceSummary> summary, CrossEntropyParams p)
    {
        var s0 = SharedMemory.Allocate<float>(GroupMath.MaxGroupSize);
        var s1 = SharedMemory.Allocate<float>(GroupMath.MaxGroupSize);
        var s2 = SharedMemory.Allocate<float>(GroupMath.MaxGroupSize);
        var s3 = SharedMemory.Allocate<float>(GroupMath.MaxGroupSize);
        var si = SharedMemory.Allocate<int>(GroupMath.MaxGroupSize);

        int r = Grid.IdxX, t = Group.IdxX, g = Group.DimX;
        if (r >= p.Rows || r >= targets.Length || r >= rowLoss.Length || r >= rowStatus.Length) return;
        if (summary[0].ArgError != ArgErrors.None) return;

        int vocab = p.Vocab;
        long rowBase = (long)r * vocab;
        if (rowBase + vocab > logits.Length) return;
        bool hasGrad = gradient.Length >= rowBase + vocab;
        double n = summary[0].Normalizer;
        int target = targets[r];

        if (target == p.IgnoreIndex || n == 0.0 || (uint)target >= (uint)vocab)
        {
            if (hasGrad)
                for (int i = t; i < vocab; i += g) gradient[rowBase + i] = 0f;
            if (t == 0) { rowLoss[r] = 0f; rowStatus[r] = 0; }
            return;
        }

        float sTarget = logits[rowBase + target]; // read before any write (in place)
        var lse = OnlineLse.Empty;
        int bad = int.MaxValue;
        for (int i = t; i < vocab; i += g)
        {
            float x = logits[rowBase + i];
            if (!GroupMath.IsFinite(x))
            {
                if (i < bad) bad = i;
                continue;
            }
            lse = GroupMath.AddWithDiff(lse, x);
        }
        if (Group.BarrierOr(bad != int.MaxValue))
        {
            int col = GroupMath.Min(si, bad);
            if (t == 0) { rowStatus[r] = col + 1; rowLoss[r] = 0f; }
            return;
        }
        lse = GroupMath.ReduceLse(s0, s1, s2, s3, lse, 1f); // ends with a barrier: all reads done
        float m = lse.Max, logZ = MathF.Log(lse.SumExp);
        float eps = p.LabelSmoothing, epsOverV = eps / vocab;
        if (t == 0)
        {
            // L = −(1−ε)·log q_t − (ε/V)·Σ_i log q_i, with Σ_i log q_i = Σ_i (s_i − m) − V·log Z.
            float logqT = (sTarget - m) - logZ;
            float sumLogQ = lse.SumDiff - vocab * logZ;
            rowLoss[r] = -(1f - eps) * logqT - epsOverV * sumLogQ;
            rowStatus[r] = 0;
        }
        if (!hasGrad) return;
        float scale = (float)(1.0 / n);
        for (int i = t; i < vocab; i += g)
        {
            long at = rowBase + i;
            float gi = MathF.Exp((logits[at] - m) - logZ) - epsOverV;
            if (i == target) gi -= 1f - eps;
            gradient[at] = gi * scale;
        }
    }
}
