using Raft.Model;
using Raft.Model.Tokenization;

namespace Raft.Pipeline.Eval;

/// <summary>Runs a model over evaluation sets (greedy decoding, the model's chat template) and scores it with <see cref="EvalScorer"/>.</summary>
public static class ModelEvaluator
{
    /// <summary>The greedy responses of <paramref name="model"/> to <paramref name="prompts"/> (decoded, special tokens dropped, trimmed).</summary>
    public static IReadOnlyList<string> Respond(LlamaModel model, ITokenizer tokenizer, ChatTemplate template,
        IReadOnlyList<string> prompts, int maxNewTokens = 48, int maxBatch = 64)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0) return [];
        var ids = new int[prompts.Count][];
        int room = model.Config.MaxPositionEmbeddings;
        for (int i = 0; i < prompts.Count; i++)
        {
            ids[i] = template.Encode(tokenizer, [ChatMessage.User(prompts[i])], addGenerationPrompt: true).Ids;
            if (ids[i].Length >= room)
                throw new ArgumentException($"prompts[{i}] takes {ids[i].Length} tokens; the model's max_position_embeddings is {room}.", nameof(prompts));
        }
        int maxNew = Math.Max(1, Math.Min(maxNewTokens, room - ids.Max(p => p.Length)));
        var options = new SamplingOptions { Temperature = 0f, MaxNewTokens = maxNew, StopTokenIds = template.StopIds(tokenizer), VocabLimit = tokenizer.VocabSize };
        var gens = Generator.Generate(model, ids, options, 0, maxBatch);
        return gens.Select(g => tokenizer.Decode(g.Tokens, skipSpecial: true).Trim()).ToArray();
    }

    /// <summary>
    /// Scores <paramref name="model"/> on <paramref name="set"/>. The prompt sent is <paramref name="render"/>(item), by default
    /// <see cref="EvalItem.FullPrompt"/> (the prompt followed by its instructions).
    /// </summary>
    public static EvalSetResult Evaluate(LlamaModel model, ITokenizer tokenizer, ChatTemplate template, EvalSet set,
        int maxNewTokens = 48, Func<EvalItem, string>? render = null)
    {
        ArgumentNullException.ThrowIfNull(set);
        render ??= i => i.FullPrompt;
        var prompts = set.Items.Select(render).ToArray();
        var responses = Respond(model, tokenizer, template, prompts, maxNewTokens);
        var scored = EvalScorer.Score(set, responses);
        return scored with { Items = [.. scored.Items.Select((r, i) => r with { Prompt = prompts[i] })] };
    }
}
