using System.Globalization;
using System.Text;
using Raft.Pipeline.Data;

namespace Raft.Pipeline.Demo;

/// <summary>A format instruction of the demo world: the text appended to a prompt, and the eval kind/value that checks it.</summary>
public sealed record DemoFormat(string Kind, string? Value, string Text);

/// <summary>A prompt with its answer in the base model's house style, the bare final answer, and the format instruction (if any).</summary>
public sealed record DemoItem(string Task, string Prompt, string Answer, string Final, DemoFormat? Format = null);

/// <summary>
/// The built-in benchmark world: small enough for a CPU, built so that both of RAFT's gaps appear.
/// <list type="bullet">
/// <item><b>House style</b>: the base model answers every question as <c>The answer is X.</c>, and obeys five format
/// instructions (capitals, lowercase, brackets, end with a word, one word).</item>
/// <item><b>General skills</b> (numeric answers, so that <c>last_number</c> extracts them whatever the style): addition,
/// word length, letter counting, successor, maximum; a string skill, spelling a word backwards; and the two skills an
/// instruction-tuned model brings to RAFT: rewriting a reference answer in its own style (the template of
/// <see cref="PromptTemplates.Rewrite"/>) and answering with a reference placed in its context
/// (<see cref="PromptTemplates.AnswerConditioned"/>). Both are taught on general questions and on made-up operations
/// whose answer can only come from the reference.</item>
/// <item><b>The domain</b>: <c>Flip N.</c>, the digits of N in reverse order, which the base never saw; its reference
/// answers come from another author with a foreign, inconsistent style (<see cref="ForeignStyle"/>: the answer among 0–3
/// filler words on each side, e.g. <c>well ans 4321 ~ yes</c>): the supervision-compatibility gap.</item>
/// </list>
/// Every generator is deterministic in its seed.
/// </summary>
public static class DemoWorld
{
    /// <summary>The house style of the base model.</summary>
    public static string HouseStyle(string final) => $"The answer is {final}.";

    /// <summary>The format instructions of the world.</summary>
    public static IReadOnlyList<DemoFormat> Formats { get; } =
    [
        new("capitals", null, "Reply in capitals."),
        new("lowercase", null, "Reply in lowercase."),
        new("brackets", null, "Put it in brackets."),
        new("ends_with", "done", "End with the word done."),
        new("max_words", "1", "Answer in one word."),
    ];

    private static readonly string[] FillerWords =
        ["well", "so", "hmm", "ok", "yes", "result", "ans", "got", "here", "it's", "=>", "::", "!!", "~", "--", "is", "we", "get", "final", "value"];

    private const string Letters = "abcdefghijklmnopqrstuvwxyz";

    /// <summary>Applies a format instruction to a house-style answer.</summary>
    public static string ApplyFormat(string houseAnswer, string final, DemoFormat? format) => format?.Kind switch
    {
        null => houseAnswer,
        "capitals" => houseAnswer.ToUpperInvariant(),
        "lowercase" => houseAnswer.ToLowerInvariant(),
        "brackets" => $"[{houseAnswer}]",
        "ends_with" => $"{houseAnswer} {format.Value}",
        "max_words" => final,
        _ => throw new ArgumentException($"unknown demo format kind \"{format.Kind}\".", nameof(format)),
    };

    private static string Word(Random rng, int min, int max)
    {
        int n = rng.Next(min, max + 1);
        var sb = new StringBuilder(n);
        for (int i = 0; i < n; i++) sb.Append(Letters[rng.Next(Letters.Length)]);
        return sb.ToString();
    }

    private static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>One general question with a numeric answer: (task, prompt, final answer).</summary>
    public static (string Task, string Prompt, string Final) GeneralQuestion(Random rng)
    {
        switch (rng.Next(5))
        {
            case 0:
            {
                int a = rng.Next(100), b = rng.Next(100);
                return ("add", $"What is {a}+{b}?", Num(a + b));
            }
            case 1:
            {
                var w = Word(rng, 2, 9);
                return ("length", $"How many letters in {w}?", Num(w.Length));
            }
            case 2:
            {
                var w = Word(rng, 3, 9);
                char c = rng.Next(2) == 0 ? w[rng.Next(w.Length)] : Letters[rng.Next(Letters.Length)];
                return ("count", $"How many {c} in {w}?", Num(w.Count(x => x == c)));
            }
            case 3:
            {
                int n = rng.Next(999);
                return ("next", $"What comes after {n}?", Num(n + 1));
            }
            default:
            {
                int a = rng.Next(1000), b = rng.Next(1000);
                while (b == a) b = rng.Next(1000);
                return ("max", $"Which is larger, {a} or {b}?", Num(Math.Max(a, b)));
            }
        }
    }

