using ILGPU;

namespace Raft.Kernels.Ilgpu;

/// <summary>The top-K kernel, the shared finish kernel and the EMA balancer step.</summary>
internal static class RowKernels
{
    /// <summary>
    /// One group: Σ_r w_r·rowLoss[r] in double (w = 1 when <paramref name="weights"/> is empty; no loss
    /// when <paramref name="rowLoss"/> is empty) and the first row whose status is not 0. Shapes:
    /// <paramref name="rowLoss"/>, <paramref name="weights"/>, <paramref name="rowStatus"/> [rows].
    /// </summary>
    public static void Finish(ArrayView<float> rowLoss, ArrayView<float> weights, ArrayView<int> rowStatus,
        ArrayView<DeviceSummary> summary, int rows)
    {
        var sd = SharedMemory.Allocate<double>(GroupMath.MaxGroupSize);
        var si = SharedMemory.Allocate<int>(GroupMath.MaxGroupSize);
        int t = Group.IdxX, g = Group.DimX;
        double sum = 0;
        int bad = int.MaxValue;
        for (int r = t; r < rows; r += g)
        {
            if (r < rowStatus.Length && rowStatus[r] != 0 && r < bad) bad = r;
            if (r < rowLoss.Length)
            {
                double w = r < weights.Length ? weights[r] : 1.0;
                sum += w * rowLoss[r];
            }
        }
        sum = GroupMath.SumDouble(sd, sum);
        bad = GroupMath.Min(si, bad);
        if (t == 0)
        {
            var s = summary[0];
            s.LossSum = sum;
            s.BadRow = bad == int.MaxValue ? -1 : bad;
            s.BadColumn = bad == int.MaxValue ? -1 : rowStatus[bad] - 1;
            summary[0] = s;
        }
    }

    /// <summary>
    /// One group per row (grid = rows). Shapes: <paramref name="logits"/> [rows, vocab] →
    /// <paramref name="indices"/>, <paramref name="probs"/> [rows, k]; <paramref name="scratch"/> [rows, k];
    /// <paramref name="rowStatus"/> [rows] (0, or 1 + the first non-finite column).
    /// <para>
    /// Selection: every element gets a unique 64-bit key, (order-preserving bits of the value) &lt;&lt; 32 |
    /// ~index, so that "larger key" is exactly the reference order (descending value, ties to the lower
    /// index; −0 is treated as +0). A radix select over 8-bit digits from the top finds the K-th largest key
    /// (a 256-bin histogram in shared memory per pass; it stops as soon as the remaining bucket is taken
    /// whole, usually after 2–4 passes on distinct values). The K keys ≥ that threshold are compacted into
    /// <paramref name="scratch"/> with a shared atomic counter, ranked (rank = number of larger keys,
    /// O(K²/groupSize) per thread: meant for the K of distillation, tens to hundreds), and the softmax at τ is
    /// taken over them with the top value subtracted.
    /// </para>
    /// </summary>
    public static void TopK(ArrayView<float> logits, ArrayView<int> indices, ArrayView<float> probs,
        ArrayView<ulong> scratch, ArrayView<int> rowStatus, TopKParams p)
    {
        var hist = SharedMemory.Allocate<int>(256);
        var shared = SharedMemory.Allocate<int>(2);
        var top = SharedMemory.Allocate<float>(1);
        var sf = SharedMemory.Allocate<float>(GroupMath.MaxGroupSize);
        var si = SharedMemory.Allocate<int>(GroupMath.MaxGroupSize);

        int r = Grid.IdxX, t = Group.IdxX, g = Group.DimX;
        if (r >= p.Rows || r >= rowStatus.Length) return;
        int vocab = p.Vocab, k = p.K;
        long rowBase = (long)r * vocab, kBase = (long)r * k;
        if (rowBase + vocab > logits.Length || kBase + k > indices.Length || kBase + k > probs.Length
            || kBase + k > scratch.Length) return;

        int bad = int.MaxValue;
        for (int i = t; i < vocab; i += g)
            if (!GroupMath.IsFinite(logits[rowBase + i]) && i < bad) bad = i;
        if (Group.BarrierOr(bad != int.MaxValue))
        {
            int col = GroupMath.Min(si, bad);
            if (t == 0) rowStatus[r] = col + 1;
            return;
        }

        // Radix select of the K-th largest key.
        ulong prefix = 0, mask = 0;
        int remaining = k;
        for (int shift = 56; shift >= 0; shift -= 8)
        {
            for (int b = t; b < 256; b += g) hist[b] = 0;
            Group.Barrier();
            for (int i = t; i < vocab; i += g)
            {
                ulong key = Key(logits[rowBase + i], i);
                if ((key & mask) == prefix) Atomic.Add(ref hist[(int)((key >> shift) & 0xFF)], 1);
            }
            Group.Barrier();
            // Every thread walks the same histogram, so they all take the same digit (uniform control flow).
            int above = 0, digit = 0, inBin = 0;
            for (int dgt = 255; dgt >= 0; dgt--)
            {
                int h = hist[dgt];
                if (above + h >= remaining) { digit = dgt; inBin = h; break; }
                above += h;
            }
            remaining -= above;
            prefix |= (ulong)digit << shift;
            mask |= 0xFFUL << shift;
            Group.Barrier();
            if (inBin == remaining) break; // the whole bucket is taken: every key ≥ prefix is in the top K
        }

        // Compaction of the K keys ≥ prefix (in any order).
        if (t == 0) shared[0] = 0;
        Group.Barrier();
        for (int i = t; i < vocab; i += g)
        {
            ulong key = Key(logits[rowBase + i], i);
            if (key >= prefix)
            {
                int slot = Atomic.Add(ref shared[0], 1);
                if (slot < k) scratch[kBase + slot] = key;
            }
        }
        Group.Barrier();

        // Rank, scatter to the sorted position (raw value parked in probs), then the softmax at τ.
        for (int c = t; c < k; c += g)
        {
            ulong key = scratch[kBase + c];
            int rank = 0;
            for (int c2 = 0; c2 < k; c2++)
                if (scratch[kBase + c2] > key) rank++;
            float v = KeyValue(key);
            if (rank == 0) top[0] = v;
            if (rank < k)
            {
                indices[kBase + rank] = KeyIndex(key);
                probs[kBase + rank] = v;
            }
        }
        Group.Barrier();
        float max = top[0];
        float sum = 0f;
        for (int c = t; c < k; c += g)
        {
            float e = MathF.Exp((probs[kBase + c] - max) * p.InvTau);
            probs[kBase + c] = e;
            sum += e;
        }
        sum = GroupMath.Sum(sf, sum);
        for (int c = t; c < k; c += g) probs[kBase + c] /= sum;
        if (t == 0) rowStatus[r] = 0;
    }

