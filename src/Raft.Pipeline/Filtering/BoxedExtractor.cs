namespace Raft.Pipeline.Filtering;

/// <summary>
/// The trimmed content of the last balanced <c>\boxed{...}</c> of the text (nested braces allowed, e.g.
/// <c>\boxed{\frac{1}{2}}</c> → <c>\frac{1}{2}</c>); null when there is none or it is empty.
/// </summary>
public sealed class BoxedExtractor : IAnswerExtractor
{
    /// <summary>The spec name, <c>boxed</c>.</summary>
    public const string SpecName = "boxed";

    private const string Open = @"\boxed{";

    /// <inheritdoc/>
    public string Name => SpecName;

    /// <inheritdoc/>
    public string? Extract(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string? found = null;
        for (int at = text.IndexOf(Open, StringComparison.Ordinal); at >= 0; at = text.IndexOf(Open, at + 1, StringComparison.Ordinal))
        {
            int start = at + Open.Length, depth = 1, j = start;
            for (; j < text.Length && depth > 0; j++)
            {
                if (text[j] == '{') depth++;
                else if (text[j] == '}') depth--;
            }
            if (depth == 0)
            {
                string content = text[start..(j - 1)].Trim();
                if (content.Length > 0) found = content;
            }
        }
        return found;
    }
}
