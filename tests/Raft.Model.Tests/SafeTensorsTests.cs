using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Raft.Model.Tests;

public class SafeTensorsTests
{
    /// <summary>An 8-byte little-endian length, the header text as given (no padding), then the data bytes.</summary>
    internal static byte[] HandCrafted(string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        return bytes;
    }

    [Fact]
    public void F32RoundTripIsBitExact()
    {
        using var dir = new TempDirectory();
        var rng = new Random(7);
        var a = new Tensor("a", [3, 5], Enumerable.Range(0, 15).Select(_ => (float)rng.NextDouble() * 100 - 50).ToArray());
        var special = new Tensor("special", [8], [0f, -0f, float.Epsilon, -float.Epsilon, float.MaxValue, float.NegativeInfinity,
            BitConverter.UInt32BitsToSingle(0x7FC12345), 1e-40f]);
        var empty = new Tensor("empty", [0, 4], []);
        var scalar = new Tensor("scalar", [], [42.5f]);
        var set = new TensorSet();
        foreach (var t in new[] { a, special, empty, scalar }) set.Add(t);
        string path = dir.File("x.safetensors");
        SafeTensorsWriter.Write(path, set.Tensors, metadata: new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ü" });

        using var f = SafeTensorsFile.Open(path);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal("ü", f.Metadata["note"]);
        var back = new TensorSet();
        foreach (var name in new[] { "a", "special", "empty", "scalar" }) back.Add(f.Read(name));
        TestModels.AssertBitEqual(set, back);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Fact]
    public void WriterFollowsTheFormat()
    {
        using var dir = new TempDirectory();
        string path = dir.File("w.safetensors");
        SafeTensorsWriter.Write(path, [new Tensor("b", [2], [1f, 2f]), new Tensor("a", [1, 1], [3f])]);
        var bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8);
        Assert.Equal((long)(8 + n + 12), bytes.Length);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.StartsWith("{", header);
        Assert.EndsWith("}", header.TrimEnd(' '));
        using var doc = JsonDocument.Parse(header);
        // stable order: as given, offsets contiguous in that order
        var names = doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(["b", "a"], names);
        Assert.Equal("[0,8]", doc.RootElement.GetProperty("b").GetProperty("data_offsets").GetRawText());
        Assert.Equal("[8,12]", doc.RootElement.GetProperty("a").GetProperty("data_offsets").GetRawText());
        Assert.Equal("F32", doc.RootElement.GetProperty("a").GetProperty("dtype").GetString());
        Assert.Equal(1f, BitConverter.ToSingle(bytes, 8 + (int)n));
        Assert.Equal(3f, BitConverter.ToSingle(bytes, 8 + (int)n + 8));
        // the same input gives the same bytes
        string path2 = dir.File("w2.safetensors");
        SafeTensorsWriter.Write(path2, [new Tensor("b", [2], [1f, 2f]), new Tensor("a", [1, 1], [3f])]);
        Assert.Equal(bytes, File.ReadAllBytes(path2));
    }

    [Fact]
    public void ReadsAHandCraftedFileWithF32F16AndBF16()
    {
        using var dir = new TempDirectory();
        string header = "{\"__metadata__\":{\"format\":\"pt\"}," +
            "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}," +
            "\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[8,16]}," +
            "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}";
        byte[] data =
        [
            0x80, 0x3F, 0x00, 0xC0, 0x80, 0x7F, 0x00, 0x80, // bf16: 0x3F80 = 1, 0xC000 = -2, 0x7F80 = +inf, 0x8000 = -0
            0x00, 0x3C, 0x01, 0x00, 0x00, 0xC4, 0xFF, 0x7B, // f16: 0x3C00 = 1, 0x0001 = 2^-24 (subnormal), 0xC400 = -4, 0x7BFF = 65504
            0x00, 0x00, 0xC0, 0x3F,                         // f32: 0x3FC00000 = 1.5
        ];
        string path = dir.File("hand.safetensors");
        File.WriteAllBytes(path, HandCrafted(header, data));

        using var f = SafeTensorsFile.Open(path);
        Assert.Equal(["bf", "h", "f"], f.Tensors.Select(t => t.Name));
        var bf = f.Read("bf");
        Assert.Equal([2, 2], bf.Shape);
        Assert.Equal(1f, bf.Data[0]);
        Assert.Equal(-2f, bf.Data[1]);
        Assert.Equal(float.PositiveInfinity, bf.Data[2]);
        Assert.Equal(0x80000000u, BitConverter.SingleToUInt32Bits(bf.Data[3]));
        var h = f.Read("h");
        Assert.Equal(1f, h.Data[0]);
        Assert.Equal(MathF.Pow(2, -24), h.Data[1]);
        Assert.Equal(-4f, h.Data[2]);
        Assert.Equal(65504f, h.Data[3]);
        Assert.Equal(1.5f, f.Read("f").Data[0]);
    }

