using System.Buffers;
using System.Numerics.Tensors;
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
            int kept = Nucleus(ss, ws, smax, useK ? options.TopK : int.MaxValue, useP ? options.TopP : 1f, cand);
            double zk = 0;
            for (int j = 0; j < kept; j++) zk += w[cand[j]];
            double t = uniform * zk, c = 0;
            int chosen = cand[kept - 1];
            for (int j = 0; j < kept; j++)
            {
                c += w[cand[j]];
                if (c > t) { chosen = cand[j]; break; }
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

    /// <summary>
    /// Fills <paramref name="cand"/> with the kept tokens, most likely first (ties: lower id first), and returns how many:
    /// the top <paramref name="k"/> by scaled logit (int.MaxValue: top-k off), then of those the shortest prefix whose mass before each kept token is
    /// below <paramref name="p"/> of the top-k mass. Only tokens within a margin of the maximum are sorted; the margin
    /// widens until it provably holds every kept token.
    /// </summary>
    private static int Nucleus(Span<float> scaled, Span<float> w, float smax, int k, float p, int[] cand)
    {
        int v = scaled.Length;
        bool useK = k < v;
        ReadOnlySpan<float> margins = [8f, 24f, 80f, float.PositiveInfinity];
        foreach (float margin in margins)
        {
            float floor = smax - margin;
            int n = 0;
            for (int i = 0; i < v; i++)
                if (scaled[i] >= floor || float.IsPositiveInfinity(margin)) cand[n++] = i;
            bool all = n == v;
            if (useK && n < k && !all) continue;
            SortByScoreDescending(cand.AsSpan(0, n), scaled);
            int m = Math.Min(n, k);
            if (p >= 1f) return m;
            // total mass of the top-k set (or of the whole vocabulary when top-k is off)
            double z = 0;
            if (useK) for (int j = 0; j < m; j++) z += w[cand[j]];
            else z = SumDouble(w);
            double limit = p * z, before = 0;
            for (int j = 0; j < m; j++)
            {
                if (before >= limit) return j;
                before += w[cand[j]];
            }
            if (useK || all) return m; // the whole relevant set is kept
        }
        throw new InvalidOperationException("unreachable: the last margin holds every token.");
    }

    private static void SortByScoreDescending(Span<int> ids, Span<float> scores)
    {
        var keys = new (float, int)[ids.Length];
        for (int i = 0; i < ids.Length; i++) keys[i] = (scores[ids[i]], ids[i]);
        Array.Sort(keys, static (a, b) => a.Item1 != b.Item1 ? b.Item1.CompareTo(a.Item1) : a.Item2.CompareTo(b.Item2));
        for (int i = 0; i < ids.Length; i++) ids[i] = keys[i].Item2;
    }

    private static double SumDouble(ReadOnlySpan<float> x)
    {
        double s = 0;
        for (int i = 0; i < x.Length; i++) s += x[i];
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
