using CsCheck;

namespace Raft.Cli.Tests;

/// <summary>
/// Mutation tests of the .npy reader (#19): a valid [rows, vocab] float32 file is truncated, bit-flipped, given a huge shape
/// or huge header length; reading it either succeeds with the claimed element count or throws
/// <see cref="NpyFormatException"/> naming the file, never another exception type.
/// </summary>
public class NpyFuzzTests
{
    private static byte[] ValidFile(TempDirectory dir)
    {
        string path = dir.File("valid.npy");
        NpyFile.WriteFloat32(path, Enumerable.Range(0, 12).Select(i => i * 0.25f).ToArray(), 3, 4);
        return File.ReadAllBytes(path);
    }

    private static void Read(TempDirectory dir, byte[] bytes)
    {
        string path = dir.File("mutant.npy");
        File.WriteAllBytes(path, bytes);
        try
        {
            long values = 0;
            FuzzBounds.Run($"{bytes.Length}-byte .npy", bytes.Length, () => values = NpyFile.ReadFloat32(path, 2, "[rows, vocab]").Data.Length);
            Assert.True(values * 4L <= bytes.Length, "more elements than the file holds");
        }
        catch (NpyFormatException e)
        {
            Assert.Equal(path, e.FilePath);
            Assert.StartsWith(path, e.Message);
        }
    }

    [Fact]
    public void Truncations_and_bit_flips_give_a_typed_error_naming_the_file()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir);
        Gen.Int[0, valid.Length - 1].Sample(n => Read(dir, valid[..n]), iter: 200, threads: 1);
        Gen.Int[0, valid.Length * 8 - 1].Array[1, 6].Sample(flips =>
        {
            var bytes = (byte[])valid.Clone();
            foreach (int bit in flips) bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            Read(dir, bytes);
        }, iter: 500, threads: 1);
    }

    [Fact]
    public void Huge_shapes_and_header_lengths_are_refused_without_allocating_them()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir);
        Gen.Select(Gen.Long[0, long.MaxValue], Gen.Long[0, long.MaxValue]).Sample((r, c) =>
        {
            string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({r}, {c}), }}";
            string header = dict.PadRight(118) + "\n";
            Read(dir, [0x93, .. "NUMPY"u8, 1, 0, (byte)(header.Length & 0xff), (byte)(header.Length >> 8), .. System.Text.Encoding.ASCII.GetBytes(header), .. new byte[48]]);
        }, iter: 300, threads: 1);
        Gen.UShort.Sample(len =>
        {
            var bytes = (byte[])valid.Clone();
            bytes[8] = (byte)(len & 0xff);
            bytes[9] = (byte)(len >> 8);
            Read(dir, bytes);
        }, iter: 300, threads: 1);
    }
}
