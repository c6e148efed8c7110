using System.Text;
using System.Text.RegularExpressions;

namespace Raft.Model.Tokenization.Jinja;

internal enum TokenKind
{
    Text, NumericLiteral, StringLiteral, Identifier, Equals, OpenParen, CloseParen, OpenStatement, CloseStatement,
    OpenExpression, CloseExpression, OpenSquareBracket, CloseSquareBracket, OpenCurlyBracket, CloseCurlyBracket,
    Comma, Dot, Colon, Pipe, CallOperator, AdditiveBinaryOperator, MultiplicativeBinaryOperator,
    ExponentiationBinaryOperator, ComparisonBinaryOperator, UnaryOperator, Comment,
}

internal sealed class Token(string value, TokenKind kind)
{
    public string Value { get; set; } = value;
    public TokenKind Kind { get; } = kind;
    public override string ToString() => $"{Kind}({Value})";
}

/// <summary>
/// The template's tokens, as Hugging Face's <c>@huggingface/jinja</c> (the chat-template renderer of transformers.js) cuts
/// them: the source is preprocessed with <c>trim_blocks</c> and <c>lstrip_blocks</c> on (what transformers' Python renderer
/// configures too), one trailing newline removed, and <c>{% generation %}</c> / <c>{% endgeneration %}</c> tags taken out
/// (with their <c>-</c> whitespace control). With markers on (<c>markGeneration</c>), each removed generation tag leaves a
/// private-use marker character in the text instead (<see cref="GenerationStart"/>, <see cref="GenerationEnd"/>), which
/// every whitespace-control step looks through, so that the rendered text with the markers removed is the same text.
/// </summary>
internal static class JinjaLexer
{
    /// <summary>Marks where a <c>{% generation %}</c> tag stood (only with markers on).</summary>
    public const char GenerationStart = '\uE000';
    /// <summary>Marks where an <c>{% endgeneration %}</c> tag stood (only with markers on).</summary>
    public const char GenerationEnd = '\uE001';

    private const string JsWs = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff";
    private static readonly Regex TrimBlocks = new(@"([#%-]})\n", RegexOptions.CultureInvariant);
    private static readonly Regex GenerationTag = new(@"{%(-?)[" + JsWs + @"]*(end)?generation[" + JsWs + @"]*(-?)%}([" + JsWs + "]*)",
        RegexOptions.CultureInvariant);

    /// <summary>JavaScript's <c>/\s/</c> (and what <c>String.prototype.trim</c> removes).</summary>
    public static bool IsWhitespace(char c) =>
        c <= 32 ? c == 32 || (c >= 9 && c <= 13)
        : c > 127 && (c == '\u00a0' || c == '\u1680' || (c >= '\u2000' && c <= '\u200a') || c == '\u2028' || c == '\u2029' ||
                      c == '\u202f' || c == '\u205f' || c == '\u3000' || c == '\ufeff');

    private static bool IsMarker(char c) => c is GenerationStart or GenerationEnd;
    private static bool IsWord(char c) => c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_';
    private static bool IsDigit(char c) => c is >= '0' and <= '9';
    private static bool IsLineTerminator(char c) => c is '\n' or '\r' or '\u2028' or '\u2029';

    private static readonly (string Seq, TokenKind Kind)[] Table =
    [
        ("{%", TokenKind.OpenStatement), ("%}", TokenKind.CloseStatement), ("{{", TokenKind.OpenExpression), ("}}", TokenKind.CloseExpression),
        ("(", TokenKind.OpenParen), (")", TokenKind.CloseParen), ("{", TokenKind.OpenCurlyBracket), ("}", TokenKind.CloseCurlyBracket),
        ("[", TokenKind.OpenSquareBracket), ("]", TokenKind.CloseSquareBracket), (",", TokenKind.Comma), (".", TokenKind.Dot),
        (":", TokenKind.Colon), ("|", TokenKind.Pipe),
        ("<=", TokenKind.ComparisonBinaryOperator), (">=", TokenKind.ComparisonBinaryOperator), ("==", TokenKind.ComparisonBinaryOperator),
        ("!=", TokenKind.ComparisonBinaryOperator), ("<", TokenKind.ComparisonBinaryOperator), (">", TokenKind.ComparisonBinaryOperator),
        ("+", TokenKind.AdditiveBinaryOperator), ("-", TokenKind.AdditiveBinaryOperator), ("~", TokenKind.AdditiveBinaryOperator),
        ("**", TokenKind.ExponentiationBinaryOperator), ("*", TokenKind.MultiplicativeBinaryOperator),
        ("//", TokenKind.MultiplicativeBinaryOperator), ("/", TokenKind.MultiplicativeBinaryOperator), ("%", TokenKind.MultiplicativeBinaryOperator),
        ("=", TokenKind.Equals),
    ];