    [Fact]
    public void LongBf16AndF16TensorsConvertOnEveryPath()
    {
        // long enough for the vector loop, the scalar tail and the threaded chunks
        int n = (1 << 20) + 4099;
        var rng = new Random(3);
        var bits = new ushort[n];
        for (int i = 0; i < n; i++) bits[i] = (ushort)rng.Next(0, 0x7F80); // finite positive bf16 / f16 values
        var raw = new byte[2 * n];
        Buffer.BlockCopy(bits, 0, raw, 0, raw.Length);
        using var dir = new TempDirectory();
        string header = $"{{\"b\":{{\"dtype\":\"BF16\",\"shape\":[{n}],\"data_offsets\":[0,{2 * n}]}}," +
                        $"\"h\":{{\"dtype\":\"F16\",\"shape\":[{n}],\"data_offsets\":[{2 * n},{4 * n}]}}}}";
        string path = dir.File("long.safetensors");
        File.WriteAllBytes(path, HandCrafted(header, [.. raw, .. raw]));
        using var f = SafeTensorsFile.Open(path);
        var b = f.Read("b").Data;
        var h = f.Read("h").Data;
        for (int i = 0; i < n; i++)
        {
            uint expectedB = (uint)bits[i] << 16;
            float expectedH = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            if (BitConverter.SingleToUInt32Bits(b[i]) != expectedB) Assert.Fail($"bf16 [{i}] 0x{bits[i]:X4}: expected {expectedB:X8}, got {BitConverter.SingleToUInt32Bits(b[i]):X8}");
            if (!expectedH.Equals(h[i])) Assert.Fail($"f16 [{i}] 0x{bits[i]:X4}: expected {expectedH:R}, got {h[i]:R}");
        }
    }

    [Theory]
    [InlineData(1.0f, 0x3F80)]
    [InlineData(-2.0f, 0xC000)]
    [InlineData(1.00390625f, 0x3F80)] // exactly halfway 1 → 1.0078125: ties to even (down)
    [InlineData(1.01171875f, 0x3F82)] // halfway 1.0078125 → 1.015625: ties to even (up)
    [InlineData(1.0039064f, 0x3F81)]  // one ulp above halfway: up
    [InlineData(float.PositiveInfinity, 0x7F80)]
    public void Bf16WriteRoundsToNearestEven(float value, int expected)
    {
        Assert.Equal((ushort)expected, SafeTensorDTypes.SingleToBFloat16(value));
        using var dir = new TempDirectory();
        string path = dir.File("b.safetensors");
        SafeTensorsWriter.Write(path, [new Tensor("x", [1], [value])], SafeTensorDType.BF16);
        using var f = SafeTensorsFile.Open(path);
        Assert.Equal("BF16", f["x"].DType);
        Assert.Equal(SafeTensorDTypes.BFloat16ToSingle((ushort)expected), f.Read("x").Data[0]);
        Assert.True(float.IsNaN(SafeTensorDTypes.BFloat16ToSingle(SafeTensorDTypes.SingleToBFloat16(float.NaN))));
    }

    private static InvalidDataException OpenBad(string header, byte[] data, out string path, TempDirectory dir, string? read = null)
    {
        path = dir.File("bad.safetensors");
        File.WriteAllBytes(path, HandCrafted(header, data));
        string p = path;
        return Assert.Throws<InvalidDataException>(() =>
        {
            using var f = SafeTensorsFile.Open(p);
            if (read is not null) f.Read(read);
        });
    }

