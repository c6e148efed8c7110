using Raft.Model;
using Raft.Model.Gguf;

namespace Raft.Gguf.Tests;

/// <summary>The GGUF v3 writer and reader: round trips of every value type and tensor type, and the reader's refusals.</summary>
public class GgufFileTests
{
    private static List<KeyValuePair<string, GgufValue>> AllValueKinds(Random rng)
    {
        var strings = Enumerable.Range(0, 17).Select(i => $"tok{i}·\u2581é{rng.Next()}").Append("").ToArray();
        return
        [
            new("general.architecture", GgufValue.Str("llama")),
            new("a.u32", GgufValue.U32((uint)rng.Next())),
            new("a.i32", GgufValue.I32(-rng.Next())),
            new("a.f32", GgufValue.F32((float)rng.NextDouble())),
            new("a.bool.t", GgufValue.Bool(true)),
            new("a.bool.f", GgufValue.Bool(false)),
            new("a.u64", GgufValue.U64(ulong.MaxValue - (ulong)rng.Next())),
            new("a.strings", GgufValue.Strings(strings)),
            new("a.ints", GgufValue.Int32s(Enumerable.Range(0, 33).Select(_ => rng.Next(int.MinValue, int.MaxValue)).ToArray())),
            new("a.floats", GgufValue.Float32s(Enumerable.Range(0, 9).Select(_ => (float)Gauss.Next(rng)).ToArray())),
            new("a.empty", GgufValue.Int32s([])),
            new("a.unicode", GgufValue.Str("{% for m in messages %}<|im_start|>{{ m.role }}\n日本語{% endfor %}")),
        ];
    }

    private static float[] RandomValues(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (float)(3 * Gauss.Next(rng))).ToArray();