    /// <summary>The unique sort key of (value, index): larger key = larger value, then lower index.</summary>
    private static ulong Key(float v, int index)
    {
        uint bits = v == 0f ? 0u : Interop.FloatAsInt(v);
        uint ordered = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
        return ((ulong)ordered << 32) | ~(uint)index;
    }

    private static float KeyValue(ulong key)
    {
        uint ordered = (uint)(key >> 32);
        uint bits = (ordered & 0x80000000u) != 0 ? ordered & 0x7FFFFFFFu : ~ordered;
        return Interop.IntAsFloat(bits);
    }

    private static int KeyIndex(ulong key) => (int)~(uint)key;

    /// <summary>
    /// The EMA balancer step, <see cref="EmaBalancer.Update"/> then <see cref="EmaBalancer.Weights"/>, on
    /// device state in double, by one thread (n is a handful of terms). Shapes: <paramref name="ratio"/>,
    /// <paramref name="ema"/>, <paramref name="losses"/>, <paramref name="weights"/> [n]; <paramref name="steps"/>
    /// and <paramref name="status"/> [1]. A non-finite loss leaves the state unchanged and sets
    /// status[0] = 1 + its index; the weights are then those of the unchanged state.
    /// </summary>
    public static void EmaStep(Index1D index, ArrayView<double> ratio, ArrayView<double> ema, ArrayView<long> steps,
        ArrayView<double> losses, ArrayView<double> weights, ArrayView<int> status, double decay)
    {
        if (index != 0 || steps.Length < 1 || status.Length < 1) return;
        int n = (int)ratio.Length;
        if (ema.Length < n || losses.Length < n || weights.Length < n) return;

        int badK = -1;
        for (int k = 0; k < n; k++)
        {
            if (!GroupMath.IsFinite(losses[k])) { badK = k; break; }
        }
        if (badK < 0)
        {
            for (int k = 0; k < n; k++) ema[k] = decay * ema[k] + (1 - decay) * Math.Abs(losses[k]);
            steps[0] = steps[0] + 1;
        }
        status[0] = badK + 1;

        double ratioSum = 0;
        for (int k = 0; k < n; k++) ratioSum += ratio[k];
        long t = steps[0];
        if (t == 0)
        {
            for (int k = 0; k < n; k++) weights[k] = n * ratio[k] / ratioSum;
            return;
        }
        double correction = 1 - Math.Pow(decay, t);
        double total = 0;
        for (int k = 0; k < n; k++) total += ema[k] / correction;
        for (int k = 0; k < n; k++) weights[k] = ratio[k] / ratioSum * total / Math.Max(ema[k] / correction, EmaBalancer.Epsilon);
    }
}
