namespace Raft.Model;

/// <summary>
/// How many rows of logits a chunked lm_head computes at a time (the student's loss and the teacher's top-K): a chunk
/// of [rows, V] fp32 logits is all that exists of the vocabulary at once, so a step's memory grows with the chunk, not
/// with batch × sequence × vocabulary.
/// </summary>
public static class LogitsChunk
{
    /// <summary>fp32 logits of the default chunk: 16 Mi values (64 MiB).</summary>
    public const int DefaultValues = 16 << 20;

    /// <summary>
    /// The rows per chunk: <paramref name="requested"/> when &gt; 0, else (0, the default) as many as fit
    /// <see cref="DefaultValues"/> (110 rows at Qwen2.5's 151,936-token vocabulary), at least 16.
    /// </summary>
    public static int Rows(int requested, int vocab)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(requested);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocab);
        return requested > 0 ? requested : Math.Max(16, DefaultValues / vocab);
    }
}
