using System.Globalization;
using System.Text;

namespace Raft.Pipeline.Filtering;

/// <summary>
/// The BERT tokenizer of Hugging Face (<c>BertTokenizer</c> / the fast <c>BertNormalizer</c> + <c>BertPreTokenizer</c> +
/// <c>WordPiece</c>), as sentence-transformers runs it for models such as all-MiniLM-L6-v2:
/// <list type="number">
/// <item>clean: drop U+0000, U+FFFD and control characters (category C*, but tab, CR and LF count as whitespace);
/// every whitespace character (tab, CR, LF, category Zs) becomes a space;</item>
/// <item>put spaces around CJK ideographs (the CJK Unified Ideograph blocks and the compatibility ideographs);</item>
/// <item>uncased: lower-case, then strip accents (NFD, drop non-spacing marks, category Mn);</item>
/// <item>split on whitespace, then split every punctuation character off as a token of its own (ASCII
/// <c>!"#$%&amp;'()*+,-./:;&lt;=&gt;?@[\]^_`{|}~</c> and category P*; symbols such as ° stay inside words);</item>
/// <item>WordPiece: greedy longest match first, continuation pieces prefixed <c>##</c>; a word with no full cover, or
/// of more than 100 characters, is one [UNK].</item>
/// </list>
/// <see cref="Encode"/> adds [CLS] … [SEP] and keeps the first maxTokens − 2 pieces (truncation on the right).
/// </summary>
public sealed class BertWordPieceTokenizer
{
    /// <summary>The longest word WordPiece splits (longer words become [UNK]).</summary>
    public const int MaxCharsPerWord = 100;

    private readonly Dictionary<string, int> _vocab;
    private readonly bool _lowerCase;

    /// <summary>The tokenizer of the vocabulary <paramref name="tokens"/> (token i has id i).</summary>
    public BertWordPieceTokenizer(IReadOnlyList<string> tokens, bool lowerCase = true, string source = "vocabulary")
    {
        ArgumentNullException.ThrowIfNull(tokens);
        _vocab = new Dictionary<string, int>(tokens.Count, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++) _vocab.TryAdd(tokens[i], i);
        _lowerCase = lowerCase;
        UnknownId = Id("[UNK]", source);
        ClassifyId = Id("[CLS]", source);
        SeparatorId = Id("[SEP]", source);
        PaddingId = Id("[PAD]", source);
    }

    /// <summary>Reads a vocab.txt (one token a line, id = line number from 0); a vocabulary without [UNK], [CLS], [SEP] or [PAD] throws <see cref="InvalidDataException"/> naming the file.</summary>
    public static BertWordPieceTokenizer FromFile(string vocabPath, bool lowerCase = true)
    {
        var lines = File.ReadAllLines(vocabPath, Encoding.UTF8);
        int n = lines.Length;
        while (n > 0 && lines[n - 1].Length == 0) n--; // a trailing newline is not a token
        return new BertWordPieceTokenizer(lines.AsSpan(0, n).ToArray().Select(l => l.TrimEnd('\r')).ToArray(), lowerCase, Path.GetFullPath(vocabPath));
    }

    private int Id(string token, string source) =>
        _vocab.TryGetValue(token, out int id) ? id : throw new InvalidDataException($"{source}: the vocabulary has no {token} token.");

    /// <summary>The id of [UNK].</summary>
    public int UnknownId { get; }
    /// <summary>The id of [CLS].</summary>
    public int ClassifyId { get; }
    /// <summary>The id of [SEP].</summary>
    public int SeparatorId { get; }
    /// <summary>The id of [PAD].</summary>
    public int PaddingId { get; }

    /// <summary>[CLS], the WordPiece ids of <paramref name="text"/> (at most <paramref name="maxTokens"/> − 2), [SEP].</summary>
    public int[] Encode(string text, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (maxTokens < 2) throw new ArgumentOutOfRangeException(nameof(maxTokens), maxTokens, "maxTokens must be at least 2.");
        var ids = new List<int> { ClassifyId };
        foreach (var piece in Tokenize(text))
        {
            if (ids.Count == maxTokens - 1) break;
            ids.Add(_vocab.TryGetValue(piece, out int id) ? id : UnknownId);
        }
        ids.Add(SeparatorId);
        return [.. ids];
    }

    /// <summary>The WordPiece tokens of <paramref name="text"/> (no [CLS]/[SEP]).</summary>
    public IEnumerable<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var word in BasicTokens(text))
            foreach (var piece in WordPieces(word)) yield return piece;
    }

    /// <summary>Steps 1–4: the words and punctuation marks of <paramref name="text"/>.</summary>
    public List<string> BasicTokens(string text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            int cp = rune.Value;
            if (cp == 0 || cp == 0xFFFD) continue;
            if (IsWhitespace(rune)) { sb.Append(' '); continue; }
            if (IsControl(rune)) continue;
            if (IsCjk(cp)) { sb.Append(' ').Append(rune.ToString()).Append(' '); continue; }
            sb.Append(rune.ToString());
        }
        var result = new List<string>();
        foreach (var raw in sb.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            string word = _lowerCase ? StripAccents(raw.ToLowerInvariant()) : raw;
            var current = new StringBuilder();
            foreach (var rune in word.EnumerateRunes())
            {
                if (IsPunctuation(rune))
                {
                    if (current.Length > 0) { result.Add(current.ToString()); current.Clear(); }
                    result.Add(rune.ToString());
                }
                else current.Append(rune.ToString());
            }
            if (current.Length > 0) result.Add(current.ToString());
        }
        return result;
    }

    /// <summary>Step 5: the WordPiece split of one word.</summary>
    public List<string> WordPieces(string word)
    {
        var runes = word.EnumerateRunes().Select(r => r.ToString()).ToArray();
        if (runes.Length > MaxCharsPerWord) return ["[UNK]"];
        var pieces = new List<string>();
        int start = 0;
        while (start < runes.Length)
        {
            string? found = null;
            int end = runes.Length;
            for (; end > start; end--)
            {
                string sub = string.Concat(runes.AsSpan(start, end - start).ToArray());
                if (start > 0) sub = "##" + sub;
                if (_vocab.ContainsKey(sub)) { found = sub; break; }
            }
            if (found is null) return ["[UNK]"];
            pieces.Add(found);
            start = end;
        }
        return pieces;
    }

    private static string StripAccents(string s)
    {
        string d = s.Normalize(NormalizationForm.FormD);
        var sb = new StringBuilder(d.Length);
        foreach (var rune in d.EnumerateRunes())
            if (Rune.GetUnicodeCategory(rune) != UnicodeCategory.NonSpacingMark) sb.Append(rune.ToString());
        return sb.ToString();
    }

    private static bool IsWhitespace(Rune r) =>
        r.Value is ' ' or '\t' or '\n' or '\r' || Rune.GetUnicodeCategory(r) == UnicodeCategory.SpaceSeparator;

    private static bool IsControl(Rune r) => Rune.GetUnicodeCategory(r) is
        UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;

    private static bool IsPunctuation(Rune r)
    {
        int cp = r.Value;
        if (cp is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126) return true;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
    }

    private static bool IsCjk(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
