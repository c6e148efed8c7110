using System.Text.RegularExpressions;
using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Tests;

public sealed class CharNgramCosineTests
{
    /// <summary>Straightforward reference: list every n-gram, count over the union, cosine in double precision.</summary>
    private static double Reference(string a, string b, int n)
    {
        static string Norm(string s) => Regex.Replace(s.ToLowerInvariant(), @"\s+", " ").Trim();
        static List<string> Grams(string s, int n) =>
            s.Length < n ? [s] : Enumerable.Range(0, s.Length - n + 1).Select(i => s.Substring(i, n)).ToList();
        a = Norm(a); b = Norm(b);
        if (a.Length == 0 && b.Length == 0) return 1;
        if (a.Length == 0 || b.Length == 0) return 0;
        var ga = Grams(a, n); var gb = Grams(b, n);
        var keys = ga.Union(gb).ToList();
        var va = keys.Select(k => (double)ga.Count(g => g == k)).ToArray();
        var vb = keys.Select(k => (double)gb.Count(g => g == k)).ToArray();
        double dot = va.Zip(vb, (x, y) => x * y).Sum();
        return dot / Math.Sqrt(va.Sum(x => x * x)) / Math.Sqrt(vb.Sum(x => x * x));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    public void Matches_the_reference_on_random_strings(int n)
    {
        var rng = new Random();
        const string alphabet = "abcAB  \t\n.";
        string Rand() => new(Enumerable.Range(0, rng.Next(0, 40)).Select(_ => alphabet[rng.Next(alphabet.Length)]).ToArray());
        var sim = new CharNgramCosine(n);
        for (int i = 0; i < 300; i++)
        {
            string a = Rand(), b = rng.Next(4) == 0 ? a.ToUpperInvariant() : Rand();
            double got = sim.Score(a, b);
            Assert.InRange(got, 0, 1);
            Assert.Equal(Reference(a, b, n), got, 1e-12);
            Assert.Equal(got, sim.Score(b, a), 1e-12);
        }
    }

    [Theory]
    [InlineData("", "", 1.0)]
    [InlineData("  ", "\n", 1.0)]
    [InlineData("", "abc", 0.0)]
    [InlineData("abc", "", 0.0)]
    [InlineData("Hello  World", "hello world", 1.0)]
    [InlineData("abc", "xyz", 0.0)]
    [InlineData("ab", "ab", 1.0)]
    public void Edge_cases(string a, string b, double expected) => Assert.Equal(expected, new CharNgramCosine().Score(a, b), 1e-12);

    [Fact]
    public void Known_value_and_name()
    {
        // "abcd" → {abc, bcd}, "abce" → {abc, bce}: cosine 1/2
        Assert.Equal(0.5, new CharNgramCosine().Score("abcd", "abce"), 1e-12);
        Assert.Equal("char_ngram_cosine", new CharNgramCosine().Name);
        Assert.Equal("char_ngram_cosine:4", new CharNgramCosine(4).Name);
        Assert.Throws<ArgumentOutOfRangeException>(() => new CharNgramCosine(0));
    }
}
