using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using Raft.Kernels;

namespace Raft.Model;

/// <summary>A sampled token with its log-probabilities.</summary>
/// <param name="TokenId">The token picked.</param>
/// <param name="LogProb">
/// Its log-probability under the distribution it was actually drawn from (after temperature, top-k and top-p,
/// renormalised); 0 for greedy decoding, whose distribution is a point mass.
/// </param>
/// <param name="ModelLogProb">Its log-probability under the model's untempered distribution: log_softmax(raw logits)[token].</param>
public readonly record struct SampledToken(int TokenId, float LogProb, float ModelLogProb);

/// <summary>
/// Token selection over one logits row <c>[vocab]</c>: greedy, temperature, top-k, top-p, combined in Hugging Face's
/// order (temperature → top-k → top-p). Pure functions: the randomness is one uniform number, by default drawn from
/// <see cref="Philox"/> at (seed, sequence index, step), so a token does not depend on batch layout, thread or process.
/// </summary>
public static class Sampler
{
    /// <summary>
    /// Samples the token of sequence <paramref name="sequenceIndex"/> (a global id: the same on every process) at
    /// generation step <paramref name="step"/>, with the uniform draw <see cref="Philox.Uniform"/>(options.Seed, sequenceIndex, step).
    /// </summary>
    public static SampledToken Sample(ReadOnlySpan<float> logits, SamplingOptions options, ulong sequenceIndex, ulong step)
    {
        ArgumentNullException.ThrowIfNull(options);
        double u = options.IsGreedy ? 0.0 : Philox.Uniform(options.Seed, sequenceIndex, step);
        return Sample(logits, options, u);
    }

