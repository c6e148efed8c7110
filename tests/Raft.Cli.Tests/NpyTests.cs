using Raft.Model;
using System.Buffers.Binary;
using System.Text;
using Raft.Cli;

namespace Raft.Cli.Tests;

public sealed class NpyTests : CliHarness
{
    /// <summary>
    /// The exact bytes <c>np.save(f, np.arange(6, dtype='&lt;f4').reshape(2, 3))</c> writes (NumPy 1.26 and 2.x,
    /// format version 1.0):
    ///   93 4E 55 4D 50 59        magic "\x93NUMPY"
    ///   01 00                    version 1.0
    ///   76 00                    header length 118 (uint16 LE), so that 10 + 118 = 128 is a multiple of 64
    ///   "{'descr': '&lt;f4', 'fortran_order': False, 'shape': (2, 3), }"   59 bytes, keys sorted, Python reprs
    ///   58 spaces                20 = 21 − len("2") spare digits for the growth axis, then 38 of alignment
    ///   0A                       '\n'
    ///   00000000 0000803F 00000040 00004040 00008040 0000A040   0..5 as little-endian float32
    /// </summary>
    internal static byte[] NumPyArange6 =>
    [
        .. Convert.FromHexString("934E554D5059" + "0100" + "7600"),
        .. Encoding.ASCII.GetBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + new string(' ', 58) + "\n"),
        .. Convert.FromHexString("00000000" + "0000803F" + "00000040" + "00004040" + "00008040" + "0000A040"),
    ];

    [Fact]
    public void ReadsTheBytesNumPyWrites()
    {
        Assert.Equal(128 + 24, NumPyArange6.Length);
        string path = PathOf("arange.npy");
        File.WriteAllBytes(path, NumPyArange6);
        var a = NpyFile.ReadFloat32(path, 2, "[rows, vocab]");
        Assert.Equal([2, 3], a.Shape);
        Assert.Equal([0f, 1f, 2f, 3f, 4f, 5f], a.Data);
    }

    [Fact]
    public void WritesTheBytesNumPyWrites()
    {
        string path = PathOf("mine.npy");
        NpyFile.WriteFloat32(path, [0f, 1f, 2f, 3f, 4f, 5f], 2, 3);
        Assert.Equal(NumPyArange6, File.ReadAllBytes(path));
    }

    [Theory]
    [InlineData(new[] { 1, 1 })]
    [InlineData(new[] { 3, 7 })]
    [InlineData(new[] { 17, 1023 })]
    [InlineData(new[] { 0, 5 })]
    [InlineData(new[] { 5, 0 })]
    [InlineData(new[] { 123456789, 0 })]
    [InlineData(new[] { 13 })]
    [InlineData(new[] { 2, 3, 5 })]
    public void RoundTripIsBitExact(int[] shape)
    {
        int count = shape.Aggregate(1, (a, b) => a * b);
        var data = CliHarness.RandomLogits(count, seed: count + shape.Length);
        // Values whose bits must survive: signed zero, subnormal, extremes, infinities, a NaN payload.
        float[] special = [-0f, float.Epsilon, -float.MaxValue, float.PositiveInfinity, float.NegativeInfinity,
            BitConverter.Int32BitsToSingle(0x7FC0_1234)];
        for (int i = 0; i < Math.Min(count, special.Length); i++) data[i] = special[i];

        string path = PathOf("round.npy");
        NpyFile.WriteFloat32(path, data, shape);
        long size = new FileInfo(path).Length;
        Assert.Equal(0, (size - 4L * count) % 64); // header padded to a multiple of 64
        Assert.Equal((byte)'\n', File.ReadAllBytes(path)[size - 4 * count - 1]);

        var back = NpyFile.ReadFloat32(path, shape.Length, "[test]");
        Assert.Equal(shape, back.Shape);
        Assert.Equal(data.Select(BitConverter.SingleToInt32Bits), back.Data.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void ReadsInt32()
    {
        int[] values = [3, -1, int.MaxValue, int.MinValue, 0];
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * i), values[i]);
        string path = PathOf("targets.npy");
        File.WriteAllBytes(path, [.. NpyBytes.Version1("{'descr': '<i4', 'fortran_order': False, 'shape': (5,), }"), .. bytes]);
        var a = NpyFile.ReadInt32(path, 1, "[rows]");
        Assert.Equal([5], a.Shape);
        Assert.Equal(values, a.Data);
        var e = Assert.Throws<NpyFormatException>(() => NpyFile.ReadFloat32(path, 1, "[rows]"));
        Assert.Contains("'<i4'", e.Message);
    }

    public static TheoryData<string> HeaderSpellings => new()
    {
        // NumPy before 1.26 (no growth-axis spaces) and older releases that aligned to 16 bytes.
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        // Other key orders, double quotes, no trailing comma, tight spacing, Python 2 longs.
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,3)}",
        "{'descr':'<f4','fortran_order':False,'shape':(2L, 3L),}",
    };

    [Theory]
    [MemberData(nameof(HeaderSpellings))]
    public void AcceptsHeaderSpellings(string dict)
    {
        foreach (var (name, preamble) in new[]
                 {
                     ("v1", NpyBytes.Version1(dict)), ("v1-16", NpyBytes.Version1(dict, align: 16)),
                     ("v2", NpyBytes.Version2Or3(2, dict)), ("v3", NpyBytes.Version2Or3(3, dict)),
                 })
        {
            string path = PathOf($"{name}.npy");
            File.WriteAllBytes(path, [.. preamble, .. NumPyArange6.AsSpan(128)]);
            var a = NpyFile.ReadFloat32(path, 2, "[rows, vocab]");
            Assert.Equal([2, 3], a.Shape);
            Assert.Equal([0f, 1f, 2f, 3f, 4f, 5f], a.Data);
        }
    }

    [Fact]
    public void AtomicWriteLeavesTheOldFileWhenWritingFails()
    {
        string path = PathOf("keep.npy");
        File.WriteAllText(path, "old content");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[1000]);
            throw new InvalidOperationException("disk full (simulated)");
        }));
        Assert.Equal("old content", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(Dir));
    }

    [Fact]
    public void WriterRejectsAShapeThatDoesNotMatchTheData() =>
        Assert.Throws<ArgumentException>(() => NpyFile.WriteFloat32(new MemoryStream(), new float[6], [4, 2]));
}