    /// <summary>The whitespace-control preprocessing (see the class summary).</summary>
    public static string Preprocess(string template, bool markGeneration)
    {
        if (template.EndsWith('\n')) template = template[..^1];
        // lstrip_blocks: spaces and tabs from the start of a line up to "{%", "{#" or "{-" (JavaScript's /^[ \t]*({[#%-])/gm,
        // where a line starts after \n, \r, U+2028 or U+2029).
        var sb = new StringBuilder(template.Length);
        int i = 0;
        while (i < template.Length)
        {
            bool lineStart = i == 0 || IsLineTerminator(template[i - 1]);
            if (lineStart)
            {
                int j = i;
                while (j < template.Length && template[j] is ' ' or '\t') j++;
                if (j + 1 < template.Length && template[j] == '{' && template[j + 1] is '#' or '%' or '-')
                {
                    i = j;
                }
            }
            sb.Append(template[i]);
            i++;
        }
        template = TrimBlocks.Replace(sb.ToString(), "$1");

        var result = new StringBuilder(template.Length);
        int last = 0;
        foreach (Match m in GenerationTag.Matches(template))
        {
            bool lstrip = m.Groups[1].Length > 0, end = m.Groups[2].Success, rstrip = m.Groups[3].Length > 0;
            int endIndex = m.Index;
            while (lstrip && endIndex > last && IsWhitespace(template[endIndex - 1])) endIndex--;
            result.Append(template, last, endIndex - last);
            if (markGeneration) result.Append(end ? GenerationEnd : GenerationStart);
            if (!rstrip) result.Append(m.Groups[4].Value);
            last = m.Index + m.Length;
        }
        result.Append(template, last, template.Length - last);
        return result.ToString();
    }

