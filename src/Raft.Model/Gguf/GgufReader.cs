using System.Runtime.InteropServices;
using System.Text;

namespace Raft.Model.Gguf;

/// <summary>A tensor's entry in a GGUF file: name, dimensions (ggml order), type and data offset (relative to the data section).</summary>
public sealed record GgufTensorInfo(string Name, long[] Dims, GgmlType Type, long Offset)
{
    /// <summary>Number of values.</summary>
    public long ElementCount => Dims.Aggregate(1L, (a, b) => checked(a * b));
    /// <summary>Bytes of data.</summary>
    public long ByteCount => checked(ElementCount * Type.Size());
}

/// <summary>
/// Reads a GGUF v3 file written with F32, F16 or BF16 tensors: the metadata (every value type of the format) and the
/// tensor infos at open, the tensor data on request (converted to fp32). A wrong magic or version, a truncated file, an
/// unknown value or tensor type, a tensor whose data lies outside the file or overlaps another, or a duplicate key or
/// name raises an <see cref="InvalidDataException"/> naming the file and what is wrong.
/// </summary>
public sealed class GgufReader
{
    private readonly Dictionary<string, GgufValue> _metadata = new(StringComparer.Ordinal);
    private readonly List<KeyValuePair<string, GgufValue>> _metadataList = [];
    private readonly Dictionary<string, GgufTensorInfo> _tensors = new(StringComparer.Ordinal);
    private readonly List<GgufTensorInfo> _tensorList = [];

    private GgufReader(string path) => Path = path;

    /// <summary>The file's full path.</summary>
    public string Path { get; }
    /// <summary>The file's version (always 3 once opened).</summary>
    public uint Version { get; private set; }
    /// <summary>The alignment of the data section.</summary>
    public int Alignment { get; private set; }
    /// <summary>Where the data section starts in the file.</summary>
    public long DataOffset { get; private set; }
    /// <summary>The metadata, in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata => _metadataList;
    /// <summary>The tensor infos, in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors => _tensorList;

    /// <summary>A metadata value; throws <see cref="KeyNotFoundException"/> naming the key and the file.</summary>
    public GgufValue this[string key] => _metadata.TryGetValue(key, out var v) ? v
        : throw new KeyNotFoundException($"{Path}: no metadata key {key}.");

    /// <summary>Looks a metadata value up.</summary>
    public bool TryGet(string key, out GgufValue value) => _metadata.TryGetValue(key, out value!);

    /// <summary>Looks a tensor info up.</summary>
    public bool TryGetTensor(string name, out GgufTensorInfo info) => _tensors.TryGetValue(name, out info!);

