using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Raft.Kernels;

/// <summary>
/// Argument checks shared by every implementation, so that each one rejects bad input the same way and
/// before anything is written. Throw helpers are kept out of line so hot paths stay small.
/// </summary>
internal static class Guard
{
    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void Throw(string message, string paramName) => throw new ArgumentException(message, paramName);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowNonFinite(string tensor, int row, int column, float value) =>
        throw new NonFiniteLogitException(tensor, row, column, value);

    public static void Shape(int rows, int vocab)
    {
        if (rows < 0) Throw($"rows must be ≥ 0, got {rows}.", nameof(rows));
        if (vocab < 1) Throw($"vocab must be ≥ 1, got {vocab}.", nameof(vocab));
    }

    public static void Length(int actual, long expected, string name, string shape)
    {
        if (actual != expected)
            Throw($"{name} must have {expected} elements ({shape}), got {actual}.", name);
    }

    public static void AtLeast(int actual, long expected, string name, string shape)
    {
        if (actual < expected)
            Throw($"{name} must have at least {expected} elements ({shape}), got {actual}.", name);
    }

    public static void Temperature(float temperature)
    {
        if (!(temperature > 0f) || !float.IsFinite(temperature))
            Throw($"temperature must be a finite number > 0, got {temperature}.", nameof(temperature));
    }

    public static void TopK(int k, int vocab)
    {
        if (k < 1 || k > vocab) Throw($"k must be in 1..{vocab} (the vocabulary size), got {k}.", nameof(k));
    }

    /// <summary>Weights: empty (all 1) or one finite, non-negative value per row.</summary>
    public static void RowWeights(ReadOnlySpan<float> w, int rows, string name = "rowWeights")
    {
        if (w.IsEmpty) return;
        Length(w.Length, rows, name, "[rows]");
        for (int r = 0; r < w.Length; r++)
            if (!(w[r] >= 0f) || !float.IsFinite(w[r]))
                Throw($"{name}[{r}] must be finite and ≥ 0, got {w[r]}.", name);
    }

    /// <summary>
    /// The teacher's top-K: distinct indices in 0..vocab-1 per row, probabilities finite in [0, 1]. Rows whose weight
    /// is 0 are skipped (the kernels do not read them); when <paramref name="rowWeights"/> does not have one weight per
    /// row (it is then rejected by <see cref="RowWeights"/>), every row is checked.
    /// </summary>
    public static void TeacherTopK(ReadOnlySpan<int> idx, ReadOnlySpan<float> p, int rows, int vocab, int k, ReadOnlySpan<float> rowWeights)
    {
        Length(idx.Length, (long)rows * k, "teacherIndices", "[rows, k]");
        Length(p.Length, (long)rows * k, "teacherProbs", "[rows, k]");
        bool weighted = rowWeights.Length == rows;
        for (int r = 0; r < rows; r++)
        {
            if (weighted && rowWeights[r] == 0f) continue;
            for (int i = r * k, end = i + k; i < end; i++)
            {
                if ((uint)idx[i] >= (uint)vocab)
                    Throw($"teacherIndices[{i / k}, {i % k}] must be in 0..{vocab - 1}, got {idx[i]}.", "teacherIndices");
                if (!(p[i] >= 0f && p[i] <= 1.0001f))
                    Throw($"teacherProbs[{i / k}, {i % k}] must be a probability in [0, 1], got {p[i]}.", "teacherProbs");
            }
        }
        // Distinct within each row: a bitset over the vocabulary, set for a row's K indices and cleared again
        // (O(rows·K), no sort).
        if (k > 1)
        {
            var seen = new ulong[(vocab + 63) / 64];
            for (int r = 0; r < rows; r++)
            {
                if (weighted && rowWeights[r] == 0f) continue;
                var row = idx.Slice(r * k, k);
                for (int j = 0; j < k; j++)
                {
                    int i = row[j];
                    ulong bit = 1UL << (i & 63);
                    if ((seen[i >> 6] & bit) != 0)
                        Throw($"teacherIndices row {r} holds index {i} twice; the K indices of a row must be distinct.", "teacherIndices");
                    seen[i >> 6] |= bit;
                }
                foreach (int i in row) seen[i >> 6] = 0;
            }
        }
    }

    /// <summary>
    /// The gradient buffer: empty (loss only), the student buffer itself (in place), or a separate buffer
    /// of the same length. A partial overlap is rejected.
    /// </summary>
    public static void Gradient(ReadOnlySpan<float> input, Span<float> gradient, string inputName)
    {
        if (gradient.IsEmpty) return;
        Length(gradient.Length, input.Length, "gradient", $"same shape as {inputName}");
        if (input.Overlaps(gradient, out int offset) && offset != 0)
            Throw($"gradient overlaps {inputName} at an offset of {offset} elements; pass the same buffer (in place) or a disjoint one.", "gradient");
    }

    public static void Normalizer(float normalizer)
    {
        if (!(normalizer >= 0f) || !float.IsFinite(normalizer))
            Throw($"normalizer must be finite and ≥ 0 (0: use the sum of row weights), got {normalizer}.", nameof(normalizer));
    }
}

/// <summary>A NaN or infinite value met in a logits tensor, reported with its row (and column when known).</summary>
public sealed class NonFiniteLogitException : ArithmeticException
{
    /// <summary>Creates the exception.</summary>
    public NonFiniteLogitException(string tensor, int row, int column, float value)
        : base($"{tensor} has a non-finite logit ({value}) at row {row}{(column >= 0 ? $", column {column}" : "")}.")
    {
        Tensor = tensor; Row = row; Column = column; Value = value;
    }

    /// <summary>The argument name of the tensor (for example "studentLogits").</summary>
    public string Tensor { get; }
    /// <summary>The row where the value was found.</summary>
    public int Row { get; }
    /// <summary>The column, or -1 when only the row is known.</summary>
    public int Column { get; }
    /// <summary>The offending value.</summary>
    public float Value { get; }
}
