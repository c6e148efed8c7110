using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace Raft.Model;

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">The tensor's name.</param>
/// <param name="DType">The header's dtype string ("F32", "BF16", "I64", …).</param>
/// <param name="Shape">The shape, outermost first.</param>
/// <param name="Begin">Start of its bytes, relative to the data buffer (after the header).</param>
/// <param name="End">End (exclusive) of its bytes, relative to the data buffer.</param>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements (the product of the shape).</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    /// <summary>The shape as text, e.g. [32000, 512].</summary>
    public string ShapeText => $"[{string.Join(", ", Shape)}]";
}

/// <summary>
/// A safetensors file opened for reading: the header is parsed and checked when the file is opened, the data
/// are memory-mapped and converted to fp32 only when a tensor is read. Format: an 8-byte little-endian header
/// length N, N bytes of JSON <c>{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}</c>,
/// then the data buffer that the offsets index. Every error is an <see cref="InvalidDataException"/> that names
/// the file and, where there is one, the tensor.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>The largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafeTensorInfo> _byName;

    private SafeTensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* pointer,
        long dataStart, long dataLength, List<SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path; _map = map; _view = view; _pointer = pointer; _dataStart = dataStart; DataLength = dataLength;
        Tensors = tensors; Metadata = metadata;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }
    /// <summary>The tensors, in the order of their data offsets.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }
    /// <summary>The header's <c>__metadata__</c> (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Bytes in the data buffer.</summary>
    public long DataLength { get; }

    /// <summary>Whether the file holds a tensor of that name.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The header entry of a tensor; a missing name is an <see cref="InvalidDataException"/> naming it and the file.</summary>
    public SafeTensorInfo this[string name] => _byName.TryGetValue(name, out var t) ? t
        : throw new InvalidDataException($"tensor {name} is missing from {Path}.");

    /// <summary>Opens a file, parses and checks its header (JSON, dtypes, shapes, offsets in range and not overlapping) and maps its data.</summary>
    public static SafeTensorsFile Open(string path)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors reading needs a little-endian host.");
        path = System.IO.Path.GetFullPath(path);
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* pointer = null;
        try
        {
            long length = fs.Length;
            if (length < 8)
                throw new InvalidDataException($"{path}: truncated safetensors file: {length} bytes, shorter than the 8-byte header length.");
            Span<byte> lenBytes = stackalloc byte[8];
            fs.ReadExactly(lenBytes);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
            if (headerLength > MaxHeaderBytes)
                throw new InvalidDataException($"{path}: header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit (not a safetensors file?).");
            if ((long)headerLength > length - 8)
                throw new InvalidDataException($"{path}: truncated safetensors file: the header claims {headerLength} bytes, only {length - 8} follow the length field.");
            var header = new byte[headerLength];
            fs.ReadExactly(header);
            long dataStart = 8 + (long)headerLength, dataLength = length - dataStart;
            var (tensors, metadata) = ParseHeader(path, header, dataLength);

            if (dataLength > 0)
            {
                map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
                view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
                pointer += view.PointerOffset;
            }
            else fs.Dispose();
            return new SafeTensorsFile(path, map, view, pointer, dataStart, dataLength, tensors, metadata);
        }
        catch
        {
            if (pointer != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            fs.Dispose();
            throw;
        }
    }

    private static (List<SafeTensorInfo>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        Utf8Check.Require(header, path, "the safetensors header");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.AsMemory().TrimEnd((byte)' '), new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: the safetensors header is not valid JSON ({e.Message}).", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: the safetensors header must be a JSON object, got {doc.RootElement.ValueKind}.");
            var tensors = new List<SafeTensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(p.Name)) throw new InvalidDataException($"{path}: tensor {p.Name} appears twice in the header.");
                if (p.Name == "__metadata__")
                {
                    if (p.Value.ValueKind != JsonValueKind.Object)
                        throw new InvalidDataException($"{path}: __metadata__ must be an object of strings, got {p.Value.ValueKind}.");
                    foreach (var m in p.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new InvalidDataException($"{path}: __metadata__ entry {m.Name} must be a string, got {m.Value.ValueKind}.");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                tensors.Add(ParseEntry(path, p.Name, p.Value, dataLength));
            }
            tensors.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
            for (int i = 1; i < tensors.Count; i++)
            {
                var prev = tensors[i - 1];
                var cur = tensors[i];
                if (cur.Begin < prev.End && cur.End > cur.Begin)
                    throw new InvalidDataException(
                        $"{path}: tensors {prev.Name} (data_offsets [{prev.Begin}, {prev.End}]) and {cur.Name} (data_offsets [{cur.Begin}, {cur.End}]) overlap.");
            }
            return (tensors, metadata);
        }
    }

    private static SafeTensorInfo ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        string where = $"tensor {name} in {path}";
        if (e.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{where}: header entry must be an object, got {e.ValueKind}.");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{where}: header entry has no string \"dtype\".");
        string dtype = dt.GetString()!;
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{where}: header entry has no \"shape\" array.");
        var shape = new long[sh.GetArrayLength()];
        int k = 0;
        long count = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                throw new InvalidDataException($"{where}: shape {sh.GetRawText()} must hold non-negative integers.");
            shape[k++] = v;
            try { count = checked(count * v); }
            catch (OverflowException) { throw new InvalidDataException($"{where}: shape {sh.GetRawText()} is too large."); }
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new InvalidDataException($"{where}: header entry has no \"data_offsets\" [begin, end] pair.");
        if (!off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new InvalidDataException($"{where}: data_offsets {off.GetRawText()} must be integers with 0 ≤ begin ≤ end.");
        if (end > dataLength)
            throw new InvalidDataException(
                $"{where}: data_offsets [{begin}, {end}] out of range: the data buffer holds only {dataLength} bytes (file truncated?).");
        int size = SafeTensorDTypes.SizeOfHeaderName(dtype);
        if (size > 0 && (end - begin) != count * size)
            throw new InvalidDataException(
                $"{where}: data_offsets [{begin}, {end}] span {end - begin} bytes, but dtype {dtype} with shape {sh.GetRawText()} needs {count * size}.");
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    /// <summary>
    /// The raw little-endian bytes of a tensor, straight from the mapping (valid until the file is disposed; tensors
    /// over 2 GiB must be read with <see cref="ReadInto"/>).
    /// </summary>
    public ReadOnlySpan<byte> RawBytes(string name)
    {
        var t = this[name];
        ObjectDisposedException.ThrowIf(_pointer == null && DataLength > 0, this);
        long n = t.End - t.Begin;
        if (n > int.MaxValue) throw new InvalidOperationException($"tensor {name} in {Path} has {n} bytes; read it with ReadInto.");
        return n == 0 ? [] : new ReadOnlySpan<byte>(_pointer + _dataStart + t.Begin, (int)n);
    }

    /// <summary>Converts a tensor to fp32 into <paramref name="destination"/> (one float per element). F32, F16 and BF16 are read; any other dtype is an error naming the tensor, the dtype and the file.</summary>
    public void ReadInto(string name, Span<float> destination)
    {
        var t = this[name];
        if (!SafeTensorDTypes.TryParse(t.DType, out var dtype))
            throw new InvalidDataException($"tensor {name} in {Path} has dtype {t.DType}; only F32, F16 and BF16 can be read.");
        if (destination.Length != t.ElementCount)
            throw new ArgumentException($"tensor {name} in {Path} has {t.ElementCount} elements, destination holds {destination.Length}.", nameof(destination));
        ObjectDisposedException.ThrowIf(_pointer == null && DataLength > 0, this);
        if (t.ElementCount == 0) return;
        const int Chunk = 1 << 20; // elements per conversion task
        int size = dtype.Size();
        long count = t.ElementCount;
        byte* src = _pointer + _dataStart + t.Begin;
        if (count <= Chunk)
        {
            SafeTensorDTypes.ToSingle(dtype, new ReadOnlySpan<byte>(src, (int)count * size), destination);
            return;
        }
        fixed (float* dst0 = destination)
        {
            float* dst = dst0;
            int chunks = (int)((count + Chunk - 1) / Chunk);
            Parallel.For(0, chunks, c =>
            {
                long start = (long)c * Chunk;
                int n = (int)Math.Min(Chunk, count - start);
                SafeTensorDTypes.ToSingle(dtype, new ReadOnlySpan<byte>(src + start * size, n * size), new Span<float>(dst + start, n));
            });
        }
    }

    /// <summary>Reads a tensor as fp32 with its own shape (dimensions must fit an int).</summary>
    public Tensor Read(string name)
    {
        var t = this[name];
        var shape = new int[t.Shape.Length];
        for (int i = 0; i < shape.Length; i++)
        {
            if (t.Shape[i] > int.MaxValue) throw new InvalidDataException($"tensor {name} in {Path}: dimension {t.Shape[i]} is too large.");
            shape[i] = (int)t.Shape[i];
        }
        if (t.ElementCount > Array.MaxLength) throw new InvalidDataException($"tensor {name} in {Path}: {t.ElementCount} elements do not fit one array.");
        var data = new float[t.ElementCount];
        ReadInto(name, data);
        return new Tensor(name, shape, data);
    }

    /// <summary>Reads every readable tensor of a file, in data order.</summary>
    public static TensorSet ReadAll(string path)
    {
        using var f = Open(path);
        var set = new TensorSet();
        foreach (var t in f.Tensors) set.Add(f.Read(t.Name));
        return set;
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose()
    {
        if (_pointer != null)
        {
            _pointer = null;
            _view!.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        _view?.Dispose();
        _map?.Dispose();
    }
}
