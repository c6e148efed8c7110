using Raft.Kernels;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Raft.Model;

namespace Raft.Teacher;

/// <summary>What every entry of a teacher cache shares: vocabulary size V, kept entries K, temperature τ.</summary>
/// <param name="VocabSize">V, the teacher's vocabulary size (every index is in 0..V−1).</param>
/// <param name="K">Kept entries per row.</param>
/// <param name="Temperature">τ the probabilities were softmaxed at.</param>
public sealed record TeacherCacheHeader(int VocabSize, int K, float Temperature)
{
    /// <summary>The header of a cache scored with <paramref name="settings"/> (its K and τ; the loss kind and β do not change the cached probabilities).</summary>
    public static TeacherCacheHeader For(int vocabSize, DistillSettings settings) => new(vocabSize, settings.TopK, settings.Temperature);

    /// <summary>K and τ as the settings the teacher scored with (the loss kind and β are the loss's, not stored).</summary>
    public DistillSettings Settings => new(K, Temperature);

    /// <summary>Throws <see cref="ArgumentException"/> naming the field when V ≤ 0, or K and τ fail <see cref="DistillSettings.Validate"/>.</summary>
    public void Validate()
    {
        if (VocabSize <= 0) throw new ArgumentException($"VocabSize must be > 0, got {VocabSize}.", nameof(VocabSize));
        Settings.Validate(VocabSize);
    }
}

/// <summary>
/// The offline teacher cache: the teacher's top-K for a list of examples, saved once and read by later runs instead
/// of running the teacher. Layout (little-endian): magic <c>RAFTTKC\0</c> (8 bytes), format version (int32),
/// V (int32), K (int32), τ (float32), entry count (int64); then per entry its rows (int32), indices int32[rows·K],
/// probabilities float32[rows·K]. Written atomically (temporary file, then rename); a truncated file, another
/// file type, another version, trailing bytes, an index outside the vocabulary or a probability outside [0, 1] raise
/// <see cref="InvalidDataException"/> naming the file.
/// </summary>
public static class TeacherCacheFile
{
    /// <summary>The format version this code writes and reads.</summary>
    public const int FormatVersion = 1;
    private static ReadOnlySpan<byte> Magic => "RAFTTKC\0"u8;
    private const int HeaderBytes = 8 + 4 + 4 + 4 + 4 + 8;

