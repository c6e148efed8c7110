namespace Raft.Model;

/// <summary>Why a generated sequence ended.</summary>
public enum StopReason
{
    /// <summary>It produced one of <see cref="SamplingOptions.StopTokenIds"/> (kept as its last token).</summary>
    StopToken,
    /// <summary>It reached <see cref="SamplingOptions.MaxNewTokens"/>.</summary>
    MaxNewTokens,
    /// <summary>The KV cache (the model's <c>max_position_embeddings</c>) had no room for more positions.</summary>
    ContextFull,
}

/// <summary>One generated continuation.</summary>
/// <param name="Tokens">The new tokens, without the prompt (a stop token, when met, is the last one).</param>
/// <param name="LogProbs">Per new token: log-probability under the sampling distribution actually used.</param>
/// <param name="ModelLogProbs">Per new token: log-probability under the model's untempered distribution.</param>
/// <param name="Reason">Why it ended.</param>
public sealed record Generation(int[] Tokens, float[] LogProbs, float[] ModelLogProbs, StopReason Reason);

/// <summary>
/// Batched sampling with a KV cache: prompts of equal length are prefilled together and then decoded one token
/// per step; finished sequences stop contributing tokens. A token's randomness depends only on
/// (seed, the prompt's global index, step) (see <see cref="Sampler"/>), so the result does not depend on how
/// prompts are grouped into batches, on the thread count, or on the process: that is what lets data-parallel
/// ranks reproduce a single-process run.
/// </summary>
public static class Generator
{
    /// <summary>
    /// Generates a continuation for each prompt. Prompts [n][T_i] (non-empty); the result has one
    /// <see cref="Generation"/> per prompt, in order. <paramref name="firstSequenceIndex"/> is the global index of
    /// prompts[0] (the rest follow consecutively), for sampling reproducibility across batches and processes.
    /// </summary>
    public static IReadOnlyList<Generation> Generate(LlamaModel model, IReadOnlyList<int[]> prompts, SamplingOptions options,
        ulong firstSequenceIndex = 0, int maxBatch = 64)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        int vocab = model.Config.VocabSize, maxPos = model.Config.MaxPositionEmbeddings;
        options.ValidateFor(vocab);
        ValidatePrompts(prompts, vocab, maxPos, maxBatch);
        var results = new Generation[prompts.Count];
        foreach (var batch in LengthBatches(prompts, maxBatch))
            GenerateBatch(model, prompts, batch, options, firstSequenceIndex, results);
        return results;
    }

    /// <summary>
    /// The argument checks every generator shares (the engine's and ONNX Runtime's): each prompt non-null, non-empty, shorter
    /// than <paramref name="maxPositions"/>, every token in 0..<paramref name="vocab"/>−1; <paramref name="maxBatch"/> ≥ 1.
    /// Throws <see cref="ArgumentException"/> naming the prompt and the value.
    /// </summary>
    public static void ValidatePrompts(IReadOnlyList<int[]> prompts, int vocab, int maxPositions, int maxBatch)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (maxBatch < 1) throw new ArgumentException($"maxBatch must be ≥ 1, got {maxBatch}.", nameof(maxBatch));
        for (int i = 0; i < prompts.Count; i++)
        {
            var p = prompts[i] ?? throw new ArgumentException($"prompts[{i}] is null.", nameof(prompts));
            if (p.Length == 0) throw new ArgumentException($"prompts[{i}] is empty.", nameof(prompts));
            if (p.Length >= maxPositions)
                throw new ArgumentException($"prompts[{i}] has {p.Length} tokens; the model's max_position_embeddings is {maxPositions}.", nameof(prompts));
            foreach (int t in p)
                if ((uint)t >= (uint)vocab)
                    throw new ArgumentException($"prompts[{i}] holds token {t}, outside 0..{vocab - 1}.", nameof(prompts));
        }
    }

    /// <summary>
    /// The batches a generator runs: prompt indices grouped by prompt length (a KV cache keeps one length for its whole
    /// batch), each group cut into batches of at most <paramref name="maxBatch"/>, in order of first appearance.
    /// </summary>
    public static IEnumerable<int[]> LengthBatches(IReadOnlyList<int[]> prompts, int maxBatch)
    {
        foreach (var group in Enumerable.Range(0, prompts.Count).GroupBy(i => prompts[i].Length))
        {
            var members = group.ToArray();
            for (int start = 0; start < members.Length; start += maxBatch)
                yield return members.AsSpan(start, Math.Min(maxBatch, members.Length - start)).ToArray();
        }
    }

    private static void GenerateBatch(LlamaModel model, IReadOnlyList<int[]> prompts, int[] members, SamplingOptions options,
        ulong firstSequenceIndex, Generation[] results)
    {
        int b = members.Length, t0 = prompts[members[0]].Length, vocab = model.Config.VocabSize;
        int room = DecodeLoop.Room(options, model.Config.MaxPositionEmbeddings, t0);
        var cache = model.CreateKvCache(b, t0 + room);
        var tokens = new int[b * t0];
        for (int i = 0; i < b; i++) prompts[members[i]].CopyTo(tokens, i * t0);
        var logits = new float[b * vocab];
        model.Prefill(cache, tokens, t0, logits);
        var generated = DecodeLoop.Run(logits, vocab, members, firstSequenceIndex, room, options, next =>
        {
            model.DecodeStep(cache, next, logits);
            return logits;
        });
        for (int i = 0; i < b; i++) results[members[i]] = generated[i];
    }
}
