using System.Text.Json;
using System.Text.RegularExpressions;

namespace Raft.Pipeline.Eval;

/// <summary>
/// The checks of <see cref="FormatInstruction"/>'s structural kinds, each on a trimmed response, and IFEval's loose
/// variants. Every structural check needs a letter or digit inside the structure, so that an empty shell
/// (<c>""</c>, <c>{}</c>, <c>&lt;&lt;&gt;&gt;</c>, <c>**</c>, <c>P.S.</c>) does not pass.
/// </summary>
public static partial class FormatChecks
{
    [GeneratedRegex(@"<<[^<>\n]*[\p{L}\p{Nd}][^<>\n]*>>", RegexOptions.CultureInvariant)]
    private static partial Regex TitleRegex();

    [GeneratedRegex(@"\*[^*\n]*[\p{L}\p{Nd}][^*\n]*\*", RegexOptions.CultureInvariant)]
    private static partial Regex HighlightRegex();

    private static bool HasLetterOrDigit(string s) => s.Any(char.IsLetterOrDigit);

    /// <summary><c>quotes</c>: starts and ends with <c>"</c>, with a letter or digit between.</summary>
    public static bool Quoted(string t) => t.Length >= 3 && t[0] == '"' && t[^1] == '"' && HasLetterOrDigit(t[1..^1]);

    /// <summary><c>json</c>: the whole response (a <c>```json</c> fence allowed) parses as a JSON object with a member whose value is a non-empty string or a number.</summary>
    public static bool JsonObject(string t)
    {
        string s = t;
        if (s.StartsWith("```", StringComparison.Ordinal) && s.EndsWith("```", StringComparison.Ordinal) && s.Length >= 6)
        {
            s = s[3..^3];
            if (s.StartsWith("json", StringComparison.OrdinalIgnoreCase)) s = s[4..];
            s = s.Trim();
        }
        if (s.Length < 2 || s[0] != '{') return false;
        try
        {
            using var doc = JsonDocument.Parse(s);
            return doc.RootElement.EnumerateObject().Any(p =>
                p.Value.ValueKind == JsonValueKind.Number || (p.Value.ValueKind == JsonValueKind.String && HasLetterOrDigit(p.Value.GetString()!)));
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary><c>title</c>: holds <c>&lt;&lt;...&gt;&gt;</c> with a letter or digit inside, on one line.</summary>
    public static bool Title(string t) => TitleRegex().IsMatch(t);

    /// <summary><c>postscript</c>: a line that starts (after spaces) with <c>P.S.</c> and has a letter or digit after it.</summary>
    public static bool Postscript(string t) => t.Split('\n').Select(l => l.Trim())
        .Any(l => l.StartsWith("P.S.", StringComparison.Ordinal) && HasLetterOrDigit(l[4..]));

    /// <summary><c>highlight</c>: a <c>*...*</c> span on one line with a letter or digit inside.</summary>
    public static bool Highlight(string t) => HighlightRegex().IsMatch(t);

    /// <summary>Whether <paramref name="word"/> occurs in <paramref name="t"/> as a whole word (ignoring case).</summary>
    public static bool HasWord(string t, string word)
    {
        int from = 0;
        while (true)
        {
            int i = t.IndexOf(word, from, StringComparison.OrdinalIgnoreCase);
            if (i < 0) return false;
            int end = i + word.Length;
            bool startOk = i == 0 || !char.IsLetterOrDigit(t[i - 1]);
            bool endOk = end >= t.Length || !char.IsLetterOrDigit(t[end]);
            if (startOk && endOk) return true;
            from = i + 1;
        }
    }

    /// <summary>The number of lines holding something other than white space.</summary>
    public static int CountLines(string t) => t.Split('\n').Count(l => l.Trim().Length > 0);

    /// <summary>
    /// IFEval's loose variants of a response: as is, without its first line, without its last line, without both; each
    /// of the four also with every <c>*</c> removed (eight strings, some possibly empty).
    /// </summary>
    public static IEnumerable<string> LooseVariants(string response)
    {
        ArgumentNullException.ThrowIfNull(response);
        var lines = response.Split('\n');
        string Join(int skipFirst, int skipLast) =>
            lines.Length - skipFirst - skipLast <= 0 ? "" : string.Join("\n", lines[skipFirst..(lines.Length - skipLast)]);
        string[] basic = [response, Join(1, 0), Join(0, 1), Join(1, 1)];
        foreach (string b in basic) yield return b;
        foreach (string b in basic) yield return b.Replace("*", "", StringComparison.Ordinal);
    }
}