    /// <summary>Writes <paramref name="entries"/> (each with K = header.K and indices in 0..V−1) to <paramref name="path"/>.</summary>
    public static void Write(string path, TeacherCacheHeader header, IReadOnlyList<TeacherTopK> entries)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(entries);
        header.Validate();
        for (int e = 0; e < entries.Count; e++)
        {
            var t = entries[e] ?? throw new ArgumentException($"entries[{e}] is null.", nameof(entries));
            if (t.K != header.K) throw new ArgumentException($"entries[{e}] has K = {t.K}, the header says {header.K}.", nameof(entries));
            for (int i = 0; i < t.Indices.Length; i++)
                if ((uint)t.Indices[i] >= (uint)header.VocabSize)
                    throw new ArgumentException($"entries[{e}] index [{i / t.K}, {i % t.K}] = {t.Indices[i]} is outside 0..{header.VocabSize - 1}.", nameof(entries));
            for (int i = 0; i < t.Probs.Length; i++)
                if (!(t.Probs[i] >= 0f && t.Probs[i] <= 1f))
                    throw new ArgumentException($"entries[{e}] probability [{i / t.K}, {i % t.K}] = {t.Probs[i]} is not in [0, 1].", nameof(entries));
        }
        AtomicFile.Write(path, s =>
        {
            Span<byte> h = stackalloc byte[HeaderBytes];
            Magic.CopyTo(h);
            BinaryPrimitives.WriteInt32LittleEndian(h[8..], FormatVersion);
            BinaryPrimitives.WriteInt32LittleEndian(h[12..], header.VocabSize);
            BinaryPrimitives.WriteInt32LittleEndian(h[16..], header.K);
            BinaryPrimitives.WriteSingleLittleEndian(h[20..], header.Temperature);
            BinaryPrimitives.WriteInt64LittleEndian(h[24..], entries.Count);
            s.Write(h);
            Span<byte> rows = stackalloc byte[4];
            foreach (var t in entries)
            {
                BinaryPrimitives.WriteInt32LittleEndian(rows, t.Rows);
                s.Write(rows);
                s.Write(MemoryMarshal.AsBytes(t.Indices.AsSpan()));
                s.Write(MemoryMarshal.AsBytes(t.Probs.AsSpan()));
            }
        });
    }

    /// <summary>
    /// Reads a cache. When <paramref name="expected"/> is given, a header with another V, K or τ is an error naming both.
    /// </summary>
    public static (TeacherCacheHeader Header, IReadOnlyList<TeacherTopK> Entries) Read(string path, TeacherCacheHeader? expected = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("the teacher cache is read on little-endian machines only.");
        using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        long length = s.Length;
        Span<byte> h = stackalloc byte[HeaderBytes];
        if (length < HeaderBytes || !Magic.SequenceEqual(ReadHeader(s, h)[..8]))
            throw new InvalidDataException(length >= 8 && HasMagicPrefix(path)
                ? $"{path}: truncated teacher cache header ({length} bytes, needs {HeaderBytes})."
                : $"{path}: not a RAFT teacher cache (bad magic).");
        int version = BinaryPrimitives.ReadInt32LittleEndian(h[8..]);
        if (version != FormatVersion)
            throw new InvalidDataException($"{path}: teacher cache format version {version}, this build reads version {FormatVersion}.");
        var header = new TeacherCacheHeader(BinaryPrimitives.ReadInt32LittleEndian(h[12..]), BinaryPrimitives.ReadInt32LittleEndian(h[16..]),
            BinaryPrimitives.ReadSingleLittleEndian(h[20..]));
        try { header.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: bad teacher cache header: {e.Message}", e); }
        if (expected != null && expected != header)
            throw new InvalidDataException($"{path}: the cache holds V = {header.VocabSize}, K = {header.K}, τ = {header.Temperature}; expected V = {expected.VocabSize}, K = {expected.K}, τ = {expected.Temperature}.");
        long count = BinaryPrimitives.ReadInt64LittleEndian(h[24..]);
        if (count < 0 || count > (length - HeaderBytes) / 4)
            throw new InvalidDataException($"{path}: the header announces {count} entries, which {length} bytes cannot hold (truncated or corrupt).");
        int k = header.K;
        var entries = new List<TeacherTopK>((int)count);
        Span<byte> rowBytes = stackalloc byte[4];
        TeacherTopK? empty = null;
        for (long e = 0; e < count; e++)
        {
            if (length - s.Position < 4)
                throw new InvalidDataException($"{path}: truncated at entry {e} of {count} (offset {s.Position}).");
            s.ReadExactly(rowBytes);
            int rows = BinaryPrimitives.ReadInt32LittleEndian(rowBytes);
            long need = (long)rows * k * 8;
            if (rows < 0 || need > length - s.Position || (long)rows * k > Array.MaxLength)
                throw new InvalidDataException($"{path}: entry {e} of {count} needs {rows} rows × K {k} ({need} bytes), only {length - s.Position} remain (truncated or corrupt).");
            if (rows == 0)
            {
                // one shared empty entry: a file of 4-byte empty entries must not cost 90 bytes each
                entries.Add(empty ??= new TeacherTopK(0, k, [], []));
                continue;
            }
            var idx = new int[rows * k];
            var probs = new float[rows * k];
            s.ReadExactly(MemoryMarshal.AsBytes(idx.AsSpan()));
            s.ReadExactly(MemoryMarshal.AsBytes(probs.AsSpan()));
            for (int i = 0; i < idx.Length; i++)
                if ((uint)idx[i] >= (uint)header.VocabSize)
                    throw new InvalidDataException($"{path}: entry {e} index [{i / k}, {i % k}] = {idx[i]} is outside 0..{header.VocabSize - 1}.");
            // a damaged probability (NaN, negative, above 1) would train silently on garbage
            for (int i = 0; i < probs.Length; i++)
                if (!(probs[i] >= 0f && probs[i] <= 1f))
                    throw new InvalidDataException($"{path}: entry {e} probability [{i / k}, {i % k}] = {probs[i]} is not in [0, 1] (corrupt).");
            entries.Add(new TeacherTopK(rows, k, idx, probs));
        }
        if (s.Position != length)
            throw new InvalidDataException($"{path}: {length - s.Position} bytes after the last of {count} entries.");
        return (header, entries);
    }

    private static Span<byte> ReadHeader(Stream s, Span<byte> h)
    {
        s.ReadExactly(h);
        return h;
    }

    private static bool HasMagicPrefix(string path)
    {
        Span<byte> m = stackalloc byte[8];
        using var f = File.OpenRead(path);
        return f.Read(m) == 8 && Magic.SequenceEqual(m);
    }
}
