using Raft.Pipeline.Eval;
using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Demo.V2;

/// <summary>
/// The v2 world's evaluation sets (docs/demo.md): the domains (held-out half, 100 per domain), the general questions
/// (40 per task type, 400) and the format items (320, 2–3 instructions each, no answer scored). Answers are scored by
/// <see cref="FinalTokenExtractor"/>; a format item is sent as its <see cref="EvalItem.FullPrompt"/> (the question, a blank line,
/// one instruction per line: what the base was tuned on).
/// </summary>
public static class DemoV2Eval
{
    /// <summary>The extractor of every v2 answer.</summary>
    public static IAnswerExtractor Extractor { get; } = new FinalTokenExtractor();

    /// <summary>The domain set: <paramref name="perDomain"/> held-out questions per domain, answers in the house style.</summary>
    public static EvalSet Domain(int perDomain = 100) => new("domain", DemoV2Domains.Names
        .SelectMany((d, k) => DemoV2Domains.Items(d, perDomain, 5001 + k, evalHalf: true))
        .Select((it, i) => new EvalItem($"{it.Domain}-{i}", it.Prompt, it.House, Extractor, [], "demo-v2:domain", i + 1)).ToArray());

    /// <summary>The general set: <paramref name="perTask"/> questions of each task type.</summary>
    public static EvalSet General(int perTask = 40)
    {
        var rng = new Random(5101);
        var items = new List<EvalItem>();
        foreach (string task in DemoV2World.Tasks)
            for (int i = 0; i < perTask; i++)
            {
                var q = DemoV2World.General(rng, task);
                items.Add(new EvalItem($"{task}-{i}", q.Prompt, q.House, Extractor, [], "demo-v2:general", items.Count + 1));
            }
        return new EvalSet("general", items);
    }

    /// <summary>The format set: <paramref name="count"/> items of 2–3 instructions.</summary>
    public static EvalSet Format(int count = 320)
    {
        var rng = new Random(5201);
        var items = new EvalItem[count];
        for (int i = 0; i < count; i++)
        {
            var f = DemoV2Formats.Draw(rng, 2, 3);
            items[i] = new EvalItem($"format-{i}", f.Question.Prompt, null, Extractor, f.Instructions, "demo-v2:format", i + 1);
        }
        return new EvalSet("format", items);
    }
}