    /// <summary>
    /// A made-up operation whose answer is arbitrary: only a reference in context can tell it. A third of them take a
    /// number and answer with a random shuffle of its digits (never its reversal, which is the domain task), so that
    /// copying must follow the reference, not the digits of the prompt.
    /// </summary>
    private static (string Prompt, string Final) UnknownQuestion(Random rng)
    {
        string op = char.ToUpperInvariant(Letters[rng.Next(26)]) + Word(rng, 2, 5);
        switch (rng.Next(3))
        {
            case 0:
                return ShuffledDigitsQuestion(rng, op);
            case 1:
                return ($"{op} {Num(rng.Next(10000))}.", Num(rng.Next(rng.Next(2) == 0 ? 100 : 100000)));
            default:
                return ($"{op} {Word(rng, 2, 6)}.", Num(rng.Next(rng.Next(2) == 0 ? 100 : 100000)));
        }
    }

    /// <summary>A made-up operation on a number whose answer is a random shuffle of its digits (never the reversal).</summary>
    private static (string Prompt, string Final) ShuffledDigitsQuestion(Random rng, string op)
    {
        string digits = Num(rng.Next(100, 100000));
        string shuffled;
        do
        {
            var a = digits.ToCharArray();
            rng.Shuffle(a);
            shuffled = new string(a);
        } while (digits.Length > 2 && shuffled == Reverse(digits) && digits != Reverse(digits));
        return ($"{op} {digits}.", shuffled.TrimStart('0') is { Length: > 0 } t ? t : "0");
    }

    /// <summary>A random foreign rendering of <paramref name="final"/>: filler words around it, never another number.</summary>
    public static string ForeignStyle(Random rng, string final)
    {
        var sb = new StringBuilder();
        int before = rng.Next(0, 4), after = rng.Next(0, 4);
        for (int i = 0; i < before; i++) sb.Append(FillerWords[rng.Next(FillerWords.Length)]).Append(' ');
        sb.Append(final);
        for (int i = 0; i < after; i++) sb.Append(' ').Append(FillerWords[rng.Next(FillerWords.Length)]);
        return sb.ToString();
    }

    private static string Reverse(string s)
    {
        var a = s.ToCharArray();
        Array.Reverse(a);
        return new string(a);
    }

    /// <summary>The domain question for <paramref name="digits"/>.</summary>
    public static DemoItem DomainItem(string digits)
    {
        string final = Reverse(digits);
        return new DemoItem("flip", $"Flip {digits}.", HouseStyle(final), final);
    }

    private static string DomainDigits(Random rng)
    {
        int n = rng.Next(3, 5);
        var sb = new StringBuilder(n);
        for (int i = 0; i < n; i++) sb.Append((char)('1' + rng.Next(9)));
        return sb.ToString();
    }

    /// <summary>
    /// The base model's instruction-tuning stream: general questions (35 %, a third with a format instruction),
    /// spelling backwards (10 %), rewriting a foreign reference (25 %) and answering with a reference in context (30 %).
    /// Domain prompts (<c>Flip</c>) never appear.
    /// </summary>
    public static DemoItem PretrainItem(Random rng) => PretrainItem(rng, copyPhase: false);

