using Raft.Model;

namespace Raft.Teacher;

/// <summary>
/// Batched sampling from the ONNX teacher through its KV cache (<c>past_key_values</c> → <c>present</c>), with the
/// same semantics as <see cref="Generator"/>: the same <see cref="SamplingOptions"/> (temperature, top-k, top-p,
/// max new tokens, stop ids, seed), the same <see cref="Sampler.Sample(ReadOnlySpan{float}, SamplingOptions, ulong, ulong)"/>
/// call per token keyed by (seed, global sequence index, step), the same per-sequence stop rules and the same
/// <see cref="Generation"/> records (both decode through <see cref="DecodeLoop"/>; only the prefill is this class's
/// own). Prompts of unequal lengths are grouped by length, as <see cref="Generator"/>
/// does (no padding: every row of a batch has the same positions, so no attention mask or position ids other than
/// the defaults are needed, and a row's logits do not depend on which other rows share its batch beyond float
/// rounding). A token's randomness depends only on (seed, global index, step), so the result does not depend on
/// <c>maxBatch</c> or on how the prompts are split across calls or processes.
/// </summary>
public static class TeacherGenerator
{
    /// <summary>The most prefill logits ([batch, chunk, vocab] fp32) one call may produce: 256 MiB. Longer prompts are prefilled in chunks.</summary>
    public const long PrefillBudgetBytes = 256L << 20;

    /// <summary>
    /// Generates a continuation for each prompt. Prompts [n][T_i] (non-empty, tokens inside the vocabulary, shorter
    /// than the model's max_position_embeddings when the session knows it); the result has one
    /// <see cref="Generation"/> per prompt, in order. <paramref name="firstSequenceIndex"/> is the global index of
    /// prompts[0] (the rest follow consecutively), for sampling reproducibility across batches and processes.
    /// <see cref="StopReason.ContextFull"/> is reported when max_position_embeddings (from the <c>config.json</c>
    /// beside the model) leaves no room; without a config only the other two reasons occur.
    /// </summary>
    /// <param name="session">The teacher.</param>
    /// <param name="prompts">Token ids per prompt.</param>
    /// <param name="options">How tokens are picked and when sequences stop.</param>
    /// <param name="firstSequenceIndex">Global index of prompts[0].</param>
    /// <param name="maxBatch">The most sequences decoded together, ≥ 1.</param>
    public static IReadOnlyList<Generation> Generate(TeacherSession session, IReadOnlyList<int[]> prompts, SamplingOptions options,
        ulong firstSequenceIndex = 0, int maxBatch = 64) =>
        Generate(session, prompts, options, firstSequenceIndex, maxBatch, PrefillBudgetBytes);

    /// <summary>As the public overload with another prefill logits budget (tests use a tiny one to force chunking).</summary>
    internal static IReadOnlyList<Generation> Generate(TeacherSession session, IReadOnlyList<int[]> prompts, SamplingOptions options,
        ulong firstSequenceIndex, int maxBatch, long prefillBudgetBytes)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        int vocab = session.VocabSize;
        int maxPos = session.MaxPositions ?? int.MaxValue;
        options.ValidateFor(vocab);
        Generator.ValidatePrompts(prompts, vocab, maxPos, maxBatch);
        var results = new Generation[prompts.Count];
        foreach (var batch in Generator.LengthBatches(prompts, maxBatch))
        {
            int t0 = prompts[batch[0]].Length;
            long chunk = Math.Clamp(prefillBudgetBytes / ((long)batch.Length * vocab * sizeof(float)), 1, t0);
            if (batch.Length > 1 && chunk > 1 && chunk < t0 && session.ChunksNeedBatchOne)
                // GroupQueryAttention prefills in chunks only one sequence at a time: same tokens, keyed by global index
                foreach (int member in batch) GenerateBatch(session, prompts, [member], options, firstSequenceIndex, maxPos, prefillBudgetBytes, results);
            else GenerateBatch(session, prompts, batch, options, firstSequenceIndex, maxPos, prefillBudgetBytes, results);
        }
        return results;
    }

    private static void GenerateBatch(TeacherSession session, IReadOnlyList<int[]> prompts, int[] members, SamplingOptions options,
        ulong firstSequenceIndex, int maxPos, long prefillBudgetBytes, Generation[] results)
    {
        int b = members.Length, t0 = prompts[members[0]].Length, vocab = session.VocabSize;
        int room = DecodeLoop.Room(options, maxPos, t0);
        using var cache = session.CreateCache(b);
        var logits = new float[b * vocab]; // the last position's logits per row
        Prefill(session, cache, prompts, members, t0, prefillBudgetBytes, logits);
        var ids = new long[b];
        var generated = DecodeLoop.Run(logits, vocab, members, firstSequenceIndex, room, options, next =>
        {
            for (int i = 0; i < b; i++) ids[i] = next[i];
            return session.Forward(ids, b, 1, cache); // [b, 1, vocab]
        });
        for (int i = 0; i < b; i++) results[members[i]] = generated[i];
    }

    /// <summary>Feeds the prompts through the cache in chunks of at most <paramref name="budget"/> bytes of logits (at least one position); keeps each row's last logits.</summary>
    private static void Prefill(TeacherSession session, TeacherKvCache cache, IReadOnlyList<int[]> prompts, int[] members, int t0, long budget, float[] last)
    {
        int b = members.Length, vocab = session.VocabSize;
        int chunk = (int)Math.Clamp(budget / ((long)b * vocab * sizeof(float)), 1, t0);
        var piece = new long[b * chunk];
        for (int s = 0; s < t0; s += chunk)
        {
            int m = Math.Min(chunk, t0 - s);
            for (int i = 0; i < b; i++)
            {
                var p = prompts[members[i]];
                for (int j = 0; j < m; j++) piece[i * m + j] = p[s + j];
            }
            float[] logits = session.Forward(piece.AsSpan(0, b * m), b, m, cache); // [b, m, vocab]
            if (s + m == t0)
                for (int i = 0; i < b; i++) logits.AsSpan((i * m + m - 1) * vocab, vocab).CopyTo(last.AsSpan(i * vocab, vocab));
        }
    }
}
