using System.Buffers.Binary;
using CsCheck;

namespace Raft.Teacher.Tests;

/// <summary>
/// Mutation tests of the teacher cache reader (#19): a valid cache is truncated, bit-flipped or given a huge entry count,
/// row count, V or K; <see cref="TeacherCacheFile.Read"/> either returns entries that hold what the format promises (every
/// index in 0..V−1, every probability in [0, 1], no more values than the file's bytes) or throws
/// <see cref="InvalidDataException"/> naming the file, never another exception type, within <see cref="FuzzBounds.Timeout"/>
/// and 4 × the file's bytes of allocation.
/// </summary>
public class TeacherCacheFuzzTests
{
    private const int HeaderBytes = 32;

    private static byte[] ValidFile(TempDirectory dir)
    {
        var rng = new Random(5);
        TeacherTopK Entry(int rows)
        {
            var idx = new int[rows * 3];
            var probs = new float[rows * 3];
            for (int i = 0; i < idx.Length; i++) { idx[i] = rng.Next(11); probs[i] = (float)rng.NextDouble(); }
            return new TeacherTopK(rows, 3, idx, probs);
        }
        string path = dir.File("valid.cache");
        TeacherCacheFile.Write(path, new TeacherCacheHeader(11, 3, 1.5f), [Entry(2), Entry(0), Entry(4)]);
        return File.ReadAllBytes(path);
    }

    private static void Read(TempDirectory dir, string what, byte[] bytes)
    {
        string path = dir.File("mutant.cache");
        File.WriteAllBytes(path, bytes);
        (TeacherCacheHeader Header, IReadOnlyList<TeacherTopK> Entries)? read = null;
        try { FuzzBounds.Run(what, bytes.Length, () => read = TeacherCacheFile.Read(path)); }
        catch (InvalidDataException e)
        {
            Assert.Contains(path, e.Message);
            return;
        }
        // checked outside the allocation bound (the asserts allocate)
        var (header, entries) = read!.Value;
        long values = 0;
        foreach (var t in entries)
        {
            values += t.Indices.Length;
            Assert.All(t.Indices, i => Assert.InRange(i, 0, header.VocabSize - 1));
            Assert.All(t.Probs, p => Assert.InRange(p, 0f, 1f));
        }
        Assert.True(values * 8 <= bytes.Length, $"{what}: {values} values from {bytes.Length} bytes");
    }

    private static byte[] With(byte[] valid, int offset, long value, int size)
    {
        var bytes = (byte[])valid.Clone();
        if (size == 8) BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(offset), value);
        else BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(offset), (int)value);
        return bytes;
    }

    [Fact]
    public void The_valid_cache_reads()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir);
        Read(dir, "valid", valid);
        File.WriteAllBytes(dir.File("mutant.cache"), valid);
        Assert.Equal(3, TeacherCacheFile.Read(dir.File("mutant.cache")).Entries.Count);
    }

    [Fact]
    public void Finding_a_flipped_probability_is_refused_by_the_file_name()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir);
        // the first entry's first probability (after the header, its rows and its 2 × 3 indices) made NaN, then negative:
        // both were read as they were, into the loss
        int at = HeaderBytes + 4 + 2 * 3 * 4;
        foreach (float bad in (float[])[float.NaN, -0.5f, 2f])
        {
            var bytes = (byte[])valid.Clone();
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(at), bad);
            string path = dir.File("bad.cache");
            File.WriteAllBytes(path, bytes);
            var e = Assert.Throws<InvalidDataException>(() => TeacherCacheFile.Read(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("probability [0, 0]", e.Message);
        }
    }

    [Fact]
    public void Truncations_and_bit_flips_give_a_typed_error_naming_the_file()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir);
        Gen.Int[0, valid.Length - 1].Sample(n => Read(dir, $"cache[..{n}]", valid[..n]), iter: 200, threads: 1);
        Gen.Int[0, valid.Length * 8 - 1].Array[1, 6].Sample(flips =>
        {
            var bytes = (byte[])valid.Clone();
            foreach (int bit in flips) bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            Read(dir, $"cache bits {string.Join(",", flips)}", bytes);
        }, iter: 500, threads: 1);
    }

    [Fact]
    public void Huge_counts_and_sizes_are_refused_without_allocating_them()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir);
        // the entry count (offset 24), the first entry's rows (offset 32), V (12) and K (16)
        Gen.Long.Sample(count => Read(dir, $"entry count {count}", With(valid, 24, count, 8)), iter: 200, threads: 1);
        Gen.Int.Sample(rows => Read(dir, $"rows {rows}", With(valid, HeaderBytes, rows, 4)), iter: 200, threads: 1);
        Gen.Select(Gen.Int, Gen.Int).Sample((v, k) => Read(dir, $"V {v}, K {k}", With(With(valid, 12, v, 4), 16, k, 4)), iter: 200, threads: 1);
        // a count that the bytes could hold if every entry were empty: zero-row entries, as many as fit
        Gen.Int[0, 20000].Sample(n =>
        {
            var bytes = new byte[HeaderBytes + 4 * n];
            valid.AsSpan(0, HeaderBytes).CopyTo(bytes);
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(24), n);
            Read(dir, $"{n} empty entries", bytes);
        }, iter: 30, threads: 1);
    }
}
