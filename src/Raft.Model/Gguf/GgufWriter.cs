using System.Runtime.InteropServices;
using System.Text;

namespace Raft.Model.Gguf;

/// <summary>
/// One tensor to write: its name, its dimensions in ggml's order (<c>ne[0]</c>, the contiguous one, first — a Hugging Face
/// matrix [out, in] is <c>[in, out]</c> here), the element type it is stored as and its values in fp32 (converted on write:
/// F16 and BF16 round to nearest even).
/// </summary>
public sealed class GgufTensor
{
    /// <summary>Describes a tensor; the data length must be the product of the dimensions.</summary>
    /// <exception cref="ArgumentException">A bad name, rank, dimension or data length (the message names it).</exception>
    public GgufTensor(string name, long[] dims, GgmlType type, float[] data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(dims);
        ArgumentNullException.ThrowIfNull(data);
        if (name.Length == 0 || Encoding.UTF8.GetByteCount(name) > GgufFormat.MaxTensorNameBytes)
            throw new ArgumentException($"tensor name \"{name}\" must be 1..{GgufFormat.MaxTensorNameBytes} UTF-8 bytes (ggml's limit).", nameof(name));
        if (dims.Length is < 1 or > GgufFormat.MaxDims)
            throw new ArgumentException($"tensor {name}: {dims.Length} dimensions, GGUF allows 1..{GgufFormat.MaxDims}.", nameof(dims));
        long n = 1;
        foreach (long d in dims)
        {
            if (d <= 0) throw new ArgumentException($"tensor {name}: dimension {d} must be > 0.", nameof(dims));
            n = checked(n * d);
        }
        if (n != data.LongLength)
            throw new ArgumentException($"tensor {name}: dimensions [{string.Join(", ", dims)}] hold {n} values, the data has {data.LongLength}.", nameof(data));
        _ = type.Size(); // throws for an unknown type
        Name = name;
        Dims = [.. dims];
        Type = type;
        Data = data;
    }

    /// <summary>The tensor's name (e.g. <c>blk.0.attn_q.weight</c>).</summary>
    public string Name { get; }
    /// <summary>Dimensions, ggml order (contiguous first).</summary>
    public long[] Dims { get; }
    /// <summary>The stored element type.</summary>
    public GgmlType Type { get; }
    /// <summary>The values (fp32, row-major over <see cref="Dims"/> reversed).</summary>
    public float[] Data { get; }
    /// <summary>Bytes the tensor takes in the file (without alignment padding).</summary>
    public long ByteCount => Data.LongLength * Type.Size();
}

/// <summary>Constants of the GGUF v3 container.</summary>
public static class GgufFormat
{
    /// <summary>"GGUF" as the little-endian u32 the file starts with.</summary>
    public const uint Magic = 0x46554747;
    /// <summary>The version this engine writes and reads.</summary>
    public const uint Version = 3;
    /// <summary>The alignment of the tensor data when <c>general.alignment</c> is absent.</summary>
    public const int DefaultAlignment = 32;
    /// <summary>The metadata key that overrides the alignment.</summary>
    public const string AlignmentKey = "general.alignment";
    /// <summary>ggml's longest tensor name (GGML_MAX_NAME 64, with the terminator).</summary>
    public const int MaxTensorNameBytes = 63;
    /// <summary>ggml's largest rank.</summary>
    public const int MaxDims = 4;
}

/// <summary>
/// Writes GGUF v3 files: the header (magic, version, tensor and metadata counts), the metadata key/value pairs in the order
/// given, the tensor infos (name, rank, dimensions, type, offset), then the tensor data, each tensor at an offset that is a
/// multiple of the alignment (<c>general.alignment</c>, default 32) from the start of the aligned data section. All
/// little-endian.
/// </summary>
public static class GgufWriter
{
    /// <summary>Writes the file atomically (a temporary file beside it, renamed over it when complete).</summary>
    public static void Write(string path, IReadOnlyList<KeyValuePair<string, GgufValue>> metadata, IReadOnlyList<GgufTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(path);
        Validate(metadata, tensors, out _);
        AtomicFile.Write(path, s => Write(s, metadata, tensors));
    }

    /// <summary>Writes the file to <paramref name="stream"/> (which need not be seekable).</summary>
    /// <exception cref="ArgumentException">A duplicate key or tensor name, a bad alignment, an empty key.</exception>
    public static void Write(Stream stream, IReadOnlyList<KeyValuePair<string, GgufValue>> metadata, IReadOnlyList<GgufTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Validate(metadata, tensors, out int alignment);
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        long position = 0;
        void Count(long n) => position += n;

        w.Write(GgufFormat.Magic); w.Write(GgufFormat.Version);
        w.Write((ulong)tensors.Count); w.Write((ulong)metadata.Count);
        Count(24);
        foreach (var (key, value) in metadata)
        {
            Count(WriteString(w, key));
            w.Write((uint)value.Type); Count(4);
            Count(WriteValue(w, value, key));
        }
        long offset = 0;
        foreach (var t in tensors)
        {
            Count(WriteString(w, t.Name));
            w.Write((uint)t.Dims.Length); Count(4);
            foreach (long d in t.Dims) { w.Write((ulong)d); Count(8); }
            w.Write((uint)t.Type); Count(4);
            w.Write((ulong)offset); Count(8);
            offset = Align(offset + t.ByteCount, alignment);
        }
        Pad(w, ref position, alignment);
        long dataStart = position;
        foreach (var t in tensors)
        {
            WriteData(w, t);
            position += t.ByteCount;
            Pad(w, ref position, alignment, dataStart);
        }
        w.Flush();
    }