    [Fact]
    public void UnsupportedDtypeNamesTensorDtypeAndFile()
    {
        using var dir = new TempDirectory();
        var e = OpenBad("{\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", new byte[8], out var path, dir, read: "ids");
        Assert.Contains("ids", e.Message);
        Assert.Contains("I64", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void OffsetsOutOfRangeNameTensorAndFile()
    {
        using var dir = new TempDirectory();
        var e = OpenBad("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", new byte[12], out var path, dir);
        Assert.Contains("tensor w", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Contains("out of range", e.Message);
    }

    [Fact]
    public void OffsetsThatDisagreeWithTheShapeAreRejected()
    {
        using var dir = new TempDirectory();
        var e = OpenBad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", new byte[12], out var path, dir);
        Assert.Contains("tensor w", e.Message);
        Assert.Contains(path, e.Message);
        var e2 = OpenBad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", new byte[12], out _, dir);
        Assert.Contains("tensor w", e2.Message);
    }

    [Fact]
    public void OverlappingOffsetsNameBothTensorsAndFile()
    {
        using var dir = new TempDirectory();
        var e = OpenBad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            new byte[12], out var path, dir);
        Assert.Contains("a", e.Message);
        Assert.Contains("b", e.Message);
        Assert.Contains("overlap", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void BadHeaderJsonNamesTheFile()
    {
        using var dir = new TempDirectory();
        var e = OpenBad("{\"a\":{\"dtype\":\"F32\",", new byte[4], out var path, dir);
        Assert.Contains(path, e.Message);
        Assert.Contains("JSON", e.Message);
        var e2 = OpenBad("[1,2]", [], out _, dir);
        Assert.Contains("object", e2.Message);
        var e3 = OpenBad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", new byte[4], out _, dir);
        Assert.Contains("tensor a", e3.Message);
        var e4 = OpenBad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4], out _, dir);
        Assert.Contains("dtype", e4.Message);
    }

    [Fact]
    public void TruncatedFilesAreRejected()
    {
        using var dir = new TempDirectory();
        string path = dir.File("t.safetensors");
        SafeTensorsWriter.Write(path, [new Tensor("w", [4], [1, 2, 3, 4])]);
        var full = File.ReadAllBytes(path);

        File.WriteAllBytes(path, full[..^3]); // data cut short
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains("tensor w", e.Message);
        Assert.Contains(path, e.Message);

        File.WriteAllBytes(path, full[..20]); // header cut short
        e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains("truncated", e.Message);
        Assert.Contains(path, e.Message);

        File.WriteAllBytes(path, full[..5]); // not even the length
        e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void ReadingAMissingTensorNamesItAndTheFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("m.safetensors");
        SafeTensorsWriter.Write(path, [new Tensor("w", [1], [1])]);
        using var f = SafeTensorsFile.Open(path);
        var e = Assert.Throws<InvalidDataException>(() => f.Read("nope"));
        Assert.Contains("nope", e.Message);
        Assert.Contains(f.Path, e.Message);
    }

    [Fact]
    public void WriterRejectsDuplicateAndReservedNames()
    {
        using var dir = new TempDirectory();
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(dir.File("d"), [new Tensor("a", [1], [1]), new Tensor("a", [1], [2])]));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(dir.File("d"), [new Tensor("__metadata__", [1], [1])]));
        Assert.False(File.Exists(dir.File("d")));
    }

    [Fact]
    public void DuplicateNamesAndBadMetadataAreRejected()
    {
        using var dir = new TempDirectory();
        var e = OpenBad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
            new byte[8], out var path, dir);
        Assert.Contains("tensor w", e.Message);
        Assert.Contains(path, e.Message);
        e = OpenBad("{\"__metadata__\":{\"step\":3}}", [], out _, dir);
        Assert.Contains("step", e.Message);
    }

    [Fact]
    public void MetadataMayComeLastAndTheHeaderMayBeUnpadded()
    {
        using var dir = new TempDirectory();
        string path = dir.File("late.safetensors");
        File.WriteAllBytes(path, HandCrafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},\"__metadata__\":{\"a\":\"b\"}}", [0, 0, 0x80, 0x3F]));
        using var f = SafeTensorsFile.Open(path);
        Assert.Equal("b", f.Metadata["a"]);
        Assert.Equal(1f, f.Read("x").Data[0]);
        Assert.Empty(f.Read("x").Shape);
    }

    [Fact]
    public void AWriterThatThrowsMidwayLeavesTheOldFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("w.safetensors");
        SafeTensorsWriter.Write(path, [new Tensor("w", [2], [1f, 2f])]);
        var before = File.ReadAllBytes(path);
        Assert.Throws<IOException>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[100]);
            throw new IOException("interrupted (simulated)");
        }));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }
}
