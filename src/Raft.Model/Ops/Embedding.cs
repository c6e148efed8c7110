namespace Raft.Model.Ops;

/// <summary>Token embedding lookup: x[n] = E[token[n]], and its backward dE[token[n]] += dx[n].</summary>
internal static class Embedding
{
    /// <summary>Copies the embedding rows of the tokens; a token outside 0..V-1 is an error naming it.</summary>
    public static void Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<float> table, Span<float> x, int vocab, int c)
    {
        // tokens: [N]   table: [V, C]   x: [N, C]
        for (int n = 0; n < tokens.Length; n++)
        {
            int t = tokens[n];
            if ((uint)t >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(tokens), t, $"token at index {n} is {t}, outside the vocabulary 0..{vocab - 1}.");
            table.Slice(t * c, c).CopyTo(x.Slice(n * c, c));
        }
    }

    /// <summary>As the fp32 lookup, from a 16-bit table: each row widened exactly to fp32.</summary>
    public static void Forward(ReadOnlySpan<int> tokens, HalfMatrix table, Span<float> x, int vocab, int c)
    {
        // tokens: [N]   table: [V, C] (BF16 or F16)   x: [N, C]
        for (int n = 0; n < tokens.Length; n++)
        {
            int t = tokens[n];
            if ((uint)t >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(tokens), t, $"token at index {n} is {t}, outside the vocabulary 0..{vocab - 1}.");
            HalfBits.Widen(table.Bits.AsSpan((int)((long)t * c), c), x.Slice(n * c, c), table.DType);
        }
    }

    /// <summary>Scatters the gradient rows into the table gradient, in token order (deterministic).</summary>
    public static void Backward(ReadOnlySpan<int> tokens, ReadOnlySpan<float> dx, Span<float> dTable, int c)
    {
        // tokens: [N]   dx: [N, C]   dTable: [V, C] (accumulated)
        for (int n = 0; n < tokens.Length; n++)
            Vec.AddInPlace(dTable.Slice(tokens[n] * c, c), dx.Slice(n * c, c));
    }
}
