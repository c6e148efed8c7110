using System.Runtime.CompilerServices;
using System.Buffers;

namespace Raft.Kernels;

/// <summary>
/// The fast CPU implementation of <see cref="ILossKernels"/>: SIMD row sweeps (Vector512, Vector256 or
/// scalar, see <see cref="SimdLevel"/>) threaded over rows. Each student row is read from memory once;
/// the second sweep that writes the gradient finds the row in cache (a 151,936-entry row is 594 KiB).
/// Per-row losses are summed in row order after the parallel part, so results do not depend on the
/// number of threads.
/// </summary>
public sealed class CpuKernels : ILossKernels
{
    private readonly SimdLevel _level;
    private readonly int _threads;

    /// <summary>Creates the kernels.</summary>
    /// <param name="maxThreads">Threads to use over rows; 0 means all cores.</param>
    /// <param name="level">The vector width; null picks the widest this machine supports. A level the
    /// hardware cannot run is rejected.</param>
    public CpuKernels(int maxThreads = 0, SimdLevel? level = null)
    {
        if (maxThreads < 0) Guard.Throw($"maxThreads must be ≥ 0 (0: all cores), got {maxThreads}.", nameof(maxThreads));
        var chosen = level ?? CpuSimd.Best;
        if (!CpuSimd.Supported.Contains(chosen))
            Guard.Throw($"level {chosen} is not supported on this machine (supported: {string.Join(", ", CpuSimd.Supported)}).", nameof(level));
        _level = chosen;
        _threads = maxThreads == 0 ? Environment.ProcessorCount : maxThreads;
    }

    /// <summary>The vector widths this machine supports, widest first: the variants tests and benchmarks iterate.</summary>
    public static IReadOnlyList<SimdLevel> SupportedLevels => CpuSimd.Supported;

    /// <summary>The vector width in use.</summary>
    public SimdLevel Level => _level;

    /// <inheritdoc />
    public string Name => $"cpu-{_level.ToString().ToLowerInvariant()}";

    // ---------------------------------------------------------------- top-K temperature softmax

    /// <inheritdoc />
    public unsafe void TopKSoftmax(ReadOnlySpan<float> teacherLogits, int rows, int vocab, int k, float temperature,
        Span<int> indices, Span<float> probs)
    {
        LossArguments.TopKSoftmax(teacherLogits, rows, vocab, k, temperature, indices, probs);
        fixed (float* t = teacherLogits)
        fixed (int* ix = indices)
        fixed (float* pr = probs)
        {
            nint tp = (nint)t, ip = (nint)ix, pp = (nint)pr;
            var level = _level;
            double invTau = 1.0 / temperature;
            RunRows(rows, vocab, (start, end) =>
            {
                var sel = new CpuTopK(k, vocab);
                var vals = new float[k];
                for (int r = start; r < end; r++)
                {
                    var row = new ReadOnlySpan<float>((float*)tp + (long)r * vocab, vocab);
                    var idx = new Span<int>((int*)ip + (long)r * k, k);
                    var p = new Span<float>((float*)pp + (long)r * k, k);
                    double sum = sel.Select(row, k, level, idx, vals);
                    if (!double.IsFinite(sum)) ThrowRow("teacherLogits", r, row);
                    double max = vals[0], z = 0;
                    for (int j = 0; j < k; j++) z += Math.Exp((vals[j] - max) * invTau);
                    double inv = 1.0 / z;
                    for (int j = 0; j < k; j++) p[j] = (float)(Math.Exp((vals[j] - max) * invTau) * inv);
                }
            });
        }
    }

    // ---------------------------------------------------------------- distillation

