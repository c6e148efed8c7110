using System.Text;
using Microsoft.ML.Tokenizers;

namespace Raft.Model.Tokenization;

/// <summary>
/// An <see cref="ITokenizer"/> over a Microsoft.ML.Tokenizers <see cref="Tokenizer"/> (byte-level BPE, tiktoken,
/// SentencePiece). The adapter owns the special tokens: it cuts the text at them (leftmost, longest match) and hands
/// only the ordinary text between them to the inner tokenizer, so the inner one should be built without special tokens.
/// <see cref="TokenizerLoader"/> builds these from a model directory.
/// </summary>
public sealed class MlTokenizerAdapter : ITokenizer
{
    private readonly Dictionary<string, int> _added;
    private readonly Dictionary<int, string> _addedById;
    private readonly HashSet<int> _special;
    private readonly SpecialTokenSplitter _splitter;
    private readonly bool _addBos, _addEos;

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    /// <param name="inner">The Microsoft.ML.Tokenizers tokenizer for ordinary text.</param>
    /// <param name="family">See <see cref="ITokenizer.Family"/>.</param>
    /// <param name="addedTokens">
    /// Tokens matched in the text as single ids (Hugging Face's added tokens): text → (id, special). Only those with
    /// special = true count for <see cref="IsSpecial"/> and are dropped by <c>Decode(…, skipSpecial: true)</c>.
    /// </param>
    /// <param name="vocabSize">The inner tokenizer's vocabulary size (largest ordinary id + 1); special ids may lie beyond it.</param>
    /// <param name="bosToken">The beginning-of-sequence token's text, when there is one (must be in <paramref name="addedTokens"/>).</param>
    /// <param name="eosToken">The end-of-sequence token's text, when there is one.</param>
    /// <param name="padToken">The padding token's text, when there is one.</param>
    /// <param name="addBos">Whether <c>Encode(…, addSpecial: true)</c> puts BOS first.</param>
    /// <param name="addEos">Whether <c>Encode(…, addSpecial: true)</c> puts EOS last.</param>
    /// <exception cref="ArgumentException">A named BOS/EOS/PAD token is not among the added tokens, or the vocabulary size is not positive.</exception>
    public MlTokenizerAdapter(Tokenizer inner, string family, IReadOnlyDictionary<string, (int Id, bool Special)> addedTokens, int vocabSize,
        string? bosToken = null, string? eosToken = null, string? padToken = null, bool addBos = false, bool addEos = false)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(family);
        ArgumentNullException.ThrowIfNull(addedTokens);
        if (vocabSize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "vocabSize must be > 0.");
        Inner = inner;
        Family = family;
        _added = new Dictionary<string, int>(StringComparer.Ordinal);
        _addedById = [];
        _special = [];
        foreach (var (text, (id, special)) in addedTokens)
        {
            if (id < 0) throw new ArgumentException($"Added token \"{text}\" has a negative id {id}.", nameof(addedTokens));
            _added[text] = id;
            _addedById[id] = text;
            if (special) _special.Add(id);
        }
        VocabSize = Math.Max(vocabSize, _added.Count == 0 ? 0 : _added.Values.Max() + 1);
        BosId = Resolve(bosToken, nameof(bosToken));
        EosId = Resolve(eosToken, nameof(eosToken));
        PadId = Resolve(padToken, nameof(padToken));
        _addBos = addBos && BosId is not null;
        _addEos = addEos && EosId is not null;
        _splitter = new SpecialTokenSplitter(_added);
    }

    private int? Resolve(string? token, string name)
    {
        if (token is null) return null;
        return _added.TryGetValue(token, out int id)
            ? id
            : throw new ArgumentException($"{name} \"{token}\" is not one of the {Family} tokenizer's added tokens.", name);
    }

    /// <summary>The wrapped Microsoft.ML.Tokenizers tokenizer.</summary>
    public Tokenizer Inner { get; }

    /// <inheritdoc/>
    public string Family { get; }
    /// <inheritdoc/>
    public int VocabSize { get; }
    /// <inheritdoc/>
    public int? BosId { get; }
    /// <inheritdoc/>
    public int? EosId { get; }
    /// <inheritdoc/>
    public int? PadId { get; }
    /// <inheritdoc/>
    /// <remarks>All added tokens, including those the tokenizer does not flag as special (Qwen's &lt;think&gt;).</remarks>
    public IReadOnlyDictionary<string, int> SpecialTokens => _added;

    /// <inheritdoc/>
    public int[] Encode(string text, bool addSpecial = false, bool allowSpecial = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 2);
        if (addSpecial && _addBos) ids.Add(BosId!.Value);
        if (allowSpecial) _splitter.Split(text, s => EncodeOrdinary(s, ids), ids.Add);
        else EncodeOrdinary(text, ids);
        if (addSpecial && _addEos) ids.Add(EosId!.Value);
        return ids.ToArray();
    }

    private void EncodeOrdinary(string text, List<int> ids)
    {
        if (text.Length == 0) return;
        IReadOnlyList<int> got = Inner is SentencePieceTokenizer sp
            ? sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false)
            : Inner.EncodeToIds(text);
        ids.AddRange(got);
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecial = false)
    {
        var sb = new StringBuilder();
        var run = new List<int>();
        void Flush()
        {
            if (run.Count == 0) return;
            string? s = Inner is SentencePieceTokenizer sp ? sp.Decode(run, considerSpecialTokens: false) : Inner.Decode(run);
            sb.Append(s);
            run.Clear();
        }
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"ids[{i}] = {id} is outside the {Family} tokenizer's vocabulary 0..{VocabSize - 1}.");
            if (_addedById.TryGetValue(id, out string? text))
            {
                Flush();
                if (!(skipSpecial && _special.Contains(id))) sb.Append(text);
            }
            else run.Add(id);
        }
        Flush();
        return sb.ToString();
    }

    /// <inheritdoc/>
    public bool TryGetSpecialId(string token, out int id) => _added.TryGetValue(token, out id);

    /// <inheritdoc/>
    public bool IsSpecial(int id) => _special.Contains(id);

    /// <summary>Whether <c>Encode(…, addSpecial: true)</c> puts BOS first.</summary>
    public bool AddsBos => _addBos;

    /// <summary>Whether <c>Encode(…, addSpecial: true)</c> puts EOS last.</summary>
    public bool AddsEos => _addEos;
}
