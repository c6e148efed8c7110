using Raft.Model.Tokenization;

namespace Raft.Pipeline.Training;

/// <summary>
/// One training example as token ids: the prompt with the generation prompt (what rollouts continue), the whole
/// conversation with its assistant mask (what the SFT term is trained on), and the teacher's context (the prompt with
/// the fused answer in it for RAFT, the prompt alone for the no-answer-conditioning ablation).
/// </summary>
internal sealed record EncodedExample(int[] Prompt, int[] Full, bool[] Mask, int[] TeacherContext);

/// <summary>The training data encoded once by the student's chat template, with the stop ids its rollouts end at.</summary>
internal sealed class TrainData
{
    private TrainData(EncodedExample[] examples, int[] stopIds, int vocabLimit) { Examples = examples; StopIds = stopIds; VocabLimit = vocabLimit; }

    /// <summary>The encoded examples, in the order given.</summary>
    public EncodedExample[] Examples { get; }

    /// <summary>The template's stop token ids (rollouts end at one).</summary>
    public int[] StopIds { get; }

    /// <summary>The tokenizer's size: rollouts never sample the embedding's padding rows beyond it.</summary>
    public int VocabLimit { get; }

    /// <summary>Number of examples.</summary>
    public int Count => Examples.Length;

    /// <summary>
    /// Encodes every example; one that does not fit <paramref name="maxPositions"/> with its answer or (RAFT) its
    /// rollout is an <see cref="ArgumentException"/> naming it.
    /// </summary>
    public static TrainData Encode(IReadOnlyList<TrainExample> data, ITokenizer tokenizer, ChatTemplate template, TrainOptions options, int maxPositions)
    {
        var encoded = new EncodedExample[data.Count];
        for (int i = 0; i < data.Count; i++)
        {
            var e = data[i] ?? throw new ArgumentException($"data[{i}] is null.", nameof(data));
            var prompt = template.Encode(tokenizer, [ChatMessage.User(e.Prompt)], addGenerationPrompt: true).Ids;
            var full = template.Encode(tokenizer, [ChatMessage.User(e.Prompt), ChatMessage.Assistant(e.Answer)]);
            var ctx = options.AnswerConditioned
                ? template.Encode(tokenizer, [ChatMessage.User(PromptTemplates.AnswerConditioned(e.Prompt, e.Answer))], addGenerationPrompt: true).Ids
                : prompt;
            int longest = Math.Max(full.Ids.Length, options.Method == TrainMethod.Raft ? Math.Max(prompt.Length, ctx.Length) + options.RolloutMaxTokens : 0);
            if (longest > maxPositions)
                throw new ArgumentException($"data[{i}] (prompt \"{Clip(e.Prompt)}\") needs {longest} positions with its answer or rollout; the model's max_position_embeddings is {maxPositions}.", nameof(data));
            encoded[i] = new EncodedExample(prompt, full.Ids, full.AssistantMask, ctx);
        }
        return new TrainData(encoded, template.StopIds(tokenizer), tokenizer.VocabSize);
    }

    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "…";
}