    private static void Validate(IReadOnlyList<KeyValuePair<string, GgufValue>> metadata, IReadOnlyList<GgufTensor> tensors, out int alignment)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(tensors);
        alignment = GgufFormat.DefaultAlignment;
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in metadata)
        {
            if (string.IsNullOrEmpty(key)) throw new ArgumentException("a metadata key is empty.", nameof(metadata));
            ArgumentNullException.ThrowIfNull(value, key);
            if (!keys.Add(key)) throw new ArgumentException($"metadata key {key} is given twice.", nameof(metadata));
            if (key == GgufFormat.AlignmentKey)
            {
                if (value.Type != GgufValueType.UInt32 || (uint)value.Value is 0 or > 1 << 20 || ((uint)value.Value & ((uint)value.Value - 1)) != 0)
                    throw new ArgumentException($"{GgufFormat.AlignmentKey} must be a u32 power of two, got {value.Describe()} {value.Value}.", nameof(metadata));
                alignment = (int)(uint)value.Value;
            }
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
            if (!names.Add(t.Name)) throw new ArgumentException($"tensor {t.Name} is given twice.", nameof(tensors));
    }

    internal static long Align(long x, int alignment) => (x + alignment - 1) / alignment * alignment;

    private static void Pad(BinaryWriter w, ref long position, int alignment, long origin = 0)
    {
        long target = origin + Align(position - origin, alignment);
        for (; position < target; position++) w.Write((byte)0);
    }

    private static long WriteString(BinaryWriter w, string s)
    {
        byte[] b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length);
        w.Write(b);
        return 8 + b.Length;
    }

    private static long WriteValue(BinaryWriter w, GgufValue v, string key)
    {
        if (v.Type != GgufValueType.Array) return WriteScalar(w, v.Type, v.Value, key);
        if (v.ElementType == GgufValueType.Array) throw new ArgumentException($"metadata key {key}: nested arrays are not written.");
        var array = (Array)v.Value;
        w.Write((uint)v.ElementType);
        w.Write((ulong)array.Length);
        long n = 12;
        foreach (object e in array) n += WriteScalar(w, v.ElementType, e, key);
        return n;
    }

    private static long WriteScalar(BinaryWriter w, GgufValueType type, object value, string key)
    {
        try
        {
            switch (type)
            {
                case GgufValueType.UInt8: w.Write((byte)value); return 1;
                case GgufValueType.Int8: w.Write((sbyte)value); return 1;
                case GgufValueType.UInt16: w.Write((ushort)value); return 2;
                case GgufValueType.Int16: w.Write((short)value); return 2;
                case GgufValueType.UInt32: w.Write((uint)value); return 4;
                case GgufValueType.Int32: w.Write((int)value); return 4;
                case GgufValueType.Float32: w.Write((float)value); return 4;
                case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); return 1;
                case GgufValueType.String: return WriteString(w, (string)value);
                case GgufValueType.UInt64: w.Write((ulong)value); return 8;
                case GgufValueType.Int64: w.Write((long)value); return 8;
                case GgufValueType.Float64: w.Write((double)value); return 8;
                default: throw new ArgumentException($"metadata key {key}: unknown value type {(uint)type}.");
            }
        }
        catch (InvalidCastException)
        {
            throw new ArgumentException($"metadata key {key}: a {value.GetType().Name} is not a GGUF {type}.");
        }
    }

    private static void WriteData(BinaryWriter w, GgufTensor t)
    {
        const int Chunk = 1 << 16;
        var src = t.Data.AsSpan();
        switch (t.Type)
        {
            case GgmlType.F32:
                for (int i = 0; i < src.Length; i += Chunk)
                    w.Write(MemoryMarshal.AsBytes(src.Slice(i, Math.Min(Chunk, src.Length - i))));
                break;
            case GgmlType.F16:
            {
                var buf = new Half[Chunk];
                for (int i = 0; i < src.Length; i += Chunk)
                {
                    int n = Math.Min(Chunk, src.Length - i);
                    System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(src.Slice(i, n), buf.AsSpan(0, n));
                    w.Write(MemoryMarshal.AsBytes(buf.AsSpan(0, n)));
                }
                break;
            }
            case GgmlType.BF16:
            {
                var buf = new ushort[Chunk];
                for (int i = 0; i < src.Length; i += Chunk)
                {
                    int n = Math.Min(Chunk, src.Length - i);
                    SafeTensorDTypes.SingleToBFloat16(src.Slice(i, n), buf.AsSpan(0, n));
                    w.Write(MemoryMarshal.AsBytes(buf.AsSpan(0, n)));
                }
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(t), t.Type, $"tensor {t.Name}: unknown type.");
        }
    }
}
