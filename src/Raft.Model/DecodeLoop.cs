namespace Raft.Model;

/// <summary>
/// One decode step of a batch of b sequences: feeds <paramref name="tokens"/> [b] (row i's next token; a finished row
/// gets 0, and its logits are not read) at the next position of each sequence, and returns the logits [b, vocab] that
/// follow them. The array passed in belongs to <see cref="DecodeLoop"/> and is reused across steps; the returned one may
/// be the same buffer every step.
/// </summary>
public delegate float[] DecodeStepFunction(int[] tokens);

/// <summary>
/// The decode loop every generator shares (the engine's <see cref="Generator"/> and the ONNX teacher's): after a prefill
/// that gave each row's last logits, per step and per unfinished row, sample a token with
/// <see cref="Sampler.Sample(ReadOnlySpan{float}, SamplingOptions, ulong, ulong)"/> keyed by (seed, the prompt's global
/// index, step), record it, and apply the stop rules in order — a stop token, then <see cref="SamplingOptions.MaxNewTokens"/>,
/// then a full context; then feed the sampled tokens through the model for the next step's logits, until every row is done.
/// </summary>
public static class DecodeLoop
{
    /// <summary>
    /// How many new tokens a prompt of <paramref name="promptLength"/> tokens may get: <see cref="SamplingOptions.MaxNewTokens"/>,
    /// or fewer when the context (<paramref name="maxPositions"/> positions, prompt included) ends first.
    /// </summary>
    public static int Room(SamplingOptions options, int maxPositions, int promptLength)
    {
        ArgumentNullException.ThrowIfNull(options);
        return (int)Math.Min(options.MaxNewTokens, (long)maxPositions - promptLength);
    }

    /// <summary>
    /// Decodes a prefilled batch. Row i is prompt <c>members[i]</c> of the caller's list, whose global index is
    /// <paramref name="firstSequenceIndex"/> + <c>members[i]</c>; <paramref name="logits"/> [b, vocab] holds each row's
    /// logits after its prompt; <paramref name="room"/> (see <see cref="Room"/>) is the most new tokens before
    /// <see cref="StopReason.ContextFull"/>. Returns one <see cref="Generation"/> per row, in row order.
    /// </summary>
    /// <param name="logits">The prefill's last logits per row, [b, vocab].</param>
    /// <param name="vocab">The vocabulary size (the row stride of the logits).</param>
    /// <param name="members">Per row, the prompt's index in the caller's list (b = its count, ≥ 1).</param>
    /// <param name="firstSequenceIndex">The global index of the caller's prompt 0.</param>
    /// <param name="room">New tokens that fit in the context, ≥ 1.</param>
    /// <param name="options">How tokens are picked and when sequences stop.</param>
    /// <param name="step">Runs one decode step (see <see cref="DecodeStepFunction"/>).</param>
    public static Generation[] Run(float[] logits, int vocab, IReadOnlyList<int> members, ulong firstSequenceIndex, int room,
        SamplingOptions options, DecodeStepFunction step)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(step);
        int b = members.Count;
        if (b < 1) throw new ArgumentException("members must name at least one row.", nameof(members));
        if (vocab < 1) throw new ArgumentOutOfRangeException(nameof(vocab), vocab, "vocab must be ≥ 1.");
        if (room < 1) throw new ArgumentOutOfRangeException(nameof(room), room, "room must be ≥ 1.");
        if (logits.Length < (long)b * vocab)
            throw new ArgumentException($"logits has {logits.Length} values, needs [{b}, {vocab}].", nameof(logits));

        var outTokens = new List<int>[b];
        var outLp = new List<float>[b];
        var outModelLp = new List<float>[b];
        var done = new StopReason?[b];
        for (int i = 0; i < b; i++) { outTokens[i] = []; outLp[i] = []; outModelLp[i] = []; }
        var next = new int[b];
        var stop = new HashSet<int>(options.StopTokenIds);
        int pickable = options.PickableIds(vocab); // ids ≥ it (padding rows of the embedding) are never picked
        for (int s = 0; ; s++)
        {
            for (int i = 0; i < b; i++)
            {
                if (done[i] is not null) { next[i] = 0; continue; }   // finished rows feed a dummy token, ignored
                var t = Sampler.Sample(logits.AsSpan(i * vocab, pickable), options, firstSequenceIndex + (ulong)members[i], (ulong)s);
                outTokens[i].Add(t.TokenId); outLp[i].Add(t.LogProb); outModelLp[i].Add(t.ModelLogProb);
                next[i] = t.TokenId;
                if (stop.Contains(t.TokenId)) done[i] = StopReason.StopToken;
                else if (outTokens[i].Count >= options.MaxNewTokens) done[i] = StopReason.MaxNewTokens;
                else if (outTokens[i].Count >= room) done[i] = StopReason.ContextFull;
            }
            if (done.All(d => d is not null)) break;
            logits = step(next);
        }
        var results = new Generation[b];
        for (int i = 0; i < b; i++)
            results[i] = new Generation(outTokens[i].ToArray(), outLp[i].ToArray(), outModelLp[i].ToArray(), done[i]!.Value);
        return results;
    }
}
