using Raft.Model;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Raft.Cli;

/// <summary>An array read from a .npy file: its elements in C (row-major) order and its shape.</summary>
internal sealed record NpyArray<T>(T[] Data, int[] Shape) where T : unmanaged;

/// <summary>A .npy file that cannot be read; the message names the file and the problem.</summary>
internal sealed class NpyFormatException(string path, string problem) : FormatException($"{path}: {problem}")
{
    /// <summary>The file.</summary>
    public string FilePath { get; } = path;
    /// <summary>What is wrong with it.</summary>
    public string Problem { get; } = problem;
}

/// <summary>
/// NumPy's .npy format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
/// the magic "\x93NUMPY", a major and minor version byte, the header length (uint16 little-endian in version
/// 1.0, uint32 in 2.0 and 3.0), an ASCII (1.0, 2.0) or UTF-8 (3.0) Python dict literal
/// <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (r, v), }</c> padded with spaces and ended by
/// '\n', then the raw elements. Reads every version; writes version 1.0 exactly as <c>np.save</c> does.
/// Data moves between the file and the array as bytes (no per-element parsing).
/// </summary>
internal static class NpyFile
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>NumPy's header alignment: magic + version + length + header is a multiple of this.</summary>
    private const int HeaderAlign = 64;

    /// <summary>NumPy leaves room for the first axis to grow to this many digits (np.save since 1.26 / 2.x).</summary>
    private const int GrowthAxisMaxDigits = 21;

    /// <summary>Bytes moved per read or write call (a whole number of 4-byte elements).</summary>
    private const int ChunkBytes = 1 << 28;

    /// <summary>The parsed header of a .npy file.</summary>
    internal readonly record struct Header(int Major, int Minor, string Descr, bool FortranOrder, long[] Shape, long DataOffset);

    /// <summary>Reads a float32 ('&lt;f4') array of the given rank; <paramref name="shapeName"/> (e.g. "[rows, vocab]") is used in errors.</summary>
    public static NpyArray<float> ReadFloat32(string path, int rank, string shapeName) => Read<float>(path, "<f4", rank, shapeName);

    /// <summary>Reads an int32 ('&lt;i4') array of the given rank.</summary>
    public static NpyArray<int> ReadInt32(string path, int rank, string shapeName) => Read<int>(path, "<i4", rank, shapeName);

    private static NpyArray<T> Read<T>(string path, string descr, int rank, string shapeName) where T : unmanaged
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        Header header = ReadHeader(stream, path);
        if (header.Descr != descr)
            throw new NpyFormatException(path, $"dtype is '{header.Descr}'{DescribeDtype(header.Descr)}; expected '{descr}'{DescribeDtype(descr)}.");
        if (header.FortranOrder)
            throw new NpyFormatException(path, "fortran_order is True (column-major); only C-order arrays are supported (save np.ascontiguousarray(a)).");
        if (header.Shape.Length != rank)
            throw new NpyFormatException(path, $"expected a {rank}-D array {shapeName}, got shape {FormatShape(header.Shape)} ({header.Shape.Length}-D).");

        long count = 1;
        foreach (long d in header.Shape)
        {
            if (d > int.MaxValue)
                throw new NpyFormatException(path, $"shape {FormatShape(header.Shape)} has a dimension larger than {int.MaxValue}.");
            count *= d;
            if (count > Array.MaxLength)
                throw new NpyFormatException(path, $"shape {FormatShape(header.Shape)} has more elements than an array can hold ({Array.MaxLength}).");
        }
        int elementSize = Marshal.SizeOf<T>();
        long expected = count * elementSize, actual = stream.Length - header.DataOffset;
        if (actual < expected)
            throw new NpyFormatException(path,
                $"data is truncated: shape {FormatShape(header.Shape)} of '{descr}' needs {expected} bytes after the {header.DataOffset}-byte header, the file has {actual}.");
        if (actual > expected)
            throw new NpyFormatException(path,
                $"file has {actual - expected} bytes after the data that shape {FormatShape(header.Shape)} of '{descr}' describes ({expected} bytes); the shape or dtype is wrong.");

        var data = GC.AllocateUninitializedArray<T>((int)count);
        int chunk = ChunkBytes / elementSize;
        for (int start = 0; start < data.Length; start += chunk)
        {
            var bytes = MemoryMarshal.AsBytes(data.AsSpan(start, Math.Min(chunk, data.Length - start)));
            stream.ReadExactly(bytes);
            if (!BitConverter.IsLittleEndian) ReverseEndianness(bytes, elementSize);
        }
        var shape = new int[header.Shape.Length];
        for (int i = 0; i < shape.Length; i++) shape[i] = (int)header.Shape[i];
        return new NpyArray<T>(data, shape);
    }

    /// <summary>Reads and validates the magic, version and header dict; leaves the stream at the data.</summary>
    internal static Header ReadHeader(Stream stream, string path)
    {
        Span<byte> prefix = stackalloc byte[12];
        int got = stream.ReadAtLeast(prefix[..10], 10, throwOnEndOfStream: false);
        if (got < 8 || !prefix[..6].SequenceEqual(Magic))
        {
            if (got >= 6 && prefix[..6].SequenceEqual(Magic))
                throw new NpyFormatException(path, $"file ends inside the .npy preamble ({stream.Length} bytes).");
            string first = Convert.ToHexString(prefix[..Math.Min(got, 6)]);
            throw new NpyFormatException(path,
                got == 0 ? "file is empty, not a .npy file." :
                $"not a .npy file: the magic string \\x93NUMPY is missing (first bytes: {(first.Length == 0 ? "none" : first)}).");
        }
        int major = prefix[6], minor = prefix[7];
        if (minor != 0 || major is < 1 or > 3)
            throw new NpyFormatException(path, $"unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0).");
        long headerLength;
        int preamble;
        if (major == 1)
        {
            if (got < 10) throw new NpyFormatException(path, $"file ends inside the .npy preamble ({stream.Length} bytes).");
            headerLength = BinaryPrimitives.ReadUInt16LittleEndian(prefix[8..10]);
            preamble = 10;
        }
        else
        {
            if (got < 10 || stream.ReadAtLeast(prefix[10..12], 2, throwOnEndOfStream: false) < 2)
                throw new NpyFormatException(path, $"file ends inside the .npy preamble ({stream.Length} bytes).");
            headerLength = BinaryPrimitives.ReadUInt32LittleEndian(prefix[8..12]);
            preamble = 12;
        }
        if (preamble + headerLength > stream.Length)
            throw new NpyFormatException(path,
                $"header is truncated: it declares {headerLength} bytes, the file has {stream.Length - preamble} after the preamble.");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);

        string text;
        try
        {
            text = major == 3
                ? new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(headerBytes)
                : Encoding.Latin1.GetString(headerBytes);
        }
        catch (DecoderFallbackException)
        {
            throw new NpyFormatException(path, "header is not valid UTF-8 (format version 3.0).");
        }

        Dictionary<string, object?> dict;
        try
        {
            dict = new PyLiteralParser(text).ParseHeaderDict();
        }
        catch (FormatException e)
        {
            throw new NpyFormatException(path, $"header is not a parseable dict literal: {e.Message} Header: {Abbreviate(text)}");
        }
        foreach (string key in dict.Keys)
            if (key is not ("descr" or "fortran_order" or "shape"))
                throw new NpyFormatException(path, $"header has an unexpected key '{key}' (expected 'descr', 'fortran_order', 'shape').");
        foreach (string key in (string[])["descr", "fortran_order", "shape"])
            if (!dict.ContainsKey(key))
                throw new NpyFormatException(path, $"header lacks the key '{key}'. Header: {Abbreviate(text)}");

        if (dict["descr"] is not string descr)
            throw new NpyFormatException(path, $"dtype is a structured or non-string descr ({Abbreviate(PyLiteralParser.Repr(dict["descr"]))}); only plain numeric dtypes are supported.");
        if (dict["fortran_order"] is not bool fortran)
            throw new NpyFormatException(path, $"fortran_order must be True or False, got {PyLiteralParser.Repr(dict["fortran_order"])}.");
        if (dict["shape"] is not PyTuple shapeTuple)
            throw new NpyFormatException(path, $"shape must be a tuple, got {PyLiteralParser.Repr(dict["shape"])}.");
        var shape = new long[shapeTuple.Items.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            if (shapeTuple.Items[i] is not long d || d < 0)
                throw new NpyFormatException(path, $"shape {PyLiteralParser.Repr(shapeTuple)} must hold non-negative integers.");
            shape[i] = d;
        }
        return new Header(major, minor, descr, fortran, shape, preamble + headerLength);
    }

    /// <summary>Writes a float32 array as a version 1.0 .npy file, byte-identical to np.save.</summary>
    public static void WriteFloat32(Stream stream, ReadOnlySpan<float> data, ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"shape dimensions must be ≥ 0, got {d}.", nameof(shape));
            count *= d;
        }
        if (count != data.Length)
            throw new ArgumentException($"shape ({string.Join(", ", shape.ToArray())}) holds {count} elements, data has {data.Length}.", nameof(data));
        stream.Write(BuildHeader("<f4", shape));
        for (int start = 0; start < data.Length; start += ChunkBytes / 4)
        {
            var part = data.Slice(start, Math.Min(ChunkBytes / 4, data.Length - start));
            if (BitConverter.IsLittleEndian)
            {
                stream.Write(MemoryMarshal.AsBytes(part));
            }
            else
            {
                var bytes = MemoryMarshal.AsBytes(part).ToArray();
                ReverseEndianness(bytes, 4);
                stream.Write(bytes);
            }
        }
    }

    /// <summary>Writes a float32 .npy file atomically (temporary file in the same directory, then rename).</summary>
    public static void WriteFloat32(string path, float[] data, params int[] shape) =>
        AtomicFile.Write(path, stream => WriteFloat32(stream, data, shape));

    /// <summary>
    /// The version 1.0 preamble and header np.save writes: the dict with sorted keys and Python reprs, spaces
    /// for the first axis to grow to 21 digits, then spaces up to a 64-byte boundary and a final '\n'.
    /// </summary>
    internal static byte[] BuildHeader(string descr, ReadOnlySpan<int> shape)
    {
        var dict = new StringBuilder();
        dict.Append("{'descr': '").Append(descr).Append("', 'fortran_order': False, 'shape': ");
        dict.Append(FormatShape(shape.ToArray().Select(d => (long)d).ToArray())).Append(", }");
        if (shape.Length > 0) dict.Append(' ', GrowthAxisMaxDigits - shape[0].ToString(CultureInfo.InvariantCulture).Length);
        int length = dict.Length + 1; // + '\n'
        int pad = HeaderAlign - (10 + length) % HeaderAlign;
        dict.Append(' ', pad).Append('\n');
        int headerLength = dict.Length;
        if (headerLength > ushort.MaxValue) throw new ArgumentException("shape is too long for a version 1.0 header.", nameof(shape));

        var bytes = new byte[10 + headerLength];
        Magic.CopyTo(bytes);
        bytes[6] = 1;
        bytes[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)headerLength);
        Encoding.ASCII.GetBytes(dict.ToString(), bytes.AsSpan(10));
        return bytes;
    }

    /// <summary>A shape as Python writes a tuple: (), (5,), (2, 3).</summary>
    internal static string FormatShape(IReadOnlyList<long> shape) => shape.Count switch
    {
        0 => "()",
        1 => $"({shape[0].ToString(CultureInfo.InvariantCulture)},)",
        _ => "(" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")",
    };

    private static string DescribeDtype(string descr) => descr switch
    {
        "<f4" => " (float32)",
        "<f8" => " (float64)",
        "<f2" => " (float16)",
        ">f4" => " (big-endian float32)",
        ">f8" => " (big-endian float64)",
        "<i4" => " (int32)",
        "<i8" => " (int64)",
        "<i2" => " (int16)",
        "|i1" => " (int8)",
        "|u1" => " (uint8)",
        "<u4" => " (uint32)",
        "<u8" => " (uint64)",
        "|b1" => " (bool)",
        "<V2" => " (raw 2-byte void, e.g. bfloat16 saved by ml_dtypes)",
        _ => "",
    };

    private static string Abbreviate(string text)
    {
        text = text.TrimEnd();
        return text.Length <= 120 ? text : text[..120] + "…";
    }

    private static void ReverseEndianness(Span<byte> bytes, int elementSize)
    {
        for (int i = 0; i + elementSize <= bytes.Length; i += elementSize) bytes.Slice(i, elementSize).Reverse();
    }
}

