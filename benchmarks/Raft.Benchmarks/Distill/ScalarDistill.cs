namespace Raft.Benchmarks.Distill;

/// <summary>
/// The straightforward managed version of the fused forward-KL loss: plain single-threaded float loops,
/// no SIMD, no threads: what one writes before optimising. Same contract as
/// <c>ILossKernels.Distill</c> with all row weights 1 and the normalizer = rows:
/// loss = τ²/rows · Σ_r Σ_j p_rj (log p_rj − log q_r,idx_rj), q_r = softmax(s_r/τ);
/// gradient = τ/rows · (q_ri·Σ_j p_rj − p_ri). <paramref name="gradient"/> may be the student array (in place).
/// </summary>
public static class ScalarDistill
{
    /// <summary>Computes the loss and writes the gradient; returns the loss.</summary>
    public static double Run(float[] student, int rows, int vocab, int[] indices, float[] probs, int k,
        float temperature, float[] gradient)
    {
        float invTau = 1f / temperature;
        float scale = temperature / rows;
        double lossSum = 0;
        for (int r = 0; r < rows; r++)
        {
            int o = r * vocab;
            // 1. max of the row, 2. Σ exp(s/τ − max/τ), so log Z = max/τ + log Σ.
            float max = float.NegativeInfinity;
            for (int i = 0; i < vocab; i++)
                if (student[o + i] > max) max = student[o + i];
            float m = max * invTau;
            float sum = 0f;
            for (int i = 0; i < vocab; i++) sum += MathF.Exp(student[o + i] * invTau - m);
            float lse = m + MathF.Log(sum);

            // 3. KL over the teacher's top-K, read before the row is overwritten (in place).
            float rowLoss = 0f, pSum = 0f;
            for (int j = 0; j < k; j++)
            {
                float p = probs[r * k + j];
                pSum += p;
                if (p > 0f) rowLoss += p * (MathF.Log(p) - (student[o + indices[r * k + j]] * invTau - lse));
            }
            lossSum += rowLoss;

            // 4. gradient: τ/rows · (q_i·Σp − p_i).
            float c = scale * pSum;
            for (int i = 0; i < vocab; i++) gradient[o + i] = MathF.Exp(student[o + i] * invTau - lse) * c;
            for (int j = 0; j < k; j++) gradient[o + indices[r * k + j]] -= scale * probs[r * k + j];
        }
        return (double)temperature * temperature * lossSum / rows;
    }
}
