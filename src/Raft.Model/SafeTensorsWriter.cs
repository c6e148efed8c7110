using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Raft.Model;

/// <summary>
/// Writes safetensors files: the tensors in the order given, their bytes contiguous in that order, the JSON header
/// padded with spaces to a multiple of 8 bytes (so the data start 8-byte aligned). The same input always gives the
/// same bytes.
/// </summary>
public static class SafeTensorsWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> atomically (a temporary file in the same directory,
    /// flushed, then renamed over the target): a reader sees the old file or the complete new one.
    /// </summary>
    /// <param name="path">The destination file.</param>
    /// <param name="tensors">The tensors, written in this order; names must be distinct and not <c>__metadata__</c>.</param>
    /// <param name="dtype">F32 (bit-exact) or BF16 (rounded to nearest even); F16 is also accepted.</param>
    /// <param name="metadata">The header's <c>__metadata__</c>, written with its keys in ordinal order; null writes none.</param>
    public static void Write(string path, IEnumerable<Tensor> tensors, SafeTensorDType dtype = SafeTensorDType.F32,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var list = tensors.ToList();
        byte[] header = BuildHeader(list, dtype, metadata);
        AtomicFile.Write(path, s => WriteBody(s, header, list, dtype));
    }

    /// <summary>Writes a safetensors file to a stream (not atomic; see the path overload for that).</summary>
    public static void Write(Stream stream, IEnumerable<Tensor> tensors, SafeTensorDType dtype = SafeTensorDType.F32,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var list = tensors.ToList();
        WriteBody(stream, BuildHeader(list, dtype, metadata), list, dtype);
    }

    private static byte[] BuildHeader(List<Tensor> tensors, SafeTensorDType dtype, IReadOnlyDictionary<string, string>? metadata)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors writing needs a little-endian host.");
        _ = dtype.HeaderName(); // rejects values outside the enum
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            ArgumentNullException.ThrowIfNull(t, nameof(tensors));
            if (t.Name.Length == 0 || t.Name == "__metadata__")
                throw new ArgumentException($"tensor name \"{t.Name}\" is not allowed in a safetensors file.", nameof(tensors));
            if (!names.Add(t.Name)) throw new ArgumentException($"tensor {t.Name} is given twice.", nameof(tensors));
        }
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject("__metadata__");
                foreach (var kv in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(kv.Key, kv.Value);
                w.WriteEndObject();
            }
            long offset = 0;
            string dt = dtype.HeaderName();
            foreach (var t in tensors)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", dt);
                w.WriteStartArray("shape");
                foreach (int d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                long bytes = (long)t.Length * dtype.Size();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void WriteBody(Stream s, byte[] header, List<Tensor> tensors, SafeTensorDType dtype)
    {
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        s.Write(len);
        s.Write(header);
        const int Chunk = 1 << 20; // elements per write
        ushort[]? half = dtype == SafeTensorDType.F32 ? null : ArrayPool<ushort>.Shared.Rent(Chunk);
        try
        {
            foreach (var t in tensors)
            {
                for (int start = 0; start < t.Length; start += Chunk)
                {
                    var src = t.Data.AsSpan(start, Math.Min(Chunk, t.Length - start));
                    switch (dtype)
                    {
                        case SafeTensorDType.F32:
                            s.Write(MemoryMarshal.AsBytes(src));
                            break;
                        case SafeTensorDType.BF16:
                            SafeTensorDTypes.SingleToBFloat16(src, half);
                            s.Write(MemoryMarshal.AsBytes(half.AsSpan(0, src.Length)));
                            break;
                        case SafeTensorDType.F16:
                            var h = MemoryMarshal.Cast<ushort, Half>(half.AsSpan(0, src.Length));
                            System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(src, h);
                            s.Write(MemoryMarshal.AsBytes(h));
                            break;
                    }
                }
            }
        }
        finally
        {
            if (half is not null) ArrayPool<ushort>.Shared.Return(half);
        }
    }
}
