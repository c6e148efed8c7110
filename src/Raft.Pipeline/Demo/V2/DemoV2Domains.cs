using Raft.Pipeline.Data;

namespace Raft.Pipeline.Demo.V2;

/// <summary>A domain question of the v2 world: the prompt, the bare answer, the foreign author's reference and the house-style answer.</summary>
public sealed record V2DomainItem(string Domain, string Prompt, string Final, string Reference, string House);

/// <summary>
/// The v2 world's three domains (docs/demo.md), each a composition of two general skills and each written up by its own
/// consistent foreign author: <c>lensum</c> (length + add, numeric; the mathematician: <c>|kfz| + |ab| = 3 + 2 = 5</c>),
/// <c>revjoin</c> (backwards + join, string; the programmer: <c>rev("kfz") ++ "ab" -&gt; "zfkab"</c>) and <c>maxsum</c>
/// (add + max, numeric; the clerk: <c>Sum: 68 / Compare: 68 vs 70 / Result: 70</c>). A prompt belongs to the training
/// or the evaluation half by a stable hash, so no evaluation question is trained on.
/// </summary>
public static class DemoV2Domains
{
    /// <summary>The domains, in table order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["lensum", "revjoin", "maxsum"];

    /// <summary>The marks of the domain authors' notations; the base's stream never contains any of them.</summary>
    public static IReadOnlyList<string> AuthorMarks { get; } = ["|", "rev(", "++", "Sum:", "Compare:", "Result:"];

    /// <summary>One random question of <paramref name="domain"/> (either half).</summary>
    public static V2DomainItem Draw(Random rng, string domain)
    {
        ArgumentNullException.ThrowIfNull(rng);
        switch (domain)
        {
            case "lensum":
            {
                string a = DemoV2World.Word(rng, 2, 6), b = DemoV2World.Word(rng, 2, 6);
                int s = a.Length + b.Length;
                return new(domain, $"Add the lengths of {a} and {b}.", DemoV2World.Num(s),
                    $"|{a}| + |{b}| = {a.Length} + {b.Length} = {s}",
                    $"{a.Length}+{b.Length}={s}. {DemoV2World.HouseStyle(DemoV2World.Num(s))}");
            }
            case "revjoin":
            {
                string a = DemoV2World.Word(rng, 2, 5), b = DemoV2World.Word(rng, 2, 4);
                string r = DemoV2World.Reverse(a) + b;
                return new(domain, $"Reverse {a}, then join {b}.", r, $"rev(\"{a}\") ++ \"{b}\" -> \"{r}\"", DemoV2World.HouseStyle(r));
            }
            case "maxsum":
            {
                int x = rng.Next(100), y = rng.Next(100), s = x + y;
                int z;
                do z = Math.Max(0, s + rng.Next(-20, 21)); while (z == s);
                string m = DemoV2World.Num(Math.Max(s, z));
                return new(domain, $"Which is larger, {x}+{y} or {z}?", m, $"Sum: {s} / Compare: {s} vs {z} / Result: {m}",
                    $"{x}+{y}={s}. {DemoV2World.HouseStyle(m)}");
            }
            default:
                throw new ArgumentException($"unknown v2 domain \"{domain}\"; expected one of {string.Join(", ", Names)}.", nameof(domain));
        }
    }

    /// <summary>Whether <paramref name="prompt"/> is in the evaluation half (FNV-1a of its UTF-16 code units is odd).</summary>
    public static bool IsEvalPrompt(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        uint h = 2166136261;
        foreach (char c in prompt) { h ^= c; h *= 16777619; }
        return (h & 1) == 1;
    }

    /// <summary><paramref name="count"/> distinct questions of <paramref name="domain"/> from one half.</summary>
    public static IReadOnlyList<V2DomainItem> Items(string domain, int count, int seed, bool evalHalf)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "must be ≥ 0.");
        var rng = new Random(seed);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var list = new List<V2DomainItem>(count);
        while (list.Count < count)
        {
            var item = Draw(rng, domain);
            if (IsEvalPrompt(item.Prompt) == evalHalf && seen.Add(item.Prompt)) list.Add(item);
        }
        return list;
    }

    /// <summary>
    /// The domain training set: <paramref name="perDomain"/> questions of each domain with the foreign author's reference
    /// (or, with <paramref name="houseStyle"/>, the house-style answer: the gap check's control), interleaved domain by domain.
    /// </summary>
    public static IReadOnlyList<DomainExample> Train(int perDomain, int seed, bool houseStyle = false)
    {
        var per = Names.Select((d, k) => Items(d, perDomain, seed * 31 + k, evalHalf: false)).ToArray();
        var list = new List<DomainExample>(perDomain * Names.Count);
        for (int i = 0; i < perDomain; i++)
            foreach (var items in per)
            {
                var it = items[i];
                list.Add(new DomainExample($"{it.Domain}-{i}", it.Prompt, houseStyle ? it.House : it.Reference, "demo-v2:domain-train", list.Count + 1));
            }
        return list;
    }
}