/// <summary>Builds .npy preambles by hand, independently of <see cref="NpyFile"/>'s writer.</summary>
internal static class NpyBytes
{
    /// <summary>Magic, version 1.0, uint16 length, then <paramref name="dict"/> padded with spaces and '\n' to <paramref name="align"/>.</summary>
    public static byte[] Version1(string dict, int align = 64) => Build(1, dict, align);

    /// <summary>Magic, version 2.0 or 3.0, uint32 length, padded header (3.0: UTF-8).</summary>
    public static byte[] Version2Or3(int major, string dict) => Build(major, dict, 64);

    /// <summary>A preamble with an arbitrary version and an unpadded header.</summary>
    public static byte[] Raw(byte major, byte minor, string header) => Raw(major, minor, Encoding.UTF8.GetBytes(header));

    /// <summary>A preamble with an arbitrary version and header bytes.</summary>
    public static byte[] Raw(byte major, byte minor, byte[] text)
    {
        int lengthBytes = major == 1 ? 2 : 4;
        var bytes = new byte[8 + lengthBytes + text.Length];
        Convert.FromHexString("934E554D5059").CopyTo(bytes, 0);
        bytes[6] = major;
        bytes[7] = minor;
        if (lengthBytes == 2) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)text.Length);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)text.Length);
        text.CopyTo(bytes, 8 + lengthBytes);
        return bytes;
    }

    private static byte[] Build(int major, string dict, int align)
    {
        int preamble = major == 1 ? 10 : 12;
        int length = Encoding.UTF8.GetByteCount(dict) + 1;
        int pad = (align - (preamble + length) % align) % align;
        return Raw((byte)major, 0, dict + new string(' ', pad) + "\n");
    }
}
