using System.Text;

namespace Raft.Model.Tokenization;

/// <summary>
/// The built-in tokenizer of the tiny models: ids 0–255 are the UTF-8 bytes of the text, and the ids after them are
/// special tokens (<see cref="SpecialTokenTexts"/>, in that order). Any string round-trips through
/// <see cref="Encode"/> and <see cref="Decode"/> (lone surrogates excepted: UTF-8 cannot carry them).
/// </summary>
public sealed class ByteTokenizer : ITokenizer
{
    /// <summary>Beginning of sequence.</summary>
    public const string Bos = "<|bos|>";
    /// <summary>End of sequence.</summary>
    public const string Eos = "<|eos|>";
    /// <summary>Padding.</summary>
    public const string Pad = "<|pad|>";
    /// <summary>Starts a user turn.</summary>
    public const string User = "<|user|>";
    /// <summary>Starts an assistant turn.</summary>
    public const string Assistant = "<|assistant|>";
    /// <summary>Starts a system turn.</summary>
    public const string System = "<|system|>";
    /// <summary>Ends a turn.</summary>
    public const string End = "<|end|>";

    /// <summary>The special tokens, in id order from 256.</summary>
    public static IReadOnlyList<string> SpecialTokenTexts { get; } = [Bos, Eos, Pad, User, Assistant, System, End];

    /// <summary>The first special id (the byte ids are 0–255).</summary>
    public const int FirstSpecialId = 256;

    private readonly Dictionary<string, int> _specials;
    private readonly SpecialTokenSplitter _splitter;

    /// <summary>Creates the tokenizer (it has no state beyond its fixed vocabulary).</summary>
    public ByteTokenizer()
    {
        _specials = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < SpecialTokenTexts.Count; i++) _specials.Add(SpecialTokenTexts[i], FirstSpecialId + i);
        _splitter = new SpecialTokenSplitter(_specials);
    }

    /// <summary>A shared instance.</summary>
    public static ByteTokenizer Instance { get; } = new();

    /// <inheritdoc/>
    public string Family => "raft";
    /// <inheritdoc/>
    public int VocabSize => FirstSpecialId + SpecialTokenTexts.Count;
    /// <inheritdoc/>
    public int? BosId => _specials[Bos];
    /// <inheritdoc/>
    public int? EosId => _specials[Eos];
    /// <inheritdoc/>
    public int? PadId => _specials[Pad];
    /// <inheritdoc/>
    public IReadOnlyDictionary<string, int> SpecialTokens => _specials;

    /// <inheritdoc/>
    /// <remarks><paramref name="addSpecial"/> puts <c>&lt;|bos|&gt;</c> first.</remarks>
    public int[] Encode(string text, bool addSpecial = false, bool allowSpecial = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length + 1);
        if (addSpecial) ids.Add(_specials[Bos]);
        void AddBytes(string s)
        {
            foreach (byte b in Encoding.UTF8.GetBytes(s)) ids.Add(b);
        }
        if (allowSpecial) _splitter.Split(text, AddBytes, ids.Add);
        else AddBytes(text);
        return ids.ToArray();
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecial = false)
    {
        var sb = new StringBuilder(ids.Length);
        var bytes = new List<byte>();
        void Flush()
        {
            if (bytes.Count == 0) return;
            sb.Append(Encoding.UTF8.GetString(bytes.ToArray()));
            bytes.Clear();
        }
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            if ((uint)id < FirstSpecialId) { bytes.Add((byte)id); continue; }
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"ids[{i}] = {id} is outside the byte tokenizer's vocabulary 0..{VocabSize - 1}.");
            Flush();
            if (!skipSpecial) sb.Append(SpecialTokenTexts[id - FirstSpecialId]);
        }
        Flush();
        return sb.ToString();
    }

    /// <inheritdoc/>
    public bool TryGetSpecialId(string token, out int id) => _specials.TryGetValue(token, out id);

    /// <inheritdoc/>
    public bool IsSpecial(int id) => id >= FirstSpecialId && id < VocabSize;
}