    [Theory]
    [InlineData(GgmlType.F32, 32u)]
    [InlineData(GgmlType.F16, 32u)]
    [InlineData(GgmlType.BF16, 32u)]
    [InlineData(GgmlType.F32, 64u)]
    public void Round_trip_keeps_metadata_order_and_values_and_tensor_data(GgmlType type, uint alignment)
    {
        var rng = new Random(1234 + (int)type + (int)alignment);
        var md = AllValueKinds(rng);
        if (alignment != GgufFormat.DefaultAlignment) md.Add(new(GgufFormat.AlignmentKey, GgufValue.U32(alignment)));
        // odd sizes so that every tensor but the last needs alignment padding
        var tensors = new List<GgufTensor>
        {
            new("token_embd.weight", [7, 13], type, RandomValues(rng, 91)),
            new("blk.0.attn_norm.weight", [7], GgmlType.F32, RandomValues(rng, 7)),
            new("blk.0.ffn_up.weight", [5, 3, 2], type, RandomValues(rng, 30)),
            new("x", [1], type, RandomValues(rng, 1)),
        };
        using var dir = new TempDirectory();
        string path = dir.File("m.gguf");
        GgufWriter.Write(path, md, tensors);

        var r = GgufReader.Open(path);
        Assert.Equal(3u, r.Version);
        Assert.Equal((int)alignment, r.Alignment);
        Assert.Equal(0, r.DataOffset % alignment);
        Assert.Equal(md.Select(kv => kv.Key), r.Metadata.Select(kv => kv.Key));
        foreach (var (key, expected) in md)
        {
            var actual = r[key];
            Assert.Equal(expected.Type, actual.Type);
            if (expected.Type == GgufValueType.Array)
            {
                Assert.Equal(expected.ElementType, actual.ElementType);
                Assert.Equal(((Array)expected.Value).Cast<object>(), ((Array)actual.Value).Cast<object>());
            }
            else Assert.Equal(expected.Value, actual.Value);
        }
        Assert.Equal(tensors.Select(t => t.Name), r.Tensors.Select(t => t.Name));
        foreach (var t in tensors)
        {
            Assert.True(r.TryGetTensor(t.Name, out var info));
            Assert.Equal(t.Dims, info.Dims);
            Assert.Equal(t.Type, info.Type);
            Assert.Equal(0, info.Offset % alignment);
            float[] back = r.ReadTensor(t.Name);
            for (int i = 0; i < back.Length; i++)
            {
                // the stored value is the input rounded to the type (nearest even), read back exactly
                float expected = t.Type switch
                {
                    GgmlType.F32 => t.Data[i],
                    GgmlType.F16 => (float)(Half)t.Data[i],
                    _ => SafeTensorDTypes.BFloat16ToSingle(SafeTensorDTypes.SingleToBFloat16(t.Data[i])),
                };
                Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(back[i]));
                if (t.Type != GgmlType.F32) Assert.True(Math.Abs(back[i] - t.Data[i]) <= Math.Abs(t.Data[i]) * (t.Type == GgmlType.F16 ? 1e-3 : 8e-3) + 1e-4);
            }
        }
        long end = r.Tensors[^1].Offset + r.Tensors[^1].ByteCount;
        Assert.Equal(r.DataOffset + (end + alignment - 1) / alignment * alignment, new FileInfo(path).Length);
    }

    [Fact]
    public void Header_bytes_follow_the_spec_literally()
    {
        using var dir = new TempDirectory();
        string path = dir.File("h.gguf");
        GgufWriter.Write(path, [new("k", GgufValue.U32(7u))], [new("t", [2], GgmlType.F32, [1.5f, -2f])]);
        byte[] b = File.ReadAllBytes(path);
        byte[] expected =
        [
            (byte)'G', (byte)'G', (byte)'U', (byte)'F', 3, 0, 0, 0, // magic, version 3
            1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,         // tensor count, kv count
            1, 0, 0, 0, 0, 0, 0, 0, (byte)'k', 4, 0, 0, 0, 7, 0, 0, 0, // "k": u32 7
            1, 0, 0, 0, 0, 0, 0, 0, (byte)'t', 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // "t", 1 dim, ne0 = 2, F32
            0, 0, 0, 0, 0, 0, 0, 0,                                 // offset 0
        ];
        Assert.Equal(expected, b.AsSpan(0, expected.Length).ToArray());
        Assert.Equal(74, expected.Length);
        Assert.All(b[74..96], x => Assert.Equal(0, x)); // the header padded to the 32-byte alignment
        Assert.Equal(1.5f, BitConverter.ToSingle(b, 96));
        Assert.Equal(-2f, BitConverter.ToSingle(b, 100));
        Assert.Equal(128, b.Length); // 8 data bytes padded to 32
    }

    [Fact]
    public void Reader_refuses_bad_magic_version_truncation_and_unknown_types_naming_the_file()
    {
        using var dir = new TempDirectory();
        string good = dir.File("g.gguf");
        GgufWriter.Write(good, [new("general.architecture", GgufValue.Str("llama"))], [new("t", [4, 4], GgmlType.F32, new float[16])]);
        byte[] bytes = File.ReadAllBytes(good);

        void Expect(byte[] data, string fragment)
        {
            string p = dir.File($"bad-{Guid.NewGuid():N}.gguf");
            File.WriteAllBytes(p, data);
            var e = Assert.Throws<InvalidDataException>(() => GgufReader.Open(p));
            Assert.Contains(p, e.Message);
            Assert.Contains(fragment, e.Message);
        }
        var m = (byte[])bytes.Clone(); m[0] = (byte)'X';
        Expect(m, "not a GGUF file");
        var v = (byte[])bytes.Clone(); v[4] = 2;
        Expect(v, "version 2");
        Expect(bytes[..^8], "truncated");
        Expect(bytes[..40], "truncated");
        // the tensor's type field: after the header (24), the kv ("general.architecture" string kv = 8+20+4+8+5 = 45), name (8+1), rank (4), dims (16)
        var t = (byte[])bytes.Clone(); t[24 + 45 + 9 + 4 + 16] = 2; // Q4_0
        Expect(t, "ggml type 2");
        var k = (byte[])bytes.Clone(); k[24 + 8 + 20] = 99; // the kv's value type
        Expect(k, "unknown value type 99");
    }

    [Fact]
    public void Writer_refuses_duplicates_bad_shapes_and_alignment()
    {
        Assert.Contains("given twice", Assert.Throws<ArgumentException>(() =>
            GgufWriter.Write(Stream.Null, [new("a", GgufValue.U32(1u)), new("a", GgufValue.U32(2u))], [])).Message);
        Assert.Contains("tensor t is given twice", Assert.Throws<ArgumentException>(() =>
            GgufWriter.Write(Stream.Null, [], [new("t", [1], GgmlType.F32, [0f]), new("t", [1], GgmlType.F32, [0f])])).Message);
        Assert.Contains("hold 6 values, the data has 5", Assert.Throws<ArgumentException>(() => new GgufTensor("t", [2, 3], GgmlType.F32, new float[5])).Message);
        Assert.Contains("5 dimensions", Assert.Throws<ArgumentException>(() => new GgufTensor("t", [1, 1, 1, 1, 1], GgmlType.F32, new float[1])).Message);
        Assert.Contains("63", Assert.Throws<ArgumentException>(() => new GgufTensor(new string('n', 64), [1], GgmlType.F32, new float[1])).Message);
        Assert.Contains(GgufFormat.AlignmentKey, Assert.Throws<ArgumentException>(() =>
            GgufWriter.Write(Stream.Null, [new(GgufFormat.AlignmentKey, GgufValue.U32(24u))], [])).Message);
    }

    [Fact]
    public void Failed_write_leaves_an_existing_file_untouched()
    {
        using var dir = new TempDirectory();
        string path = dir.File("keep.gguf");
        File.WriteAllText(path, "old");
        Assert.Throws<ArgumentException>(() =>
            GgufWriter.Write(path, [new("a", GgufValue.U32(1u)), new("a", GgufValue.U32(1u))], []));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(dir.Path));
    }
}