    /// <summary>
    /// Samples with an explicit uniform number <paramref name="uniform"/> in [0, 1): the kept tokens are walked in order
    /// of decreasing probability (ties: lower id first; all tokens in id order when neither top-k nor top-p is on) and the
    /// first whose cumulative probability exceeds <paramref name="uniform"/> is taken. A NaN or +∞ logit raises
    /// <see cref="NonFiniteLogitException"/>; −∞ logits are allowed (masked tokens) but not all of them.
    /// </summary>
    public static SampledToken Sample(ReadOnlySpan<float> logits, SamplingOptions options, double uniform)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(uniform >= 0 && uniform < 1)) throw new ArgumentException($"uniform must be in [0, 1), got {uniform}.", nameof(uniform));
        float rawMax = CheckLogits(logits);
        int v = logits.Length;
        float[] w = ArrayPool<float>.Shared.Rent(v);
        float[]? scaled = null;
        int[]? cand = null;
        try
        {
            var ws = w.AsSpan(0, v);
            TensorPrimitives.Subtract(logits, rawMax, ws);
            TensorPrimitives.Exp(ws, ws);
            double rawLse = rawMax + Math.Log(SumDouble(ws));

            if (options.IsGreedy) return Greedy(logits, rawLse);

            scaled = ArrayPool<float>.Shared.Rent(v);
            var ss = scaled.AsSpan(0, v);
            TensorPrimitives.Divide(logits, options.Temperature, ss);
            float smax = TensorPrimitives.Max(ss);
            if (float.IsInfinity(smax)) return Greedy(logits, rawLse); // temperature so small that logits/T overflow: the limit is argmax
            TensorPrimitives.Subtract(ss, smax, ws);
            TensorPrimitives.Exp(ws, ws);

            bool useK = options.TopK > 0 && options.TopK < v, useP = options.TopP < 1f;
            if (!useK && !useP)
            {
                double z = SumDouble(ws), target = uniform * z, cum = 0;
                int pick = -1, last = -1;
                for (int i = 0; i < v; i++)
                {
                    if (ws[i] == 0f) continue;
                    last = i;
                    cum += ws[i];
                    if (cum > target) { pick = i; break; }
                }
                if (pick < 0) pick = last;
                return new SampledToken(pick, (float)(ss[pick] - smax - Math.Log(z)), (float)(logits[pick] - rawLse));
            }

            cand = ArrayPool<int>.Shared.Rent(v);
            int kept = Kept(ss, ws, smax, useK ? options.TopK : int.MaxValue, useP ? options.TopP : 1f, cand);
            double zk = 0;
            for (int j = 0; j < kept; j++) zk += w[cand[j]];
            double t = uniform * zk, c = 0;
            int chosen = cand[0]; // the most likely token: the fallback should rounding leave c ≤ t to the end
            for (int j = 0; j < kept; j++)
            {
                float wj = w[cand[j]];
                if (wj == 0f) break; // sorted: the rest underflowed too
                chosen = cand[j];
                c += wj;
                if (c > t) break;
            }
            return new SampledToken(chosen, (float)(ss[chosen] - smax - Math.Log(zk)), (float)(logits[chosen] - rawLse));
        }
        finally
        {
            ArrayPool<float>.Shared.Return(w);
            if (scaled is not null) ArrayPool<float>.Shared.Return(scaled);
            if (cand is not null) ArrayPool<int>.Shared.Return(cand);
        }
    }

    /// <summary>The argmax (first on ties) with log-probability 0 under the greedy point mass and its model log-probability.</summary>
    public static SampledToken Greedy(ReadOnlySpan<float> logits)
    {
        CheckLogits(logits);
        return Greedy(logits, LogSumExp(logits));
    }

    private static SampledToken Greedy(ReadOnlySpan<float> logits, double lse)
    {
        int i = ArgMax(logits);
        return new SampledToken(i, 0f, (float)(logits[i] - lse));
    }

    /// <summary>Index of the largest logit; the lowest such index on ties.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("logits must hold at least one value.", nameof(logits));
        int best = 0;
        float bv = logits[0];
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > bv) { bv = logits[i]; best = i; }
        return best;
    }

    /// <summary>log Σ exp(logits), computed stably (max-shifted, summed in fp64).</summary>
    public static double LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = CheckLogits(logits);
        float[] w = ArrayPool<float>.Shared.Rent(logits.Length);
        try
        {
            var ws = w.AsSpan(0, logits.Length);
            TensorPrimitives.Subtract(logits, max, ws);
            TensorPrimitives.Exp(ws, ws);
            return max + Math.Log(SumDouble(ws));
        }
        finally { ArrayPool<float>.Shared.Return(w); }
    }

    private const int HeapLimit = 4096;

    /// <summary>
    /// Fills <paramref name="cand"/> with the kept tokens, most likely first (ties: lower id first), and returns how many:
    /// the top <paramref name="k"/> by scaled logit (int.MaxValue: top-k off), then of those the shortest prefix such that
    /// the mass before each kept token is below <paramref name="p"/> of the top-k mass (of the whole vocabulary when top-k
    /// is off). Small k is selected with a bounded heap; otherwise only tokens within a margin of the maximum are sorted,
    /// the margin widening until it provably holds every kept token.
    /// </summary>
    private static int Kept(Span<float> scaled, Span<float> w, float smax, int k, float p, int[] cand)
    {
        int v = scaled.Length;
        bool useK = k < v, useP = p < 1f;
        if (useK && k <= HeapLimit)
        {
            int m = TopKByHeap(scaled, k, cand);
            return useP ? NucleusCut(cand, m, w, p, zAll: -1) : m;
        }
        double zAll = useP && !useK ? SumDouble(w) : 0;
        ReadOnlySpan<float> margins = [1f, 2f, 4f, 8f, 16f, 32f, 64f, float.PositiveInfinity];
        foreach (float margin in margins)
        {
            bool everything = float.IsPositiveInfinity(margin);
            float floor = smax - margin;
            int n = 0;
            double mass = 0;
            for (int i = 0; i < v; i++)
                if (everything || scaled[i] >= floor) { cand[n++] = i; mass += w[i]; }
            if (!everything && (useK ? n < k : mass < p * zAll)) continue; // the kept set cannot lie inside this margin
            SortDescending(cand.AsSpan(0, n), scaled);
            int m = Math.Min(n, k);
            if (!useP) return m;
            int cut = NucleusCut(cand, m, w, p, useK ? -1 : zAll);
            if (cut < m || useK || n == v) return cut;
            // rounding let the gate pass although the walk did not cut inside the margin: widen it
        }
        throw new InvalidOperationException("unreachable: the last margin holds every token.");
    }

    /// <summary>How many of the first <paramref name="m"/> candidates top-p keeps: while the mass before a token is below p·z (z: their own mass when <paramref name="zAll"/> &lt; 0).</summary>
    private static int NucleusCut(int[] cand, int m, Span<float> w, float p, double zAll)
    {
        double z = zAll;
        if (z < 0)
        {
            z = 0;
            for (int j = 0; j < m; j++) z += w[cand[j]];
        }
        double limit = p * z, before = 0;
        for (int j = 0; j < m; j++)
        {
            if (before >= limit) return j;
            before += w[cand[j]];
        }
        return m;
    }

    /// <summary>A key whose unsigned order is (value ascending, id descending): larger key = more likely token, lower id on ties.</summary>
    private static ulong Key(float value, int id)
    {
        uint b = BitConverter.SingleToUInt32Bits(value == 0f ? 0f : value); // −0 and +0 tie
        uint ord = (b & 0x8000_0000u) != 0 ? ~b : b | 0x8000_0000u;
        return ((ulong)ord << 32) | ~(uint)id;
    }

    private static int IdOf(ulong key) => (int)~(uint)key;

    /// <summary>The k most likely tokens through a bounded min-heap of keys, written to <paramref name="cand"/> most likely first.</summary>
    private static int TopKByHeap(Span<float> scaled, int k, int[] cand)
    {
        ulong[] heap = ArrayPool<ulong>.Shared.Rent(k);
        try
        {
            int n = 0;
            float rootValue = float.NegativeInfinity;
            for (int i = 0; i < scaled.Length; i++)
            {
                float x = scaled[i];
                if (n == k && x < rootValue) continue; // cannot beat the weakest kept token
                ulong key = Key(x, i);
                if (n < k)
                {
                    int c = n++;
                    while (c > 0) // sift up
                    {
                        int parent = (c - 1) >> 1;
                        if (heap[parent] <= key) break;
                        heap[c] = heap[parent];
                        c = parent;
                    }
                    heap[c] = key;
                }
                else if (key > heap[0])
                {
                    int c = 0;
                    while (true) // sift down from the root
                    {
                        int l = 2 * c + 1;
                        if (l >= k) break;
                        int r = l + 1, smallest = r < k && heap[r] < heap[l] ? r : l;
                        if (heap[smallest] >= key) break;
                        heap[c] = heap[smallest];
                        c = smallest;
                    }
                    heap[c] = key;
                }
                else continue;
                if (n == k) rootValue = scaled[IdOf(heap[0])];
            }
            var keys = heap.AsSpan(0, n);
            keys.Sort();
            for (int j = 0; j < n; j++) cand[j] = IdOf(keys[n - 1 - j]);
            return n;
        }
        finally { ArrayPool<ulong>.Shared.Return(heap); }
    }

    private static void SortDescending(Span<int> ids, Span<float> scores)
    {
        ulong[] keys = ArrayPool<ulong>.Shared.Rent(ids.Length);
        try
        {
            var ks = keys.AsSpan(0, ids.Length);
            for (int i = 0; i < ids.Length; i++) ks[i] = Key(scores[ids[i]], ids[i]);
            ks.Sort();
            for (int i = 0; i < ids.Length; i++) ids[i] = IdOf(ks[ids.Length - 1 - i]);
        }
        finally { ArrayPool<ulong>.Shared.Return(keys); }
    }

    /// <summary>Σx in fp64 over fp32 blocks of 1024 (eight fp32 lanes within a block): fast, and the same bits on every machine.</summary>
    private static double SumDouble(ReadOnlySpan<float> x)
    {
        double s = 0;
        int i = 0;
        ref float r = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        while (i <= x.Length - 8)
        {
            var acc = Vector256<float>.Zero;
            int end = Math.Min(x.Length - 7, i + 1024);
            for (; i < end; i += 8) acc += Vector256.LoadUnsafe(ref r, (nuint)i);
            for (int l = 0; l < 8; l++) s += acc.GetElement(l);
        }
        for (; i < x.Length; i++) s += x[i];
        return s;
    }

    /// <summary>Rejects an empty row, NaN and +∞, and a row that is all −∞; returns the maximum.</summary>
    private static float CheckLogits(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("logits must hold at least one value.", nameof(logits));
        float max = TensorPrimitives.Max(logits);
        if (float.IsNaN(max) || float.IsPositiveInfinity(max))
            for (int i = 0; i < logits.Length; i++)
                if (float.IsNaN(logits[i]) || float.IsPositiveInfinity(logits[i]))
                    throw new NonFiniteLogitException("logits", 0, i, logits[i]);
        if (float.IsNegativeInfinity(max)) throw new ArgumentException("logits are all -∞: no token can be sampled.", nameof(logits));
        return max;
    }
}
