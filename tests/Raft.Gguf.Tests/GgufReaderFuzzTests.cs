using System.Buffers.Binary;
using System.Text;
using CsCheck;
using Raft.Model.Gguf;

namespace Raft.Gguf.Tests;

/// <summary>
/// Mutation tests of the GGUF reader that checks the writer (#19): a valid file (every array kind, F32/F16/BF16 tensors, one
/// of 64 Ki values so that the file is larger than the allocation slack) is truncated, bit-flipped in its header, or given
/// a huge tensor or metadata count, array count, string length, dimension or data offset; opening it and reading every
/// tensor either succeeds or throws <see cref="InvalidDataException"/> naming the file, never another exception type,
/// within <see cref="FuzzBounds.Timeout"/> and 4 × the file's bytes of allocation (the tensors read included).
/// </summary>
public class GgufReaderFuzzTests
{
    private const int BigTensor = 1 << 16;

    private static byte[] ValidFile(TempDirectory dir, out long dataOffset)
    {
        var rng = new Random(77);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble()).ToArray();
        string path = dir.File("valid.gguf");
        GgufWriter.Write(path,
        [
            new("a.ints", GgufValue.Int32s(Enumerable.Range(0, 40).ToArray())),
            new("general.architecture", GgufValue.Str("llama")),
            new("a.strings", GgufValue.Strings(["<s>", "</s>", "a", "b", "ab", ""])),
            new("a.floats", GgufValue.Float32s(Values(12))),
            new("a.u64", GgufValue.U64(42)),
            new("a.bool", GgufValue.Bool(true)),
        ],
        [
            new GgufTensor("token_embd.weight", [7, 5], GgmlType.F16, Values(35)),
            new GgufTensor("output_norm.weight", [7], GgmlType.BF16, Values(7)),
            new GgufTensor("big", [256, BigTensor / 256], GgmlType.F32, Values(BigTensor)),
            new GgufTensor("t4", [2, 2, 2, 2], GgmlType.F32, Values(16)),
        ]);
        dataOffset = GgufReader.Open(path).DataOffset;
        return File.ReadAllBytes(path);
    }

    private static void Read(TempDirectory dir, string what, byte[] bytes)
    {
        string path = Path.GetFullPath(dir.File("mutant.gguf"));
        File.WriteAllBytes(path, bytes);
        long values = -1;
        try
        {
            FuzzBounds.Run(what, bytes.Length, () =>
            {
                var r = GgufReader.Open(path);
                long n = 0;
                foreach (var t in r.Tensors) n += r.ReadTensor(t.Name).LongLength;
                values = n;
            });
        }
        catch (InvalidDataException e)
        {
            Assert.True(e.Message.Contains(path), $"{what}: the error does not name {path}: {e.Message}");
            return;
        }
        Assert.True(values * 2 <= bytes.Length, $"{what}: {values} tensor values from {bytes.Length} bytes");
    }

    /// <summary>Where the u64 length of string <paramref name="s"/> (a key or a tensor name) sits in the file.</summary>
    private static int StringAt(byte[] file, string s)
    {
        byte[] pattern = [.. BitConverter.GetBytes((ulong)Encoding.UTF8.GetByteCount(s)), .. Encoding.UTF8.GetBytes(s)];
        int at = file.AsSpan().IndexOf(pattern);
        Assert.True(at > 0, s);
        return at;
    }

    private static byte[] WithU64(byte[] valid, int at, ulong value)
    {
        var bytes = (byte[])valid.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(at), value);
        return bytes;
    }

    [Fact]
    public void The_valid_file_reads()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir, out _);
        Read(dir, "valid", valid);
    }

    [Fact]
    public void Findings_offsets_products_and_array_counts_are_checked_against_the_file()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir, out _);
        string path = Path.GetFullPath(dir.File("mutant.gguf"));
        int big = StringAt(valid, "big"), ints = StringAt(valid, "a.ints");
        InvalidDataException Refused(byte[] bytes)
        {
            File.WriteAllBytes(path, bytes);
            var e = Assert.Throws<InvalidDataException>(() =>
            {
                var r = GgufReader.Open(path);
                foreach (var t in r.Tensors) r.ReadTensor(t.Name);
            });
            Assert.Contains(path, e.Message);
            return e;
        }
        // a data offset of 2^63 became a negative long: ReadTensor threw ArgumentOutOfRangeException
        Assert.Contains("past the end", Refused(WithU64(valid, big + 8 + 3 + 4 + 16 + 4, 1UL << 63)).Message);
        // dimensions [2^16, 2^16, 2^16, 2^14] of F32 (each within the file's length): 2^64 bytes wrapped to 0 and passed
        // the data-section check, then ReadTensor threw OverflowException
        int t4 = StringAt(valid, "t4") + 8 + 2 + 4;
        var wrapped = WithU64(WithU64(WithU64(WithU64(valid, t4, 1UL << 16), t4 + 8, 1UL << 16), t4 + 16, 1UL << 16), t4 + 24, 1UL << 14);
        Assert.Contains("too large", Refused(wrapped).Message);
        // an int32 array of as many elements as the file has bytes: 4 × the file allocated, then every element boxed
        string message = Refused(WithU64(valid, ints + 8 + 6 + 4 + 4, (ulong)valid.Length / 2)).Message;
        Assert.Contains("runs past the end", message);
        Assert.Contains("Int32 elements", message);
    }

    [Fact]
    public void Truncations_and_header_bit_flips_give_a_typed_error_naming_the_file()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir, out long dataOffset);
        // cuts anywhere, most of them inside the header and the first tensors' data
        Gen.OneOf(Gen.Int[0, (int)dataOffset + 200], Gen.Int[0, valid.Length - 1]).Sample(n => Read(dir, $"gguf[..{n}]", valid[..n]), iter: 200, threads: 1);
        Gen.Int[0, (int)dataOffset * 8 - 1].Array[1, 6].Sample(flips =>
        {
            var bytes = (byte[])valid.Clone();
            foreach (int bit in flips) bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            Read(dir, $"gguf bits {string.Join(",", flips)}", bytes);
        }, iter: 500, threads: 1);
    }

    [Fact]
    public void Huge_counts_lengths_dimensions_and_offsets_are_refused_without_allocating_them()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir, out _);
        int ints = StringAt(valid, "a.ints"), strings = StringAt(valid, "a.strings"), big = StringAt(valid, "big");
        int intsCount = ints + 8 + 6 + 4 + 4, stringsCount = strings + 8 + 9 + 4 + 4;
        // u64 fields: tensor and metadata counts, a key's length, the two arrays' counts, the big tensor's 2nd dim and offset
        int[] fields = [8, 16, ints, intsCount, stringsCount, big + 8 + 3 + 4 + 8, big + 8 + 3 + 4 + 16 + 4];
        Gen.Select(Gen.Int[0, fields.Length - 1], Gen.OneOf(Gen.ULong, Gen.ULong[0, (ulong)valid.Length * 2], Gen.Const(1UL << 63), Gen.Const(ulong.MaxValue)))
            .Sample((f, value) => Read(dir, $"u64 at {fields[f]} = {value}", WithU64(valid, fields[f], value)), iter: 400, threads: 1);
        // the four dimensions of t4, each at most the file's length, their product anything up to 2^72
        int t4 = StringAt(valid, "t4") + 8 + 2 + 4;
        Gen.Int[0, 18].Array[4].Sample(logs =>
        {
            var bytes = valid;
            for (int d = 0; d < 4; d++) bytes = WithU64(bytes, t4 + 8 * d, 1UL << logs[d]);
            Read(dir, $"t4 dims 2^[{string.Join(", ", logs)}]", bytes);
        }, iter: 100, threads: 1);
    }
}