    public static List<Token> Tokenize(string source, bool markGeneration)
    {
        var tokens = new List<Token>();
        string src = Preprocess(source, markGeneration);
        int length = src.Length, pos = 0, curlyDepth = 0;
        string pendingMarkers = "";   // markers skipped over by a "-%}" / "-}}" / "-#}": they open the next text

        char At(int p) => p < length ? src[p] : '\0';
        bool AtIs(int p, Func<char, bool> f) => p < length && f(src[p]);

        string ConsumeWhile(Func<char, bool> predicate)
        {
            int start = pos;
            while (AtIs(pos, predicate))
                if (++pos >= length) throw new JinjaSyntaxException("Unexpected end of input");
            return src[start..pos];
        }

        string ConsumeString(char quote)
        {
            var str = new StringBuilder();
            int start = pos;
            while (true)
            {
                if (pos >= length) throw new JinjaSyntaxException("Unexpected end of input");
                char c = src[pos];
                if (c == quote) break;
                ++pos;
                if (c != '\\') continue;
                str.Append(src, start, pos - 1 - start);
                if (pos >= length) throw new JinjaSyntaxException("Unexpected end of input");
                char escaped = src[pos++];
                if (escaped is 'x' or 'u')
                {
                    int n = escaped == 'x' ? 2 : 4;
                    string hex = src.Substring(pos, Math.Min(n, length - pos));
                    if (hex.Length != n || !hex.All(Uri.IsHexDigit))
                        throw new JinjaSyntaxException($"Invalid hexadecimal escape sequence: \\{escaped}{hex}");
                    str.Append((char)Convert.ToInt32(hex, 16));
                    pos += n;
                }
                else
                {
                    str.Append(escaped switch
                    {
                        'n' => '\n', 't' => '\t', 'r' => '\r', 'b' => '\b', 'f' => '\f', 'v' => '\v', '\'' => '\'', '"' => '"', '\\' => '\\',
                        _ => throw new JinjaSyntaxException($"Unexpected escaped character: {escaped}"),
                    });
                }
                start = pos;
            }
            str.Append(src, start, pos - start);
            return str.ToString();
        }

        void StripTrailingWhitespace()
        {
            if (tokens.Count == 0 || tokens[^1].Kind != TokenKind.Text) return;
            var t = tokens[^1];
            int end = t.Value.Length;
            var kept = new StringBuilder();
            while (end > 0 && (IsWhitespace(t.Value[end - 1]) || IsMarker(t.Value[end - 1])))
            {
                if (IsMarker(t.Value[end - 1])) kept.Insert(0, t.Value[end - 1]);
                end--;
            }
            t.Value = t.Value[..end] + kept;
            if (t.Value.Length == 0) tokens.RemoveAt(tokens.Count - 1);
        }

        void SkipLeadingWhitespace()
        {
            while (pos < length && (IsWhitespace(src[pos]) || IsMarker(src[pos])))
            {
                if (IsMarker(src[pos])) pendingMarkers += src[pos];
                ++pos;
            }
        }

        void FlushMarkers()
        {
            if (pendingMarkers.Length == 0) return;
            tokens.Add(new Token(pendingMarkers, TokenKind.Text));
            pendingMarkers = "";
        }

        while (pos < length)
        {
            var lastKind = tokens.Count == 0 ? (TokenKind?)null : tokens[^1].Kind;
            if (lastKind is null or TokenKind.CloseStatement or TokenKind.CloseExpression or TokenKind.Comment)
            {
                int end = pos;
                while (true)
                {
                    end = src.IndexOf('{', end);
                    if (end == -1) { end = length; break; }
                    char next = At(end + 1);
                    if (next is '%' or '{' or '#') break;
                    ++end;
                }
                if (end > pos)
                {
                    tokens.Add(new Token(pendingMarkers + src[pos..end], TokenKind.Text));
                    pendingMarkers = "";
                    pos = end;
                    continue;
                }
            }
            if (lastKind is null or TokenKind.CloseStatement or TokenKind.CloseExpression or TokenKind.Comment) FlushMarkers();

            if (src[pos] == '{')
            {
                char next = At(pos + 1);
                if (next == '#')
                {
                    pos += 2;
                    bool stripBefore = At(pos) == '-';
                    if (stripBefore) ++pos;
                    int end = src.IndexOf("#}", pos, StringComparison.Ordinal);
                    if (end == -1) throw new JinjaSyntaxException("Missing end of comment tag");
                    string comment = src[pos..end];
                    bool stripAfter = comment.EndsWith('-');
                    if (stripAfter) comment = comment[..^1];
                    if (stripBefore) StripTrailingWhitespace();
                    tokens.Add(new Token(comment, TokenKind.Comment));
                    pos = end + 2;
                    if (stripAfter) SkipLeadingWhitespace();
                    continue;
                }
                if (At(pos + 2) == '-')
                {
                    if (next == '%')
                    {
                        StripTrailingWhitespace();
                        tokens.Add(new Token("{%", TokenKind.OpenStatement));
                        pos += 3;
                        continue;
                    }
                    if (next == '{')
                    {
                        StripTrailingWhitespace();
                        tokens.Add(new Token("{{", TokenKind.OpenExpression));
                        curlyDepth = 0;
                        pos += 3;
                        continue;
                    }
                }
            }

            ConsumeWhile(IsWhitespace);
            char ch = src[pos];

            if (ch == '-' && At(pos + 2) == '}')
            {
                char next = At(pos + 1);
                if (next == '%')
                {
                    tokens.Add(new Token("%}", TokenKind.CloseStatement));
                    pos += 3;
                    SkipLeadingWhitespace();
                    continue;
                }
                if (next == '}')
                {
                    tokens.Add(new Token("}}", TokenKind.CloseExpression));
                    pos += 3;
                    SkipLeadingWhitespace();
                    continue;
                }
            }

            if (ch is '-' or '+')
            {
                if (lastKind is null or TokenKind.Text) throw new JinjaSyntaxException($"Unexpected character: {ch}");
                if (lastKind is not (TokenKind.Identifier or TokenKind.NumericLiteral or TokenKind.StringLiteral or TokenKind.CloseParen or TokenKind.CloseSquareBracket))
                {
                    ++pos;
                    string num = ConsumeWhile(IsDigit);
                    if (num.Length > 0 && At(pos) == '.' && AtIs(pos + 1, IsDigit))
                    {
                        ++pos;
                        num = num + "." + ConsumeWhile(IsDigit);
                    }
                    tokens.Add(new Token(ch + num, num.Length > 0 ? TokenKind.NumericLiteral : TokenKind.UnaryOperator));
                    continue;
                }
            }

            bool matched = false;
            foreach (var (seq, kind) in Table)
            {
                if (seq[0] != ch) continue;
                if (seq == "}}" && curlyDepth > 0) continue;
                if (string.CompareOrdinal(src, pos, seq, 0, seq.Length) != 0 || pos + seq.Length > length) continue;
                tokens.Add(new Token(seq, kind));
                if (kind == TokenKind.OpenExpression) curlyDepth = 0;
                else if (kind == TokenKind.OpenCurlyBracket) ++curlyDepth;
                else if (kind == TokenKind.CloseCurlyBracket) --curlyDepth;
                pos += seq.Length;
                matched = true;
                break;
            }
            if (matched) continue;

            if (ch is '\'' or '"')
            {
                ++pos;
                string str = ConsumeString(ch);
                tokens.Add(new Token(str, TokenKind.StringLiteral));
                ++pos;
                continue;
            }
            if (IsDigit(ch))
            {
                string num = ConsumeWhile(IsDigit);
                if (lastKind != TokenKind.Dot && At(pos) == '.' && AtIs(pos + 1, IsDigit))
                {
                    ++pos;
                    num = num + "." + ConsumeWhile(IsDigit);
                }
                tokens.Add(new Token(num, TokenKind.NumericLiteral));
                continue;
            }
            if (IsWord(ch))
            {
                tokens.Add(new Token(ConsumeWhile(IsWord), TokenKind.Identifier));
                continue;
            }
            throw new JinjaSyntaxException($"Unexpected character: {ch}");
        }
        FlushMarkers();
        return tokens;
    }
}
