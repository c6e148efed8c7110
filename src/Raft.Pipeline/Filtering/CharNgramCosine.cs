using System.Text;

namespace Raft.Pipeline.Filtering;

/// <summary>
/// Cosine similarity of character n-gram count vectors, in [0, 1]. Both texts are lower-cased (invariant culture),
/// runs of whitespace collapsed to one space and trimmed; a text shorter than n is one n-gram (itself). Two empty
/// texts score 1, one empty text scores 0.
/// </summary>
public sealed class CharNgramCosine : ISimilarity
{
    /// <summary>The measure's base name, <c>char_ngram_cosine</c>.</summary>
    public const string BaseName = "char_ngram_cosine";

    /// <summary>Creates the measure for n-grams of <paramref name="n"/> characters (1 to 16).</summary>
    public CharNgramCosine(int n = 3)
    {
        if (n < 1 || n > 16) throw new ArgumentOutOfRangeException(nameof(n), n, $"n-gram length n must be in [1, 16], got {n}.");
        N = n;
    }

    /// <summary>The n-gram length.</summary>
    public int N { get; }

    /// <inheritdoc/>
    public string Name => N == 3 ? BaseName : $"{BaseName}:{N}";

    /// <inheritdoc/>
    public double Score(string candidate, string reference)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(reference);
        string a = Normalize(candidate), b = Normalize(reference);
        if (a.Length == 0 && b.Length == 0) return 1.0;
        if (a.Length == 0 || b.Length == 0) return 0.0;
        var ca = Count(a);
        var cb = Count(b);
        if (ca.Count > cb.Count) (ca, cb) = (cb, ca);
        double dot = 0;
        foreach (var (gram, x) in ca)
            if (cb.TryGetValue(gram, out int y)) dot += (double)x * y;
        double na = Norm(ca), nb = Norm(cb);
        return Math.Clamp(dot / (na * nb), 0.0, 1.0);
    }

    /// <summary>Lower-cases, collapses whitespace runs to one space and trims.</summary>
    internal static string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool space = false;
        foreach (char ch in text)
        {
            if (char.IsWhiteSpace(ch)) { space = true; continue; }
            if (space && sb.Length > 0) sb.Append(' ');
            space = false;
            sb.Append(char.ToLowerInvariant(ch));
        }
        return sb.ToString();
    }

    private Dictionary<string, int> Count(string s)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var lookup = counts.GetAlternateLookup<ReadOnlySpan<char>>();
        if (s.Length < N) { counts[s] = 1; return counts; }
        for (int i = 0; i + N <= s.Length; i++)
        {
            var gram = s.AsSpan(i, N);
            lookup[gram] = lookup.TryGetValue(gram, out int c) ? c + 1 : 1;
        }
        return counts;
    }

    private static double Norm(Dictionary<string, int> counts)
    {
        double sum = 0;
        foreach (int c in counts.Values) sum += (double)c * c;
        return Math.Sqrt(sum);
    }
}
