using Raft.Model.Tokenization;

namespace Raft.Pipeline.Training;

/// <summary>
/// One training example as token ids: the prompt with the generation prompt (what rollouts continue), the whole
/// conversation with its assistant mask (what the SFT term is trained on), the teacher's context (the prompt with the
/// fused answer in it for RAFT, the prompt alone for the no-answer-conditioning ablation) and the most tokens a rollout
/// of it may have (RAFT: <see cref="TrainOptions.RolloutMaxTokens"/>, or fewer where the prompt and
/// <see cref="TrainOptions.MaxLength"/>, or the teacher's context and the model's positions, leave less room).
/// </summary>
internal sealed record EncodedExample(int[] Prompt, int[] Full, bool[] Mask, int[] TeacherContext, int RolloutRoom = 0);

/// <summary>What <see cref="TrainData.Encode"/> cut to make the examples fit <see cref="TrainOptions.MaxLength"/>.</summary>
/// <param name="MaxLength">The limit applied: max_length, or the model's max_position_embeddings when it is not set.</param>
/// <param name="Truncated">Examples with any token cut (answer end, prompt start or the teacher context's start).</param>
/// <param name="AnswerCut">Of those, examples whose prompt + answer sequence lost the end of its answer.</param>
/// <param name="PromptCut">Examples whose prompt (in the answer sequence or the rollout prompt) alone left no room and lost its start.</param>
/// <param name="ContextCut">RAFT: examples whose teacher context left no room in the model's positions and lost its start.</param>
/// <param name="RolloutsShortened">RAFT: examples whose rollouts may have fewer than rollout_max_tokens tokens so as to fit.</param>
public sealed record TruncationReport(int MaxLength, int Truncated, int AnswerCut, int PromptCut, int ContextCut, int RolloutsShortened)
{
    /// <summary>One log line: the limit and what was cut.</summary>
    public string Describe(int examples, bool given) =>
        $"max_length {MaxLength}{(given ? "" : " (the model's max_position_embeddings)")}: " +
        (Truncated == 0 ? $"no example of {examples} truncated" : $"{Truncated} of {examples} examples truncated ({AnswerCut} lost the end of their answer, {PromptCut} the start of their prompt" +
                                                                 (ContextCut > 0 ? $", {ContextCut} the start of their teacher context" : "") + ")") +
        (RolloutsShortened > 0 ? $"; rollouts of {RolloutsShortened} example(s) limited to fit (prompt + rollout ≤ {MaxLength})" : "");
}

/// <summary>The training data encoded once by the student's chat template, with the stop ids its rollouts end at.</summary>
internal sealed class TrainData
{
    private TrainData(EncodedExample[] examples, int[] stopIds, int vocabLimit, TruncationReport truncation)
    {
        Examples = examples; StopIds = stopIds; VocabLimit = vocabLimit; Truncation = truncation;
    }

    /// <summary>Data made of token sequences given as they are (tests), with the template's stop ids and nothing truncated.</summary>
    internal static TrainData FromEncoded(EncodedExample[] examples, ITokenizer tokenizer, ChatTemplate template, int maxLength) =>
        new(examples, template.StopIds(tokenizer), tokenizer.VocabSize, new TruncationReport(maxLength, 0, 0, 0, 0, 0));

    /// <summary>The encoded examples, in the order given.</summary>
    public EncodedExample[] Examples { get; }

    /// <summary>The template's stop token ids (rollouts end at one).</summary>
    public int[] StopIds { get; }

    /// <summary>The tokenizer's size: rollouts never sample the embedding's padding rows beyond it.</summary>
    public int VocabLimit { get; }

    /// <summary>What was truncated to fit the length limit.</summary>
    public TruncationReport Truncation { get; }

    /// <summary>Number of examples.</summary>
    public int Count => Examples.Length;

