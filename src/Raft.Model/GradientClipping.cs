using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Raft.Model;

/// <summary>
/// Global gradient-norm clipping. The norm is summed in a fixed order over fixed 4096-element blocks (fp32 lanes of
/// 8 within a block, fp64 across blocks), so it is the same bit for bit whatever the thread count or the machine's
/// vector width.
/// </summary>
public static class GradientClipping
{
    /// <summary>The block length of <see cref="GlobalNorm"/>'s partial sums.</summary>
    public const int Block = 4096;

    /// <summary>The L2 norm over every value of every tensor.</summary>
    public static double GlobalNorm(TensorSet gradients)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        var items = new List<(float[] Data, int Start, int Length)>();
        foreach (var t in gradients.Tensors)
            for (int s = 0; s < t.Length; s += Block) items.Add((t.Data, s, Math.Min(Block, t.Length - s)));
        var partial = new double[items.Count];
        if (items.Count <= 16)
            for (int i = 0; i < items.Count; i++) partial[i] = SumOfSquares(items[i].Data.AsSpan(items[i].Start, items[i].Length));
        else
            Parallel.For(0, items.Count, i => partial[i] = SumOfSquares(items[i].Data.AsSpan(items[i].Start, items[i].Length)));
        double sum = 0;
        foreach (double p in partial) sum += p;
        return Math.Sqrt(sum);
    }

    /// <summary>
    /// Scales every gradient by min(1, maxNorm / (norm + 1e-6)) and returns the norm before clipping. When the norm is
    /// NaN or infinite the gradients are left as they are (the caller should skip the step) and that norm is returned.
    /// </summary>
    public static double ClipByGlobalNorm(TensorSet gradients, double maxNorm)
    {
        if (!(maxNorm > 0) || !double.IsFinite(maxNorm))
            throw new ArgumentException($"maxNorm must be finite and > 0, got {maxNorm}.", nameof(maxNorm));
        double norm = GlobalNorm(gradients);
        if (!double.IsFinite(norm)) return norm;
        double factor = Math.Min(1.0, maxNorm / (norm + 1e-6));
        if (factor < 1.0)
        {
            float f = (float)factor;
            Parallel.ForEach(gradients.Tensors, t => System.Numerics.Tensors.TensorPrimitives.Multiply(t.Data, f, t.Data));
        }
        return norm;
    }

    /// <summary>
    /// Σx² of a block: eight fp32 lanes (Vector256 semantics everywhere), reduced in fp64 in lane order; the partial sums
    /// of <see cref="GlobalNorm"/> (blocks of 4,096), for a caller that holds a slice of the gradients (ZeRO).
    /// </summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        var acc = Vector256<float>.Zero;
        int i = 0;
        ref float r = ref MemoryMarshal.GetReference(x);
        for (; i <= x.Length - 8; i += 8)
        {
            var v = Vector256.LoadUnsafe(ref r, (nuint)i);
            acc += v * v;
        }
        double sum = 0;
        for (int l = 0; l < 8; l++) sum += acc.GetElement(l);
        for (; i < x.Length; i++) sum += (double)x[i] * x[i];
        return sum;
    }
}
