using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Raft.Model.Tokenization;

/// <summary>The pre-tokenization regular expressions of the supported families, as their publishers define them.</summary>
public static class PreTokenizerPatterns
{
    /// <summary>GPT-2's (also r50k/p50k, and a ByteLevel pre-tokenizer with use_regex).</summary>
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Llama 3's (the same split as cl100k_base: letters, digits in groups of up to three, punctuation, spaces).</summary>
    public const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>cl100k_base's (tiktoken; its possessive quantifiers written as .NET accepts them, matching the same spans).</summary>
    public const string Cl100kBase = Llama3;

    /// <summary>Qwen2's (Qwen2Tokenizer: like Llama 3 but one digit per piece).</summary>
    public const string Qwen2 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>o200k_base's (tiktoken).</summary>
    public const string O200kBase =
        @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?" +
        @"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?" +
        @"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>A pre-tokenizer that cuts text into the matches of <paramref name="pattern"/> (no special tokens: the adapter cuts those).</summary>
    public static PreTokenizer Create(string pattern) => new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), null);
}

/// <summary>Unicode NFC, as Qwen's tokenizer.json asks. Under invariant globalization .NET leaves non-ASCII text as it is.</summary>
internal sealed class NfcNormalizer : Normalizer
{
    public static readonly NfcNormalizer Instance = new();

    public override string Normalize(string original) => original.IsNormalized(NormalizationForm.FormC) ? original : original.Normalize(NormalizationForm.FormC);

    public override string Normalize(ReadOnlySpan<char> original) => Normalize(original.ToString());
}
