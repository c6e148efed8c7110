namespace Raft.Model.Tokenization;

/// <summary>
/// Text ↔ token ids for one model. Implemented by <see cref="ByteTokenizer"/> (the built-in tiny models) and by
/// <see cref="MlTokenizerAdapter"/> (real vocabularies through Microsoft.ML.Tokenizers, loaded by <see cref="TokenizerLoader"/>).
/// Special tokens (<c>&lt;|im_start|&gt;</c>, <c>&lt;|eot_id|&gt;</c>, …) are single ids; their text is recognised in the input
/// when the caller allows it. Implementations are safe to call from several threads at once.
/// </summary>
public interface ITokenizer
{
    /// <summary>
    /// The tokenizer family: "raft" (built-in bytes), "llama3", "qwen2", "llama2" (SentencePiece), "tiktoken", or "bpe"
    /// (any other byte-level BPE). <see cref="ChatTemplate.ForTokenizer"/> picks a chat template from it.
    /// </summary>
    string Family { get; }

    /// <summary>One more than the largest id this tokenizer can produce (ordinary and special tokens together).</summary>
    int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, when the tokenizer has one.</summary>
    int? BosId { get; }

    /// <summary>End-of-sequence id, when the tokenizer has one.</summary>
    int? EosId { get; }

    /// <summary>Padding id, when the tokenizer has one.</summary>
    int? PadId { get; }

    /// <summary>Every special token: its text → its id.</summary>
    IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>
    /// Encodes <paramref name="text"/>. <paramref name="addSpecial"/> adds what the tokenizer's configuration adds around
    /// a sequence (BOS for Llama 2/3 and the built-in tokenizer, nothing for Qwen). <paramref name="allowSpecial"/> turns
    /// special-token text found in <paramref name="text"/> into its single id; when false such text is encoded as
    /// ordinary characters.
    /// </summary>
    int[] Encode(string text, bool addSpecial = false, bool allowSpecial = true);

    /// <summary>Decodes ids to text; special tokens appear as their text unless <paramref name="skipSpecial"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is negative or not in the vocabulary.</exception>
    string Decode(ReadOnlySpan<int> ids, bool skipSpecial = false);

    /// <summary>The id of a special token given by its text (e.g. "&lt;|eot_id|&gt;"); false when there is none.</summary>
    bool TryGetSpecialId(string token, out int id);

    /// <summary>Whether <paramref name="id"/> is a special token.</summary>
    bool IsSpecial(int id);
}

/// <summary>Helpers shared by the <see cref="ITokenizer"/> implementations.</summary>
public static class TokenizerExtensions
{
    /// <summary>The id of a special token that must exist; the exception names the token and the tokenizer family.</summary>
    /// <exception cref="KeyNotFoundException">The tokenizer has no such special token.</exception>
    public static int SpecialId(this ITokenizer tokenizer, string token)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return tokenizer.TryGetSpecialId(token, out int id)
            ? id
            : throw new KeyNotFoundException($"The {tokenizer.Family} tokenizer has no special token \"{token}\".");
    }

    /// <summary>Decodes a list of ids (see <see cref="ITokenizer.Decode"/>).</summary>
    public static string Decode(this ITokenizer tokenizer, IReadOnlyList<int> ids, bool skipSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(ids);
        return tokenizer.Decode(ids is int[] a ? a : ids.ToArray(), skipSpecial);
    }
}
