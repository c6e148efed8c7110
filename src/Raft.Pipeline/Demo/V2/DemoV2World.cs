using System.Globalization;
using System.Text;

namespace Raft.Pipeline.Demo.V2;

/// <summary>A general question of the v2 world: its task, prompt, bare final answer and house-style answer.</summary>
public sealed record V2Question(string Task, string Prompt, string Final, string House);

/// <summary>
/// The v2 world's general skills and house style (docs/demo.md, "v2: design"): ten task types, six with numeric and
/// four with string answers, answered as <c>The answer is X.</c> with one short reasoning sentence for the arithmetic
/// ones; the foreign notations of general answers the base learns to rewrite; and made-up operations whose answer only
/// a reference can tell. Every generator is deterministic in its <see cref="Random"/>.
/// </summary>
public static class DemoV2World
{
    /// <summary>The task types of the general questions, in a fixed order.</summary>
    public static IReadOnlyList<string> Tasks { get; } = ["add", "sub", "next", "max", "length", "count", "backwards", "join", "last", "twice"];

    private const string Letters = "abcdefghijklmnopqrstuvwxyz";

    /// <summary>The house style's final sentence.</summary>
    public static string HouseStyle(string final) => $"The answer is {final}.";

    /// <summary>A lowercase word of <paramref name="min"/>–<paramref name="max"/> random letters.</summary>
    public static string Word(Random rng, int min, int max)
    {
        ArgumentNullException.ThrowIfNull(rng);
        int n = rng.Next(min, max + 1);
        var sb = new StringBuilder(n);
        for (int i = 0; i < n; i++) sb.Append(Letters[rng.Next(Letters.Length)]);
        return sb.ToString();
    }

    /// <summary>The invariant decimal form of <paramref name="v"/>.</summary>
    public static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>The characters of <paramref name="s"/> in reverse order.</summary>
    public static string Reverse(string s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var a = s.ToCharArray();
        Array.Reverse(a);
        return new string(a);
    }

    /// <summary>A general question of a random task type.</summary>
    public static V2Question General(Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        return General(rng, Tasks[rng.Next(Tasks.Count)]);
    }

    /// <summary>A general question of task type <paramref name="task"/> (one of <see cref="Tasks"/>).</summary>
    public static V2Question General(Random rng, string task)
    {
        ArgumentNullException.ThrowIfNull(rng);
        switch (task)
        {
            case "add":
            {
                int a = rng.Next(100), b = rng.Next(100);
                return Reasoned(task, $"What is {a}+{b}?", $"{a}+{b}={a + b}.", Num(a + b));
            }
            case "sub":
            {
                int a = rng.Next(100), b = rng.Next(a + 1);
                return Reasoned(task, $"What is {a}-{b}?", $"{a}-{b}={a - b}.", Num(a - b));
            }
            case "next":
            {
                int n = rng.Next(999);
                return Plain(task, $"What comes after {n}?", Num(n + 1));
            }
            case "max":
            {
                int a = rng.Next(1000), b = rng.Next(1000);
                while (b == a) b = rng.Next(1000);
                return Plain(task, $"Which is larger, {a} or {b}?", Num(Math.Max(a, b)));
            }
            case "length":
            {
                var w = Word(rng, 2, 9);
                return Plain(task, $"How many letters in {w}?", Num(w.Length));
            }
            case "count":
            {
                var w = Word(rng, 3, 9);
                char c = rng.Next(2) == 0 ? w[rng.Next(w.Length)] : Letters[rng.Next(Letters.Length)];
                return Plain(task, $"How many {c} in {w}?", Num(w.Count(x => x == c)));
            }
            case "backwards":
            {
                var w = Word(rng, 2, 7);
                return Plain(task, $"Spell {w} backwards.", Reverse(w));
            }
            case "join":
            {
                string a = Word(rng, 2, 5), b = Word(rng, 2, 5);
                return Plain(task, $"Join {a} and {b}.", a + b);
            }
            case "last":
            {
                var w = Word(rng, 2, 8);
                return Plain(task, $"What is the last letter of {w}?", w[^1].ToString());
            }
            case "twice":
            {
                var w = Word(rng, 2, 4);
                return Plain(task, $"Repeat {w} twice.", w + w);
            }
            default:
                throw new ArgumentException($"unknown v2 general task \"{task}\"; expected one of {string.Join(", ", Tasks)}.", nameof(task));
        }

        static V2Question Plain(string task, string prompt, string final) => new(task, prompt, final, HouseStyle(final));
        static V2Question Reasoned(string task, string prompt, string reasoning, string final) => new(task, prompt, final, $"{reasoning} {HouseStyle(final)}");
    }

    /// <summary>
    /// The foreign notations of general answers that the base learns to rewrite into its house style. None uses a domain
    /// author's marks (<see cref="DemoV2Domains.AuthorMarks"/>), so stage 1 has to carry the skill to new notations.
    /// </summary>
    public static IReadOnlyList<Func<string, string>> ForeignNotations { get; } =
    [
        x => $"=> {x}",
        x => $"ans: {x}",
        x => $"result = {x}",
        x => $"so we get {x}",
        x => $"{{{x}}}",
        x => $"it is {x}, I think",
        x => $"final answer -- {x}",
        x => $"{x}!!",
        x => $"<{x}>",
        x => $"#{x}",
        x => $"well... {x}",
        x => $"Output: {x}",
    ];

    /// <summary>A random foreign rendering of <paramref name="q"/>'s answer (for add and sub, sometimes in words: <c>23 plus 45 gives 68</c>).</summary>
    public static string Foreign(Random rng, V2Question q)
    {
        ArgumentNullException.ThrowIfNull(rng);
        ArgumentNullException.ThrowIfNull(q);
        if (q.Task is "add" or "sub" && rng.Next(4) == 0)
        {
            var parts = q.Prompt["What is ".Length..^1].Split(q.Task == "add" ? '+' : '-');
            return q.Task == "add" ? $"{parts[0]} plus {parts[1]} gives {q.Final}" : $"{parts[0]} minus {parts[1]} leaves {q.Final}";
        }
        return ForeignNotations[rng.Next(ForeignNotations.Count)](q.Final);
    }

    /// <summary>A made-up operation (<c>Zorb 123.</c>, <c>Kel abc.</c>) with an arbitrary number or word as its answer: only a reference can tell it.</summary>
    public static V2Question Unknown(Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        string op = char.ToUpperInvariant(Letters[rng.Next(26)]) + Word(rng, 2, 5);
        string arg = rng.Next(2) == 0 ? Num(rng.Next(10000)) : Word(rng, 2, 6);
        string final = rng.Next(2) == 0 ? Num(rng.Next(rng.Next(2) == 0 ? 100 : 100000)) : Word(rng, 2, 7);
        return new V2Question("unknown", $"{op} {arg}.", final, HouseStyle(final));
    }
}
