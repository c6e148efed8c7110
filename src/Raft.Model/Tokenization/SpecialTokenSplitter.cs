namespace Raft.Model.Tokenization;

/// <summary>
/// Cuts text at the special tokens it contains: a leftmost, longest match, so that "&lt;|im_start|&gt;" wins over a
/// shorter token that is its prefix.
/// </summary>
internal sealed class SpecialTokenSplitter
{
    private readonly Dictionary<char, (string Text, int Id)[]> _byFirst;

    public SpecialTokenSplitter(IReadOnlyDictionary<string, int> specials)
    {
        _byFirst = specials.Where(kv => kv.Key.Length > 0)
            .GroupBy(kv => kv.Key[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(kv => kv.Key.Length).Select(kv => (kv.Key, kv.Value)).ToArray());
    }

    /// <summary>Calls <paramref name="onText"/> for each run of ordinary text and <paramref name="onSpecial"/> for each special token, in order.</summary>
    public void Split(string text, Action<string> onText, Action<int> onSpecial)
    {
        if (_byFirst.Count == 0)
        {
            if (text.Length > 0) onText(text);
            return;
        }
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (!_byFirst.TryGetValue(text[i], out var candidates)) continue;
            foreach (var (tok, id) in candidates)
            {
                if (i + tok.Length > text.Length || string.CompareOrdinal(text, i, tok, 0, tok.Length) != 0) continue;
                if (i > start) onText(text[start..i]);
                onSpecial(id);
                i += tok.Length - 1;
                start = i + 1;
                break;
            }
        }
        if (start < text.Length) onText(text[start..]);
    }
}
