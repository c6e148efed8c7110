using System.Text;
using System.Text.RegularExpressions;

namespace Raft.Pipeline.Filtering;

/// <summary>
/// The last integer or decimal number of the text, normalised: thousands separators removed (<c>1,234</c> →
/// <c>1234</c>), a leading <c>+</c> dropped, leading zeros of the integer part dropped, trailing zeros after the
/// decimal point (and a bare point) dropped, <c>.5</c> → <c>0.5</c>, <c>-0</c> → <c>0</c>. A minus sign counts
/// only when it does not follow a letter or digit (so <c>3-5</c> ends with <c>5</c>, <c>x = -5</c> with <c>-5</c>).
/// </summary>
public sealed partial class LastNumberExtractor : IAnswerExtractor
{
    /// <summary>The spec name, <c>last_number</c>.</summary>
    public const string SpecName = "last_number";

    /// <inheritdoc/>
    public string Name => SpecName;

    [GeneratedRegex(@"(?:(?<![\w.])(?<sign>[-+]))?(?<![\d.])(?<num>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex NumberRegex();

    /// <inheritdoc/>
    public string? Extract(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        Match? last = null;
        for (var m = NumberRegex().Match(text); m.Success; m = m.NextMatch()) last = m;
        return last == null ? null : Normalize(last.Groups["sign"].Value, last.Groups["num"].Value);
    }

    /// <summary>Normalises a number written as <paramref name="sign"/> ("", "+" or "-") and digits <paramref name="number"/>.</summary>
    internal static string Normalize(string sign, string number)
    {
        string s = number.Replace(",", "", StringComparison.Ordinal);
        int dot = s.IndexOf('.', StringComparison.Ordinal);
        string intPart = dot < 0 ? s : s[..dot];
        string frac = dot < 0 ? "" : s[(dot + 1)..].TrimEnd('0');
        intPart = intPart.TrimStart('0');
        if (intPart.Length == 0) intPart = "0";
        var sb = new StringBuilder();
        bool zero = intPart == "0" && frac.Length == 0;
        if (sign == "-" && !zero) sb.Append('-');
        sb.Append(intPart);
        if (frac.Length > 0) sb.Append('.').Append(frac);
        return sb.ToString();
    }
}