    /// <summary>
    /// Encodes every example and fits it into N = <see cref="TrainOptions.MaxLength"/> positions (default
    /// <paramref name="maxPositions"/>, the model's max_position_embeddings; a larger max_length is an
    /// <see cref="ArgumentException"/> naming max_length):
    /// <list type="bullet">
    /// <item>the prompt + answer sequence keeps its first N tokens (Hugging Face SFTTrainer's truncation of the end: the
    /// prompt stays, the answer loses its end, the assistant mask is cut with it); when the prompt part alone leaves no
    /// answer token within N, the sequence first loses the start of its prompt, down to its last ⌊N/2⌋ prompt tokens (the
    /// generation prompt stays next to the answer), and the answer fills the rest;</item>
    /// <item>RAFT: a rollout prompt of N or more tokens keeps its last ⌊N/2⌋; a rollout may have at most
    /// min(rollout_max_tokens, N − prompt, P − teacher context) tokens (P the model's positions: the teacher reads its
    /// context + the rollout; a context of P or more tokens keeps its last ⌊P/2⌋).</item>
    /// </list>
    /// The counts are in <see cref="Truncation"/>.
    /// </summary>
    public static TrainData Encode(IReadOnlyList<TrainExample> data, ITokenizer tokenizer, ChatTemplate template, TrainOptions options, int maxPositions)
    {
        int n = options.MaxLength ?? maxPositions;
        if (n > maxPositions)
            throw new ArgumentException($"max_length = {n}: must be ≤ the model's max_position_embeddings {maxPositions} (the positions it was trained for).", "max_length");
        if (n < 2) throw new ArgumentException($"max_length = {n}: must be ≥ 2.", "max_length");
        bool raft = options.Method == TrainMethod.Raft;
        var encoded = new EncodedExample[data.Count];
        int truncated = 0, answerCut = 0, promptCut = 0, contextCut = 0, shortened = 0;
        for (int i = 0; i < data.Count; i++)
        {
            var e = data[i] ?? throw new ArgumentException($"data[{i}] is null.", nameof(data));
            var prompt = template.Encode(tokenizer, [ChatMessage.User(e.Prompt)], addGenerationPrompt: true).Ids;
            var full = template.Encode(tokenizer, [ChatMessage.User(e.Prompt), ChatMessage.Assistant(e.Answer)]);
            var ctx = options.AnswerConditioned
                ? template.Encode(tokenizer, [ChatMessage.User(PromptTemplates.AnswerConditioned(e.Prompt, e.Answer))], addGenerationPrompt: true).Ids
                : prompt;
            var (ids, mask, cutAnswer, cutPrompt) = FitSequence(full.Ids, full.AssistantMask, n);
            bool cutRolloutPrompt = false, cutContext = false;
            int room = 0;
            if (raft)
            {
                (prompt, cutRolloutPrompt) = FitPrefix(prompt, n);
                bool sameAsPrompt = !options.AnswerConditioned;
                if (sameAsPrompt) ctx = prompt;
                else (ctx, cutContext) = FitPrefix(ctx, maxPositions);
                room = Math.Min(options.RolloutMaxTokens, Math.Min(n - prompt.Length, maxPositions - ctx.Length));
                if (room < options.RolloutMaxTokens) shortened++;
            }
            if (cutAnswer) answerCut++;
            if (cutPrompt || cutRolloutPrompt) promptCut++;
            if (cutContext) contextCut++;
            if (cutAnswer || cutPrompt || cutRolloutPrompt || cutContext) truncated++;
            encoded[i] = new EncodedExample(prompt, ids, mask, ctx, room);
        }
        return new TrainData(encoded, template.StopIds(tokenizer), tokenizer.VocabSize,
            new TruncationReport(n, truncated, answerCut, promptCut, contextCut, shortened));
    }

    /// <summary>
    /// A prompt + answer sequence fitted into <paramref name="n"/> positions: its first n tokens; when its prompt (the
    /// tokens before the first masked one) would leave no answer token within them, the prompt's start is dropped first,
    /// down to its last ⌊n/2⌋ tokens. A sequence without any answer token is only cut at its end.
    /// </summary>
    internal static (int[] Ids, bool[] Mask, bool AnswerCut, bool PromptCut) FitSequence(int[] ids, bool[] mask, int n)
    {
        if (ids.Length <= n) return (ids, mask, false, false);
        int answerStart = Array.IndexOf(mask, true);
        int drop = answerStart >= n ? answerStart - n / 2 : 0; // the first answer token at index ⌊n/2⌋ < n, predicted from the prompt's last token
        int keep = Math.Min(n, ids.Length - drop);
        return (ids[drop..(drop + keep)], mask[drop..(drop + keep)], drop + keep < ids.Length, drop > 0);
    }

    /// <summary>A prefix that must leave at least one of <paramref name="n"/> positions for what follows it: whole, or its last ⌊n/2⌋ tokens.</summary>
    internal static (int[] Ids, bool Cut) FitPrefix(int[] ids, int n) => ids.Length < n ? (ids, false) : (ids[^(n / 2)..], true);
}
