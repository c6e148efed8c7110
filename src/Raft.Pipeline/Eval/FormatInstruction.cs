using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Raft.Pipeline.Eval;

/// <summary>
/// A verifiable format instruction in the spirit of IFEval, written in JSON as <c>{"kind": "...", "value": ...}</c>.
/// Kinds: <c>brackets</c> (the trimmed response starts with '[' and ends with ']'), <c>capitals</c> (no lowercase
/// letter and at least one letter), <c>lowercase</c> (no uppercase letter), <c>ends_with</c> (the trimmed response,
/// trailing punctuation ignored, ends with the word or phrase Value, ignoring case), <c>starts_with</c> (the trimmed
/// response, leading punctuation ignored, starts with Value, ignoring case), <c>max_words</c> / <c>min_words</c> (at
/// most / at least Value = N words; a word is a whitespace-separated token with a letter or digit), <c>no_commas</c>
/// (no ','), <c>contains</c> (holds the keyword Value, ignoring case); and, with checks in <see cref="FormatChecks"/>:
/// <c>quotes</c>, <c>json</c>, <c>title</c>, <c>postscript</c>, <c>highlight</c>, <c>forbidden</c> (Value: a word that
/// must not appear as a word, in a response with some letter or digit) and <c>lines</c> (Value: exactly N non-empty lines). Kinds without a value must have none.
/// <see cref="IsSatisfied"/> is IFEval's strict check, <see cref="IsSatisfiedLoose"/> its loose one.
/// </summary>
public sealed record FormatInstruction
{
    /// <summary>The kinds understood.</summary>
    public static IReadOnlyList<string> Kinds { get; } =
        ["brackets", "capitals", "lowercase", "ends_with", "starts_with", "max_words", "min_words", "no_commas", "contains",
         "quotes", "json", "title", "postscript", "highlight", "forbidden", "lines"];

    private readonly int _count;

    /// <summary>
    /// Creates an instruction. An unknown kind, a missing or invalid value (e.g. <c>max_words</c> without a positive
    /// integer), or a value for a kind that takes none throws an <see cref="ArgumentException"/> naming kind and value.
    /// </summary>
    public FormatInstruction(string Kind, string? Value = null)
    {
        ArgumentNullException.ThrowIfNull(Kind);
        string kind = Kind.Trim().ToLowerInvariant();
        string shown = Value == null ? "null" : $"\"{Value}\"";
        switch (kind)
        {
            case "brackets" or "capitals" or "lowercase" or "no_commas" or "quotes" or "json" or "title" or "postscript" or "highlight":
                if (Value != null)
                    throw new ArgumentException($"format instruction kind \"{kind}\" takes no value, got value {shown}.", nameof(Value));
                break;
            case "ends_with" or "starts_with" or "contains" or "forbidden":
                if (string.IsNullOrWhiteSpace(Value))
                    throw new ArgumentException($"format instruction kind \"{kind}\" needs a non-empty text value, got value {shown}.", nameof(Value));
                Value = Value.Trim();
                break;
            case "max_words" or "min_words" or "lines":
                if (!int.TryParse(Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _count) || _count < 1)
                    throw new ArgumentException($"format instruction kind \"{kind}\" needs a positive integer value, got value {shown}.", nameof(Value));
                Value = _count.ToString(CultureInfo.InvariantCulture);
                break;
            default:
                throw new ArgumentException($"unknown format instruction kind \"{Kind}\" (value {shown}); expected one of {string.Join(", ", Kinds)}.", nameof(Kind));
        }
        this.Kind = kind;
        this.Value = Value;
    }

    /// <summary>The kind (lower case).</summary>
    public string Kind { get; }

    /// <summary>The value (a text, or a count for <c>max_words</c>/<c>min_words</c>/<c>lines</c>); null for kinds without one.</summary>
    public string? Value { get; }

    /// <summary>Deconstructs into kind and value.</summary>
    public void Deconstruct(out string kind, out string? value) { kind = Kind; value = Value; }

    /// <summary>Whether <paramref name="response"/> follows the instruction (IFEval's strict check).</summary>
    public bool IsSatisfied(string response)
    {
        ArgumentNullException.ThrowIfNull(response);
        string t = response.Trim();
        return Kind switch
        {
            "brackets" => t.Length >= 2 && t[0] == '[' && t[^1] == ']',
            "capitals" => !t.Any(char.IsLower) && t.Any(char.IsLetter),
            "lowercase" => !t.Any(char.IsUpper),
            "ends_with" => EndsWithWord(t, Value!),
            "starts_with" => StartsWithWord(t, Value!),
            "max_words" => CountWords(t) <= _count,
            "min_words" => CountWords(t) >= _count,
            "no_commas" => !t.Contains(','),
            "contains" => t.Contains(Value!, StringComparison.OrdinalIgnoreCase),
            "quotes" => FormatChecks.Quoted(t),
            "json" => FormatChecks.JsonObject(t),
            "title" => FormatChecks.Title(t),
            "postscript" => FormatChecks.Postscript(t),
            "highlight" => FormatChecks.Highlight(t),
            "forbidden" => t.Any(char.IsLetterOrDigit) && !FormatChecks.HasWord(t, Value!),
            "lines" => FormatChecks.CountLines(t) == _count,
            _ => throw new InvalidOperationException($"unknown kind \"{Kind}\""),
        };
    }

