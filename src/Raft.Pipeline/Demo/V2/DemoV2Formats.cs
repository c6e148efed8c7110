using System.Globalization;
using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Demo.V2;

/// <summary>A general question with format instructions: the prompt as sent (question, blank line, one instruction per line) and an answer that follows them.</summary>
public sealed record V2FormatItem(V2Question Question, IReadOnlyList<FormatInstruction> Instructions, string Prompt, string Answer);

/// <summary>
/// The v2 world's format-following items (docs/demo.md): a general question with compatible IFEval-like instructions
/// of all sixteen <see cref="FormatInstruction.Kinds"/>, and the house-style answer transformed to follow them. Sets
/// that a degenerate answer (<see cref="Degenerate"/>) would pass, strictly or loosely, are never drawn.
/// </summary>
public static class DemoV2Formats
{
    /// <summary>The answers no item may be passed by: empty, blank, punctuation only, empty shells, one character.</summary>
    public static IReadOnlyList<string> Degenerate { get; } = ["", " ", ".", "[]", "\"\"", "{}", "**", "<<>>", "a", "A", "1", "P.S."];

    private static readonly string[] Words = ["done", "ok", "sure", "blue", "note", "yes"];
    private static readonly string[] ForbiddenWords = ["answer", "the"];
    private static readonly string[] Wrappers = ["brackets", "quotes", "json"];
    private static readonly string[] JsonAllows = ["json", "capitals", "lowercase", "no_commas", "forbidden"];

    /// <summary>Whether the kinds can hold together (one case, one wrapper, one word bound; json and lowercase's limits).</summary>
    public static bool Compatible(IReadOnlyCollection<string> kinds)
    {
        ArgumentNullException.ThrowIfNull(kinds);
        if (kinds.Contains("capitals") && kinds.Contains("lowercase")) return false;
        if (kinds.Count(Wrappers.Contains) > 1) return false;
        if (kinds.Contains("max_words") && kinds.Contains("min_words")) return false;
        if (kinds.Contains("json") && kinds.Any(k => !JsonAllows.Contains(k))) return false;
        if (kinds.Contains("lowercase") && kinds.Contains("postscript")) return false;
        return true;
    }

    /// <summary>
    /// A format item with <paramref name="minInstructions"/>–<paramref name="maxInstructions"/> instructions on a random
    /// general question; deterministic in <paramref name="rng"/>.
    /// </summary>
    public static V2FormatItem Draw(Random rng, int minInstructions, int maxInstructions)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (minInstructions < 1 || maxInstructions < minInstructions || maxInstructions > 4)
            throw new ArgumentException($"instructions {minInstructions}–{maxInstructions}: need 1 ≤ min ≤ max ≤ 4.", nameof(minInstructions));
        while (true)
        {
            var q = DemoV2World.General(rng);
            int n = rng.Next(minInstructions, maxInstructions + 1);
            var kinds = new List<string>();
            while (kinds.Count < n)
            {
                string k = FormatInstruction.Kinds[rng.Next(FormatInstruction.Kinds.Count)];
                if (!kinds.Contains(k) && Compatible([.. kinds, k])) kinds.Add(k);
            }
            if (TryBuild(rng, q, kinds) is { } item) return item;
        }
    }

    private static V2FormatItem? TryBuild(Random rng, V2Question q, List<string> kinds)
    {
        bool Has(string k) => kinds.Contains(k);
        string word = Words[rng.Next(Words.Length)], other = Words[rng.Next(Words.Length)];
        string forbidden = ForbiddenWords[rng.Next(ForbiddenWords.Length)];
        string reasoning = q.House.EndsWith(DemoV2World.HouseStyle(q.Final), StringComparison.Ordinal)
            ? q.House[..^DemoV2World.HouseStyle(q.Final).Length].TrimEnd() : "";
        string body = Has("forbidden") ? (reasoning.Length > 0 ? reasoning + " " : "") + $"So {q.Final}." : q.House;
        if (Has("max_words")) body = q.Final;
        if (Has("json")) body = $"{{\"value\": \"{q.Final}\"}}";
        if (Has("highlight"))
        {
            int at = body.LastIndexOf(q.Final, StringComparison.Ordinal);
            body = body[..at] + "*" + q.Final + "*" + body[(at + q.Final.Length)..];
        }
        if (Has("title")) body = "<<Reply>> " + body;
        if (Has("starts_with")) body = word + " " + body;
        if (Has("contains")) body = body + " " + other;
        if (Has("postscript")) body += "\nP.S. that is all";
        if (Has("ends_with")) body = body + " " + word;
        if (Has("capitals")) body = body.ToUpperInvariant();
        if (Has("lowercase")) body = body.ToLowerInvariant();
        if (Has("brackets")) body = $"[{body}]";
        if (Has("quotes")) body = $"\"{body}\"";
        int words = FormatInstruction.CountWords(body);
        var list = new List<FormatInstruction>(kinds.Count);
        foreach (string k in kinds)
        {
            string? value = k switch
            {
                "ends_with" or "starts_with" => word,
                "contains" => other,
                "forbidden" => forbidden,
                "max_words" => Str(words + rng.Next(0, 2)),
                "min_words" => Str(Math.Max(1, words - rng.Next(0, 3))),
                "lines" => Str(FormatChecks.CountLines(body)),
                _ => null,
            };
            list.Add(new FormatInstruction(k, value));
        }
        if (!list.All(i => i.IsSatisfied(body))) return null;
        if (Degenerate.Any(d => list.All(i => i.IsSatisfied(d)) || list.All(i => i.IsSatisfiedLoose(d)))) return null;
        string prompt = new EvalItem("", q.Prompt, null, new Raft.Pipeline.Filtering.ExactExtractor(), list).FullPrompt;
        return new V2FormatItem(q, list, prompt, body);

        static string Str(int v) => v.ToString(CultureInfo.InvariantCulture);
    }
}