/// <summary>A Python tuple in a .npy header.</summary>
internal sealed record PyTuple(List<object?> Items);

/// <summary>A Python list in a .npy header (structured dtypes use them).</summary>
internal sealed record PyList(List<object?> Items);

/// <summary>
/// Parses the subset of Python literals a .npy header uses: dicts, tuples, lists, strings ('…' or "…"),
/// integers, True, False and None. Throws <see cref="FormatException"/> with the offending position.
/// </summary>
internal ref struct PyLiteralParser(string text)
{
    private readonly string _text = text;
    private int _pos;

    public Dictionary<string, object?> ParseHeaderDict()
    {
        SkipSpace();
        if (Peek() != '{') throw Error("expected '{'");
        var value = (Dictionary<string, object?>)ParseValue()!;
        SkipSpace();
        if (_pos != _text.Length) throw Error("unexpected text after the dict");
        return value;
    }

    private object? ParseValue()
    {
        SkipSpace();
        char c = Peek();
        switch (c)
        {
            case '{':
            {
                _pos++;
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                while (true)
                {
                    SkipSpace();
                    if (Peek() == '}') { _pos++; return dict; }
                    if (ParseValue() is not string key) throw Error("dict keys must be strings");
                    SkipSpace();
                    Expect(':');
                    if (!dict.TryAdd(key, ParseValue())) throw Error($"duplicate key '{key}'");
                    SkipSpace();
                    if (Peek() == ',') { _pos++; continue; }
                    SkipSpace();
                    if (Peek() != '}') throw Error("expected ',' or '}'");
                }
            }
            case '(':
            case '[':
            {
                _pos++;
                char close = c == '(' ? ')' : ']';
                var items = new List<object?>();
                bool sawComma = false;
                while (true)
                {
                    SkipSpace();
                    if (Peek() == close) { _pos++; break; }
                    items.Add(ParseValue());
                    SkipSpace();
                    if (Peek() == ',') { _pos++; sawComma = true; continue; }
                    if (Peek() != close) throw Error($"expected ',' or '{close}'");
                }
                if (c == '(' && items.Count == 1 && !sawComma) return items[0]; // (x) is just x
                return c == '(' ? new PyTuple(items) : new PyList(items);
            }
            case '\'':
            case '"':
            {
                _pos++;
                var sb = new StringBuilder();
                while (true)
                {
                    if (_pos >= _text.Length) throw Error("unterminated string");
                    char ch = _text[_pos++];
                    if (ch == c) return sb.ToString();
                    if (ch == '\\')
                    {
                        if (_pos >= _text.Length) throw Error("unterminated string");
                        ch = _text[_pos++];
                    }
                    sb.Append(ch);
                }
            }
            default:
            {
                if (c == '-' || char.IsAsciiDigit(c))
                {
                    int start = _pos++;
                    while (_pos < _text.Length && (char.IsAsciiDigit(_text[_pos]) || _text[_pos] == '_')) _pos++;
                    if (_pos < _text.Length && _text[_pos] == 'L') _pos++; // Python 2 long
                    string digits = _text[start.._pos].TrimEnd('L').Replace("_", "");
                    if (!long.TryParse(digits, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n))
                        throw Error($"bad integer '{digits}'");
                    return n;
                }
                foreach (var (word, value) in (ReadOnlySpan<(string, object?)>)[("True", true), ("False", false), ("None", null)])
                {
                    if (string.CompareOrdinal(_text, _pos, word, 0, word.Length) == 0 &&
                        (_pos + word.Length == _text.Length || !char.IsAsciiLetterOrDigit(_text[_pos + word.Length])))
                    {
                        _pos += word.Length;
                        return value;
                    }
                }
                throw Error(_pos >= _text.Length ? "unexpected end of header" : $"unexpected character '{c}'");
            }
        }
    }

    private readonly char Peek() => _pos < _text.Length ? _text[_pos] : '\0';

    private void SkipSpace()
    {
        while (_pos < _text.Length && char.IsWhiteSpace(_text[_pos])) _pos++;
    }

    private void Expect(char c)
    {
        if (Peek() != c) throw Error($"expected '{c}'");
        _pos++;
    }

    private readonly FormatException Error(string message) => new($"{message} at character {_pos}.");

    /// <summary>A parsed value written back as Python would print it (for error messages).</summary>
    public static string Repr(object? value) => value switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        long n => n.ToString(CultureInfo.InvariantCulture),
        string s => $"'{s}'",
        PyTuple t => t.Items.Count == 1 ? $"({Repr(t.Items[0])},)" : "(" + string.Join(", ", t.Items.Select(Repr)) + ")",
        PyList l => "[" + string.Join(", ", l.Items.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(kv => $"'{kv.Key}': {Repr(kv.Value)}")) + "}",
        _ => value.ToString() ?? "",
    };
}