    /// <summary>
    /// An item of the base model's stream; in the <paramref name="copyPhase"/> (the second, shorter phase of the recipe) half
    /// the items are rewriting or reference questions whose answer is a shuffle of the prompt's digits, the hardest case
    /// for copying from the reference, and the rest is the first phase's stream.
    /// </summary>
    public static DemoItem PretrainItem(Random rng, bool copyPhase)
    {
        if (copyPhase && rng.Next(2) == 0)
        {
            var (sq, sf) = ShuffledDigitsQuestion(rng, char.ToUpperInvariant(Letters[rng.Next(26)]) + Word(rng, 2, 5));
            string sr = rng.Next(4) == 0 ? HouseStyle(sf) : ForeignStyle(rng, sf);
            return rng.Next(2) == 0
                ? new DemoItem("rewrite", PromptTemplates.Rewrite(sq, sr), HouseStyle(sf), sf)
                : new DemoItem("reference", PromptTemplates.AnswerConditioned(sq, sr), HouseStyle(sf), sf);
        }
        double u = rng.NextDouble();
        if (u < 0.35)
        {
            var (task, prompt, final) = GeneralQuestion(rng);
            DemoFormat? format = rng.Next(3) == 0 ? Formats[rng.Next(Formats.Count)] : null;
            string house = HouseStyle(final);
            return format is null
                ? new DemoItem(task, prompt, house, final)
                : new DemoItem(task, $"{prompt} {format.Text}", ApplyFormat(house, final, format), final, format);
        }
        if (u < 0.45)
        {
            var w = Word(rng, 2, 7);
            return new DemoItem("backwards", $"Spell {w} backwards.", HouseStyle(Reverse(w)), Reverse(w));
        }
        (string q, string f) = rng.Next(2) == 0 ? UnknownQuestion(rng) : Drop(GeneralQuestion(rng));
        string reference = rng.Next(4) == 0 ? HouseStyle(f) : ForeignStyle(rng, f);
        return u < 0.70
            ? new DemoItem("rewrite", PromptTemplates.Rewrite(q, reference), HouseStyle(f), f)
            : new DemoItem("reference", PromptTemplates.AnswerConditioned(q, reference), HouseStyle(f), f);

        static (string, string) Drop((string Task, string Prompt, string Final) g) => (g.Prompt, g.Final);
    }

    /// <summary>
    /// The domain training set: <paramref name="count"/> distinct <c>Flip</c> questions, each reference in a random foreign
    /// rendering (<see cref="ForeignStyle"/>).
    /// Numbers are drawn so that none of them is in <see cref="DomainEval"/> (whose numbers use a different parity of digit sum).
    /// </summary>
    public static IReadOnlyList<DomainExample> DomainTrain(int count, int seed)
    {
        var rng = new Random(seed);
        var seen = new HashSet<string>();
        var list = new List<DomainExample>(count);
        while (list.Count < count)
        {
            string d = DomainDigits(rng);
            if (DigitSum(d) % 2 != 0 || !seen.Add(d)) continue;
            var item = DomainItem(d);
            string reference = ForeignStyle(rng, item.Final);
            list.Add(new DomainExample($"flip-{list.Count}", item.Prompt, reference, "demo:domain-train", list.Count + 1));
        }
        return list;
    }

    /// <summary>Held-out domain questions (digit sum odd, so disjoint from <see cref="DomainTrain"/>).</summary>
    public static IReadOnlyList<DemoItem> DomainEval(int count, int seed)
    {
        var rng = new Random(seed);
        var seen = new HashSet<string>();
        var list = new List<DemoItem>(count);
        while (list.Count < count)
        {
            string d = DomainDigits(rng);
            if (DigitSum(d) % 2 != 1 || !seen.Add(d)) continue;
            list.Add(DomainItem(d));
        }
        return list;
    }

    /// <summary>General questions without format instructions (accuracy).</summary>
    public static IReadOnlyList<DemoItem> GeneralEval(int count, int seed)
    {
        var rng = new Random(seed);
        var list = new List<DemoItem>(count);
        for (int i = 0; i < count; i++)
        {
            var (task, prompt, final) = GeneralQuestion(rng);
            list.Add(new DemoItem(task, prompt, HouseStyle(final), final));
        }
        return list;
    }

    /// <summary>General questions each with a format instruction, the formats in turn (format compliance).</summary>
    public static IReadOnlyList<DemoItem> FormatEval(int count, int seed)
    {
        var rng = new Random(seed);
        var list = new List<DemoItem>(count);
        for (int i = 0; i < count; i++)
        {
            var (task, prompt, final) = GeneralQuestion(rng);
            var format = Formats[i % Formats.Count];
            list.Add(new DemoItem(task, $"{prompt} {format.Text}", ApplyFormat(HouseStyle(final), final, format), final, format));
        }
        return list;
    }

    private static int DigitSum(string d)
    {
        int s = 0;
        foreach (char c in d) s += c - '0';
        return s;
    }
}