    /// <inheritdoc />
    public unsafe LossResult Distill(ReadOnlySpan<float> studentLogits, int rows, int vocab,
        ReadOnlySpan<int> teacherIndices, ReadOnlySpan<float> teacherProbs, DistillSettings config,
        ReadOnlySpan<float> rowWeights, Span<float> gradient, float normalizer = 0f)
    {
        LossArguments.Distill(studentLogits, rows, vocab, teacherIndices, teacherProbs, config, rowWeights, gradient, normalizer);
        var (weightSum, n) = LossArguments.DistillNormalizer(rowWeights, rows, normalizer);
        int k = config.TopK;
        var rowLoss = ArrayPool<double>.Shared.Rent(Math.Max(rows, 1));
        try
        {
            fixed (float* s = studentLogits)
            fixed (int* ix = teacherIndices)
            fixed (float* pr = teacherProbs)
            fixed (float* w = rowWeights)
            fixed (float* g = gradient)
            {
                nint sp = (nint)s, ip = (nint)ix, pp = (nint)pr, wp = (nint)w, gp = (nint)g;
                bool hasW = !rowWeights.IsEmpty, hasG = !gradient.IsEmpty;
                var level = _level;
                RunRows(rows, vocab, (start, end) =>
                {
                    var gathered = new float[k];
                    var scratch = new double[k];
                    for (int r = start; r < end; r++)
                    {
                        double wr = hasW ? ((float*)wp)[r] : 1.0;
                        var gRow = hasG ? new Span<float>((float*)gp + (long)r * vocab, vocab) : default;
                        if (wr == 0 || n == 0)
                        {
                            rowLoss[r] = 0;
                            gRow.Clear();
                            continue;
                        }
                        var row = new ReadOnlySpan<float>((float*)sp + (long)r * vocab, vocab);
                        rowLoss[r] = wr * DistillRow(row, r,
                            new ReadOnlySpan<int>((int*)ip + (long)r * k, k),
                            new ReadOnlySpan<float>((float*)pp + (long)r * k, k),
                            config, wr / n, gRow, gathered, scratch, level);
                    }
                });
            }
            double lossSum = 0;
            for (int r = 0; r < rows; r++) lossSum += rowLoss[r];
            return new LossResult(n == 0 ? 0 : lossSum / n, lossSum, weightSum, n);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(rowLoss);
        }
    }