    /// <summary>Opens and parses the header of <paramref name="path"/>.</summary>
    public static GgufReader Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var r = new GgufReader(System.IO.Path.GetFullPath(path));
        using var f = new FileStream(r.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var br = new BinaryReader(f, Encoding.UTF8, leaveOpen: true);
        try
        {
            r.Parse(br, f.Length);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"{r.Path}: the file ends inside the GGUF header (truncated).");
        }
        return r;
    }

    private void Parse(BinaryReader br, long fileLength)
    {
        uint magic = br.ReadUInt32();
        if (magic != GgufFormat.Magic) throw new InvalidDataException($"{Path}: not a GGUF file (magic 0x{magic:X8}, expected \"GGUF\").");
        Version = br.ReadUInt32();
        if (Version != GgufFormat.Version) throw new InvalidDataException($"{Path}: GGUF version {Version}, only version {GgufFormat.Version} is read.");
        ulong tensorCount = br.ReadUInt64(), kvCount = br.ReadUInt64();
        // every entry takes more than 8 bytes, so a count past the file's length is corrupt
        if (tensorCount > (ulong)fileLength / 8 || kvCount > (ulong)fileLength / 8)
            throw new InvalidDataException($"{Path}: {tensorCount} tensors and {kvCount} metadata entries cannot fit in {fileLength} bytes.");
        for (ulong i = 0; i < kvCount; i++)
        {
            string key = ReadString(br, fileLength, $"metadata key {i}");
            var type = (GgufValueType)br.ReadUInt32();
            var value = ReadValue(br, type, fileLength, key);
            if (!_metadata.TryAdd(key, value)) throw new InvalidDataException($"{Path}: metadata key {key} appears twice.");
            _metadataList.Add(new(key, value));
        }
        Alignment = GgufFormat.DefaultAlignment;
        if (_metadata.TryGetValue(GgufFormat.AlignmentKey, out var a))
        {
            if (a.Type != GgufValueType.UInt32 || (uint)a.Value is 0 or > 1 << 20 || ((uint)a.Value & ((uint)a.Value - 1)) != 0)
                throw new InvalidDataException($"{Path}: {GgufFormat.AlignmentKey} must be a u32 power of two, got {a.Describe()} {a.Value}.");
            Alignment = (int)(uint)a.Value;
        }
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = ReadString(br, fileLength, $"tensor name {i}");
            uint rank = br.ReadUInt32();
            if (rank is < 1 or > GgufFormat.MaxDims) throw new InvalidDataException($"{Path}: tensor {name} has {rank} dimensions (1..{GgufFormat.MaxDims}).");
            var dims = new long[rank];
            for (int d = 0; d < rank; d++)
            {
                ulong v = br.ReadUInt64();
                if (v == 0 || v > (ulong)fileLength) throw new InvalidDataException($"{Path}: tensor {name} has dimension {v}.");
                dims[d] = (long)v;
            }
            uint type = br.ReadUInt32();
            if (!GgmlTypes.IsKnown(type)) throw new InvalidDataException($"{Path}: tensor {name} has ggml type {type}; only F32 (0), F16 (1) and BF16 (30) are read.");
            ulong offset = br.ReadUInt64();
            if (offset > (ulong)fileLength) throw new InvalidDataException($"{Path}: tensor {name} starts at data offset {offset}, past the end of the {fileLength}-byte file.");
            if (offset % (ulong)Alignment != 0) throw new InvalidDataException($"{Path}: tensor {name} starts at data offset {offset}, not a multiple of the alignment {Alignment}.");
            var info = new GgufTensorInfo(name, dims, (GgmlType)type, (long)offset);
            if (!_tensors.TryAdd(name, info)) throw new InvalidDataException($"{Path}: tensor {name} appears twice.");
            _tensorList.Add(info);
        }
        DataOffset = GgufWriter.Align(br.BaseStream.Position, Alignment);
        long dataLength = fileLength - DataOffset;
        var byOffset = _tensorList.OrderBy(t => t.Offset).ToList();
        for (int i = 0; i < byOffset.Count; i++)
        {
            var t = byOffset[i];
            long end;
            try { end = checked(t.Offset + t.ByteCount); }
            catch (OverflowException) { throw new InvalidDataException($"{Path}: tensor {t.Name} is too large."); }
            if (end > dataLength)
                throw new InvalidDataException($"{Path}: tensor {t.Name} needs data bytes [{t.Offset}, {end}), the data section holds {Math.Max(0, dataLength)} (truncated).");
            if (i + 1 < byOffset.Count && end > byOffset[i + 1].Offset)
                throw new InvalidDataException($"{Path}: tensors {t.Name} and {byOffset[i + 1].Name} overlap.");
        }
    }

    private string ReadString(BinaryReader br, long fileLength, string what)
    {
        ulong n = br.ReadUInt64();
        if (n > (ulong)(fileLength - br.BaseStream.Position)) throw new InvalidDataException($"{Path}: {what}: a string of {n} bytes runs past the end of the file (truncated).");
        byte[] b = br.ReadBytes((int)n);
        if (b.Length != (int)n) throw new EndOfStreamException();
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(b); }
        catch (DecoderFallbackException) { throw new InvalidDataException($"{Path}: {what} is not valid UTF-8."); }
    }

    private GgufValue ReadValue(BinaryReader br, GgufValueType type, long fileLength, string key)
    {
        if (type != GgufValueType.Array) return GgufValue.Scalar(type, ReadScalar(br, type, fileLength, key));
        var et = (GgufValueType)br.ReadUInt32();
        ulong n = br.ReadUInt64();
        if (et == GgufValueType.Array) throw new InvalidDataException($"{Path}: metadata key {key}: nested arrays are not read.");
        // each element takes at least its size (a string its u64 length): a count the bytes left cannot hold is refused
        // before the array is allocated
        ulong least = et switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
            _ => throw new InvalidDataException($"{Path}: metadata key {key}: unknown array element type {(uint)et}."),
        };
        if (n > (ulong)(fileLength - br.BaseStream.Position) / least)
            throw new InvalidDataException($"{Path}: metadata key {key}: an array of {n} {et} elements runs past the end of the file (truncated).");
        int count = (int)n;
        // typed loops: Array.SetValue would box every element (24 bytes for a one-byte value)
        Array array = et switch
        {
            GgufValueType.UInt8 => Fill(new byte[count], br.ReadByte),
            GgufValueType.Int8 => Fill(new sbyte[count], br.ReadSByte),
            GgufValueType.UInt16 => Fill(new ushort[count], br.ReadUInt16),
            GgufValueType.Int16 => Fill(new short[count], br.ReadInt16),
            GgufValueType.UInt32 => Fill(new uint[count], br.ReadUInt32),
            GgufValueType.Int32 => Fill(new int[count], br.ReadInt32),
            GgufValueType.Float32 => Fill(new float[count], br.ReadSingle),
            GgufValueType.Bool => Fill(new bool[count], () => ReadBool(br, key)),
            GgufValueType.String => Fill(new string[count], () => ReadString(br, fileLength, $"metadata key {key}")),
            GgufValueType.UInt64 => Fill(new ulong[count], br.ReadUInt64),
            GgufValueType.Int64 => Fill(new long[count], br.ReadInt64),
            _ => Fill(new double[count], br.ReadDouble),
        };
        return GgufValue.ArrayOf(et, array);
    }

    private bool ReadBool(BinaryReader br, string key) => br.ReadByte() switch
    {
        0 => false, 1 => true,
        var b => throw new InvalidDataException($"{Path}: metadata key {key}: bool byte {b} is neither 0 nor 1."),
    };

    private static T[] Fill<T>(T[] array, Func<T> read)
    {
        for (int i = 0; i < array.Length; i++) array[i] = read();
        return array;
    }

    private object ReadScalar(BinaryReader br, GgufValueType type, long fileLength, string key) => type switch
    {
        GgufValueType.UInt8 => br.ReadByte(),
        GgufValueType.Int8 => br.ReadSByte(),
        GgufValueType.UInt16 => br.ReadUInt16(),
        GgufValueType.Int16 => br.ReadInt16(),
        GgufValueType.UInt32 => br.ReadUInt32(),
        GgufValueType.Int32 => br.ReadInt32(),
        GgufValueType.Float32 => br.ReadSingle(),
        GgufValueType.Bool => ReadBool(br, key),
        GgufValueType.String => ReadString(br, fileLength, $"metadata key {key}"),
        GgufValueType.UInt64 => br.ReadUInt64(),
        GgufValueType.Int64 => br.ReadInt64(),
        GgufValueType.Float64 => br.ReadDouble(),
        _ => throw new InvalidDataException($"{Path}: metadata key {key}: unknown value type {(uint)type}."),
    };

    /// <summary>A tensor's values converted to fp32; throws <see cref="KeyNotFoundException"/> naming it when absent.</summary>
    public float[] ReadTensor(string name)
    {
        if (!_tensors.TryGetValue(name, out var info)) throw new KeyNotFoundException($"{Path}: no tensor {name}.");
        var result = new float[info.ElementCount];
        var bytes = new byte[info.ByteCount];
        using (var f = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
        {
            f.Position = DataOffset + info.Offset;
            f.ReadExactly(bytes);
        }
        switch (info.Type)
        {
            case GgmlType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result); break;
            case GgmlType.F16: System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), result); break;
            case GgmlType.BF16: SafeTensorDTypes.BFloat16ToSingle(MemoryMarshal.Cast<byte, ushort>(bytes), result); break;
        }
        return result;
    }
}
