using Raft.Model.Tokenization;
using Raft.Pipeline.Data;

namespace Raft.Pipeline.Eval;

/// <summary>
/// Checks, before any decoding, that every prompt of an evaluation set fits the model's context, so that an over-long
/// prompt is reported by its file and line rather than by its index after the model was loaded and other sets ran.
/// </summary>
public static class PromptFit
{
    /// <summary>
    /// Throws a <see cref="DataFormatException"/> naming the file and line of the first item of <paramref name="set"/> whose
    /// prompt (<paramref name="render"/>(item), by default <see cref="EvalItem.FullPrompt"/>), encoded with
    /// <paramref name="template"/> and a generation prompt, leaves no room for an answer in
    /// <paramref name="maxPositionEmbeddings"/> positions.
    /// </summary>
    public static void Check(ITokenizer tokenizer, ChatTemplate template, int maxPositionEmbeddings, EvalSet set, Func<EvalItem, string>? render = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(set);
        render ??= i => i.FullPrompt;
        foreach (var item in set.Items)
        {
            int n = template.Encode(tokenizer, [ChatMessage.User(render(item))], addGenerationPrompt: true).Ids.Length;
            if (n >= maxPositionEmbeddings)
                throw new DataFormatException(item.Source.Length > 0 ? item.Source : set.Name, item.Line,
                    $"the prompt takes {n} tokens with the chat template; the model's max_position_embeddings is {maxPositionEmbeddings}, which leaves no room for an answer");
        }
    }
}
