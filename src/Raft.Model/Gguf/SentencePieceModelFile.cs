using System.Text;

namespace Raft.Model.Gguf;

/// <summary>
/// The parts of a SentencePiece <c>tokenizer.model</c> (a serialized <c>sentencepiece.ModelProto</c>) that a GGUF "llama"
/// vocabulary needs: every piece with its score and type, the model type, byte fallback and the normalizer's
/// add_dummy_prefix. A small protobuf wire-format reader of our own; unknown fields are skipped.
/// </summary>
public sealed class SentencePieceModelFile
{
    /// <summary>SentencePiece's piece types (the numbers also GGUF's token types use).</summary>
    public enum PieceType
    {
        /// <summary>An ordinary piece.</summary>
        Normal = 1,
        /// <summary>The unknown-token piece.</summary>
        Unknown = 2,
        /// <summary>A control symbol (&lt;s&gt;, &lt;/s&gt;).</summary>
        Control = 3,
        /// <summary>A user-defined symbol.</summary>
        UserDefined = 4,
        /// <summary>An unused piece.</summary>
        Unused = 5,
        /// <summary>A byte-fallback piece (&lt;0x0A&gt;).</summary>
        Byte = 6,
    }

    /// <summary>One piece of the vocabulary.</summary>
    public readonly record struct Piece(string Text, float Score, PieceType Type);

    /// <summary>The pieces, by id.</summary>
    public IReadOnlyList<Piece> Pieces { get; private init; } = [];
    /// <summary>TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char (1 when absent, SentencePiece's default).</summary>
    public int ModelType { get; private init; } = 1;
    /// <summary>TrainerSpec.byte_fallback.</summary>
    public bool ByteFallback { get; private init; }
    /// <summary>NormalizerSpec.add_dummy_prefix (true when absent).</summary>
    public bool AddDummyPrefix { get; private init; } = true;
    /// <summary>NormalizerSpec.remove_extra_whitespaces (true when absent).</summary>
    public bool RemoveExtraWhitespaces { get; private init; } = true;

    /// <summary>The model type as SentencePiece names it.</summary>
    public string ModelTypeName => ModelType switch { 1 => "UNIGRAM", 2 => "BPE", 3 => "WORD", 4 => "CHAR", _ => $"type {ModelType}" };

    /// <summary>Reads <paramref name="path"/>; a malformed file raises <see cref="InvalidDataException"/> naming it.</summary>
    public static SentencePieceModelFile Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            return Parse(bytes);
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{path}: not a SentencePiece model ({e.Message}).", e);
        }
    }

    private static SentencePieceModelFile Parse(ReadOnlySpan<byte> data)
    {
        var pieces = new List<Piece>();
        int modelType = 1;
        bool byteFallback = false, dummy = true, removeWs = true;
        var r = new Reader(data);
        while (!r.End)
        {
            var (field, wire) = r.Tag();
            if (field == 1 && wire == 2) pieces.Add(ParsePiece(r.Bytes(), pieces.Count));
            else if (field == 2 && wire == 2)
            {
                var t = new Reader(r.Bytes());
                while (!t.End)
                {
                    var (f, w) = t.Tag();
                    if (f == 3 && w == 0) modelType = (int)t.Varint();
                    else if (f == 35 && w == 0) byteFallback = t.Varint() != 0;
                    else t.Skip(w);
                }
            }
            else if (field == 3 && wire == 2)
            {
                var n = new Reader(r.Bytes());
                while (!n.End)
                {
                    var (f, w) = n.Tag();
                    if (f == 3 && w == 0) dummy = n.Varint() != 0;
                    else if (f == 4 && w == 0) removeWs = n.Varint() != 0;
                    else n.Skip(w);
                }
            }
            else r.Skip(wire);
        }
        if (pieces.Count == 0) throw new FormatException("it holds no pieces");
        return new SentencePieceModelFile { Pieces = pieces, ModelType = modelType, ByteFallback = byteFallback, AddDummyPrefix = dummy, RemoveExtraWhitespaces = removeWs };
    }

    private static Piece ParsePiece(ReadOnlySpan<byte> data, int index)
    {
        string? text = null;
        float score = 0;
        int type = 1;
        var r = new Reader(data);
        while (!r.End)
        {
            var (f, w) = r.Tag();
            if (f == 1 && w == 2)
            {
                try { text = new UTF8Encoding(false, true).GetString(r.Bytes()); }
                catch (DecoderFallbackException) { throw new FormatException($"piece {index} is not valid UTF-8"); }
            }
            else if (f == 2 && w == 5) score = r.Fixed32();
            else if (f == 3 && w == 0) type = (int)r.Varint();
            else r.Skip(w);
        }
        if (text is null) throw new FormatException($"piece {index} has no text");
        if (type is < 1 or > 6) throw new FormatException($"piece {index} (\"{text}\") has type {type}");
        return new Piece(text, score, (PieceType)type);
    }

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        public readonly bool End => _pos >= _data.Length;

        public ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= _data.Length) throw new FormatException("a varint runs past the end");
                byte b = _data[_pos++];
                v |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return v;
            }
            throw new FormatException("a varint is longer than 10 bytes");
        }

        public (int Field, int Wire) Tag()
        {
            ulong t = Varint();
            if (t >> 3 == 0 || t >> 3 > int.MaxValue) throw new FormatException($"field number {t >> 3}");
            return ((int)(t >> 3), (int)(t & 7));
        }

        public ReadOnlySpan<byte> Bytes()
        {
            ulong n = Varint();
            if (n > (ulong)(_data.Length - _pos)) throw new FormatException("a length-delimited field runs past the end");
            var s = _data.Slice(_pos, (int)n);
            _pos += (int)n;
            return s;
        }

        public float Fixed32()
        {
            if (_pos + 4 > _data.Length) throw new FormatException("a fixed32 runs past the end");
            float f = BitConverter.ToSingle(_data.Slice(_pos, 4));
            _pos += 4;
            return f;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Advance(8); break;
                case 2: Bytes(); break;
                case 5: Advance(4); break;
                default: throw new FormatException($"wire type {wire}");
            }
        }

        private void Advance(int n)
        {
            if (_pos + n > _data.Length) throw new FormatException("a field runs past the end");
            _pos += n;
        }
    }
}