    /// <summary>
    /// IFEval's loose check: some non-empty variant of <paramref name="response"/> follows the instruction — the response
    /// as is, without its first line, without its last line, without both, each also with every <c>*</c> removed.
    /// </summary>
    public bool IsSatisfiedLoose(string response)
    {
        ArgumentNullException.ThrowIfNull(response);
        foreach (string v in FormatChecks.LooseVariants(response))
            if (v.Trim().Length > 0 && IsSatisfied(v)) return true;
        return false;
    }

    /// <summary>A short English instruction, suitable for appending to a prompt.</summary>
    public string Describe() => Kind switch
    {
        "brackets" => "Wrap your entire response in square brackets.",
        "capitals" => "Write your entire response in capital letters.",
        "lowercase" => "Write your entire response in lowercase letters, with no capital letters.",
        "ends_with" => $"End your response with the word \"{Value}\".",
        "starts_with" => $"Start your response with \"{Value}\".",
        "max_words" => $"Answer in at most {Value} words.",
        "min_words" => $"Answer in at least {Value} words.",
        "no_commas" => "Do not use any commas in your response.",
        "contains" => $"Include the keyword \"{Value}\" in your response.",
        "quotes" => "Wrap your entire response in double quotation marks.",
        "json" => "Answer as a JSON object.",
        "title" => "Include a title wrapped in double angular brackets, like <<title>>.",
        "postscript" => "End with a postscript starting with P.S.",
        "highlight" => "Highlight a part of your answer with asterisks, like *this*.",
        "forbidden" => $"Do not use the word \"{Value}\".",
        "lines" => _count == 1 ? "Answer in exactly 1 line." : $"Answer in exactly {Value} lines.",
        _ => throw new InvalidOperationException($"unknown kind \"{Kind}\""),
    };

    /// <summary>The JSON form <c>{"kind": ..., "value": ...}</c> (value a number for word counts, absent when null).</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject { ["kind"] = Kind };
        if (Value != null)
            o["value"] = Kind is "max_words" or "min_words" or "lines" ? JsonValue.Create(_count) : JsonValue.Create(Value);
        return o;
    }

    /// <summary>
    /// Reads <c>{"kind": ..., "value": ...}</c>; value may be a string or a number. Bad input throws an
    /// <see cref="ArgumentException"/> naming the field and value.
    /// </summary>
    public static FormatInstruction FromJson(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"format instruction must be a JSON object, got {element.GetRawText()}.", nameof(element));
        if (!element.TryGetProperty("kind", out var k) || k.ValueKind != JsonValueKind.String)
            throw new ArgumentException($"format instruction field \"kind\" must be a string, got {(k.ValueKind == JsonValueKind.Undefined ? "nothing" : k.GetRawText())}.", nameof(element));
        string? value = null;
        if (element.TryGetProperty("value", out var v))
        {
            value = v.ValueKind switch
            {
                JsonValueKind.Null => null,
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Number => v.GetRawText(),
                _ => throw new ArgumentException($"format instruction \"{k.GetString()}\": field \"value\" must be a string or a number, got {v.GetRawText()}.", nameof(element)),
            };
        }
        return new FormatInstruction(k.GetString()!, value);
    }

    /// <summary>Reads the JSON text of one instruction.</summary>
    public static FormatInstruction FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = JsonDocument.Parse(json);
        return FromJson(doc.RootElement);
    }

    /// <summary>The number of words: whitespace-separated tokens holding at least one letter or digit.</summary>
    public static int CountWords(string text) =>
        text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Count(w => w.Any(char.IsLetterOrDigit));

    private static bool EndsWithWord(string t, string word)
    {
        string body = TrimEndWhere(t, IsTrailing);
        string w = TrimEndWhere(word, IsTrailing);
        if (w.Length == 0 || !body.EndsWith(w, StringComparison.OrdinalIgnoreCase)) return false;
        int before = body.Length - w.Length - 1;
        return before < 0 || !char.IsLetterOrDigit(body[before]) || !char.IsLetterOrDigit(w[0]);
    }

    private static bool StartsWithWord(string t, string word)
    {
        string body = TrimStartWhere(t, IsTrailing);
        if (!body.StartsWith(word, StringComparison.OrdinalIgnoreCase)) return false;
        int after = word.Length;
        return after >= body.Length || !char.IsLetterOrDigit(body[after]) || !char.IsLetterOrDigit(word[^1]);
    }

    private static bool IsTrailing(char c) => char.IsPunctuation(c) || char.IsWhiteSpace(c) || char.IsSymbol(c);

    private static string TrimEndWhere(string s, Func<char, bool> trim)
    {
        int end = s.Length;
        while (end > 0 && trim(s[end - 1])) end--;
        return s[..end];
    }

    private static string TrimStartWhere(string s, Func<char, bool> trim)
    {
        int start = 0;
        while (start < s.Length && trim(s[start])) start++;
        return s[start..];
    }
}