    /// <summary>
    /// One row, [vocab]: returns τ²·D and, when <paramref name="grad"/> is not empty, writes
    /// gradScale·∂(τ²·D)/∂s into it (grad may be the row itself: the K student logits are gathered first).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double DistillRow(ReadOnlySpan<float> row, int r, ReadOnlySpan<int> idx, ReadOnlySpan<float> p,
        DistillSettings config, double gradScale, Span<float> grad, float[] sK, double[] scratch, SimdLevel level)
    {
        int k = idx.Length;
        double tau = config.Temperature;
        float invTau = 1f / config.Temperature;

        var kind = config.EffectiveKind;
        if (kind == DistillLossKind.ReverseKL)
        {
            // One sweep for the finiteness check; only the K entries enter the loss.
            CpuSimd.MaxSum(row, level, out double sumX);
            if (!double.IsFinite(sumX)) ThrowRow("studentLogits", r, row);
            for (int j = 0; j < k; j++) sK[j] = row[idx[j]];
            // Only the K entries matter: q_K = softmax(s_K/τ); D = Σ q (log q − log p).
            double mK = double.NegativeInfinity;
            for (int j = 0; j < k; j++) mK = Math.Max(mK, sK[j] * (double)invTau);
            double z = 0;
            for (int j = 0; j < k; j++) z += Math.Exp(sK[j] * (double)invTau - mK);
            double lseK = mK + Math.Log(z), d = 0;
            var f = scratch;
            for (int j = 0; j < k; j++)
            {
                double logq = sK[j] * (double)invTau - lseK;
                f[j] = logq - Math.Log(Math.Max(p[j], ReferenceKernels.ProbabilityFloor));
                d += Math.Exp(logq) * f[j];
            }
            if (!grad.IsEmpty)
            {
                grad.Clear();
                for (int j = 0; j < k; j++)
                {
                    double q = Math.Exp(sK[j] * (double)invTau - lseK);
                    grad[idx[j]] = (float)(gradScale * tau * q * (f[j] - d));
                }
            }
            return tau * tau * d;
        }

        // Sweep 1, the only read of the row from memory: its log-sum-exp at τ, online (block max, then
        // block exp-sum from L1, rescaled when the max grows), and a finiteness check. The generalized JSD's
        // gradient τ·q_i·(g_i − ḡ) has ḡ close to g_i outside the top-K, which amplifies an error in
        // log-sum-exp by up to 100×: for it the exponentials are summed in double (a second read).
        float m;
        double sumE, sumX0;
        if (kind == DistillLossKind.Jsd)
        {
            float max = CpuSimd.MaxSum(row, level, out sumX0);
            m = max * invTau;
            sumE = double.IsFinite(sumX0) ? CpuSimd.ExpSumPrecise(row, invTau, m, level) : double.NaN;
        }
        else
        {
            sumE = CpuSimd.MaxExpSum(row, invTau, level, out m, out sumX0);
        }
        if (!double.IsFinite(sumX0)) ThrowRow("studentLogits", r, row);
        for (int j = 0; j < k; j++) sK[j] = row[idx[j]];
        double lse = m + Math.Log(sumE);

        if (kind == DistillLossKind.ForwardKL)
        {
            double d = 0, pSum = 0;
            for (int j = 0; j < k; j++)
            {
                pSum += p[j];
                if (p[j] > 0) d += p[j] * (Math.Log(p[j]) - (sK[j] * (double)invTau - lse));
            }
            if (!grad.IsEmpty)
            {
                // Sweep 2 (read + write): g_i = scale·τ·(q_i·Σp − p_i[i∈K]),  q_i = exp(s_i/τ − m) / Σe
                CpuSimd.ExpAffine(row, invTau, m, (float)(gradScale * tau * pSum / sumE), 0f, grad, level);
                // The K entries are recomputed in double (q_j·Σp − p_j cancels when the student is close).
                for (int j = 0; j < k; j++)
                    grad[idx[j]] = (float)(gradScale * tau * (Math.Exp(sK[j] * (double)invTau - lse) * pSum - p[j]));
            }
            return tau * tau * d;
        }

        // Generalized JSD, 0 < β < 1 (see ReferenceKernels.DistillRow for the derivation).
        {
            double beta = config.Beta, lb = Math.Log(beta), l1b = Math.Log(1 - beta);
            double c = -(1 - beta) * l1b;
            double qK = 0, gBar = 0, d = 0;
            var gK = scratch;
            for (int j = 0; j < k; j++)
            {
                double logq = sK[j] * (double)invTau - lse, q = Math.Exp(logq);
                double logM = p[j] > 0 ? ReferenceKernels.LogAddExp(lb + Math.Log(p[j]), l1b + logq) : l1b + logq;
                if (p[j] > 0) d += beta * p[j] * (Math.Log(p[j]) - logM);
                d += (1 - beta) * q * (logq - logM);
                gK[j] = (1 - beta) * (logq - logM);
                qK += q;
                gBar += q * gK[j];
            }
            double rest = Math.Max(0, 1 - qK);
            d += rest * c;
            gBar += rest * c;
            if (!grad.IsEmpty)
            {
                CpuSimd.ExpAffine(row, invTau, m, (float)(gradScale * tau * (c - gBar) / sumE), 0f, grad, level);
                for (int j = 0; j < k; j++)
                    grad[idx[j]] = (float)(gradScale * tau * Math.Exp(sK[j] * (double)invTau - lse) * (gK[j] - gBar));
            }
            return tau * tau * d;
        }
    }

    // ---------------------------------------------------------------- cross-entropy

    /// <inheritdoc />
    public unsafe LossResult CrossEntropy(ReadOnlySpan<float> logits, int rows, int vocab, ReadOnlySpan<int> targets,
        Span<float> gradient, int ignoreIndex = -100, float labelSmoothing = 0f, float normalizer = 0f)
    {
        LossArguments.CrossEntropy(logits, rows, vocab, targets, gradient, ignoreIndex, labelSmoothing, normalizer);
        var (count, n) = LossArguments.CrossEntropyNormalizer(targets, ignoreIndex, normalizer);
        var rowLoss = ArrayPool<double>.Shared.Rent(Math.Max(rows, 1));
        try
        {
            fixed (float* s = logits)
            fixed (int* t = targets)
            fixed (float* g = gradient)
            {
                nint sp = (nint)s, tp = (nint)t, gp = (nint)g;
                bool hasG = !gradient.IsEmpty;
                var level = _level;
                double eps = labelSmoothing;
                RunRows(rows, vocab, (start, end) =>
                {
                    for (int r = start; r < end; r++)
                    {
                        int target = ((int*)tp)[r];
                        var gRow = hasG ? new Span<float>((float*)gp + (long)r * vocab, vocab) : default;
                        if (target == ignoreIndex || n == 0)
                        {
                            rowLoss[r] = 0;
                            gRow.Clear();
                            continue;
                        }
                        var row = new ReadOnlySpan<float>((float*)sp + (long)r * vocab, vocab);
                        double sumE = CpuSimd.MaxExpSum(row, 1f, level, out float max, out double sumX0);
                        if (!double.IsFinite(sumX0)) ThrowRow("logits", r, row);
                        float st = row[target], x0 = row[0];
                        double lse = max + Math.Log(sumE);
                        // Σ_i log q_i = Σ_i (x_i − x_0) + V·(x_0 − lse)
                        rowLoss[r] = -(1 - eps) * (st - lse) - eps / vocab * (sumX0 + vocab * (x0 - lse));
                        if (hasG)
                        {
                            // g_i = (q_i − ε/V − (1−ε)[i = t]) / N
                            CpuSimd.ExpAffine(row, 1f, max, (float)(1 / (sumE * n)), (float)(-eps / vocab / n), gRow, level);
                            gRow[target] -= (float)((1 - eps) / n);
                        }
                    }
                });
            }
            double lossSum = 0;
            for (int r = 0; r < rows; r++) lossSum += rowLoss[r];
            return new LossResult(n == 0 ? 0 : lossSum / n, lossSum, count, n);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(rowLoss);
        }
    }

    // ---------------------------------------------------------------- threading and errors

    /// <summary>
    /// Runs body over [start, end) row ranges on up to the configured threads. The first
    /// <see cref="NonFiniteLogitException"/> (lowest row) or argument error is rethrown as itself.
    /// </summary>
    private void RunRows(int rows, int vocab, Action<int, int> body)
    {
        if (rows == 0) return;
        // Aim for chunks of at least ~64k elements, and several chunks per thread for balance.
        int minRows = Math.Max(1, 65536 / Math.Max(vocab, 1));
        int chunk = Math.Max(minRows, rows / (_threads * 4));
        int chunks = (rows + chunk - 1) / chunk;
        if (_threads == 1 || chunks == 1)
        {
            body(0, rows);
            return;
        }
        try
        {
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = _threads },
                c => body(c * chunk, Math.Min(rows, (c + 1) * chunk)));
        }
        catch (AggregateException e)
        {
            var rowErrors = e.InnerExceptions.OfType<NonFiniteLogitException>().OrderBy(x => x.Row).ToList();
            if (rowErrors.Count > 0) throw rowErrors[0];
            if (e.InnerExceptions.Count == 1) throw e.InnerExceptions[0];
            throw;
        }
    }

    /// <summary>
    /// The error path of a row whose running sum was not finite: finds the NaN or ±∞ and throws. A row of
    /// huge but finite values whose fp32 block sum overflowed is let through (nothing is wrong with it).
    /// </summary>
    private static void ThrowRow(string tensor, int row, ReadOnlySpan<float> values)
    {
        int col = CpuSimd.FindNonFinite(values);
        if (col >= 0) Guard.ThrowNonFinite(tensor, row, col, values[col]);
    }
}
