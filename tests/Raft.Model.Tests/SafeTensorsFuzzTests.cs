using CsCheck;
using Raft.Model;

namespace Raft.Model.Tests;

/// <summary>
/// Mutation tests of the safetensors reader (#19): a valid file is truncated, bit-flipped or given a huge header length or
/// a huge dimension; opening it and reading every tensor either succeeds or throws <see cref="InvalidDataException"/>
/// naming the file, never another exception type, within <see cref="FuzzBounds.Timeout"/> and 8 × the file's bytes of allocation.
/// </summary>
public class SafeTensorsFuzzTests
{
    private static byte[] ValidFile(TempDirectory dir)
    {
        string path = dir.File("valid.safetensors");
        SafeTensorsWriter.Write(path, [
            new Tensor("a.weight", [3, 4], Enumerable.Range(0, 12).Select(i => i * 0.5f).ToArray()),
            new Tensor("b.bias", [5], [1f, -2f, 3f, -4f, 5f]),
        ]);
        return File.ReadAllBytes(path);
    }

    /// <summary>Opens <paramref name="bytes"/> as a file and reads every tensor; only a typed error naming the file may escape.</summary>
    private static void OpenAndReadAll(TempDirectory dir, byte[] bytes)
    {
        string path = dir.File("mutant.safetensors");
        File.WriteAllBytes(path, bytes);
        try
        {
            // bounded in time and allocation (FuzzBounds); the tensors read as fp32 take up to 2 × the bytes of a 16-bit file
            FuzzBounds.Run($"{bytes.Length}-byte mutant", bytes.Length, () =>
            {
                using var f = SafeTensorsFile.Open(path);
                foreach (var t in f.Tensors)
                {
                    long n = t.ElementCount;
                    // A reader must refuse what the file cannot hold before allocating it.
                    Assert.True(t.End <= f.DataLength && t.End - t.Begin <= bytes.Length, $"{t.Name}: [{t.Begin}, {t.End}) beyond the file");
                    if (t.DType is "F32" or "F16" or "BF16" && n <= bytes.Length) f.Read(t.Name);
                }
            }, factor: 8);
        }
        catch (InvalidDataException e)
        {
            Assert.Contains(path, e.Message);
        }
    }

    [Fact]
    public void Truncations_are_refused_by_file_name()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir);
        Gen.Int[0, valid.Length - 1].Sample(n => OpenAndReadAll(dir, valid[..n]), iter: 300, threads: 1);
    }

    [Fact]
    public void Bit_flips_give_a_typed_error_or_a_readable_file()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir);
        Gen.Select(Gen.Int[0, valid.Length * 8 - 1].Array[1, 8], flips => flips).Sample(flips =>
        {
            var bytes = (byte[])valid.Clone();
            foreach (int bit in flips) bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            OpenAndReadAll(dir, bytes);
        }, iter: 500, threads: 1);
    }

    [Fact]
    public void Huge_header_lengths_and_dimensions_are_refused_without_allocating_them()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir);
        Gen.ULong.Sample(length =>
        {
            var bytes = (byte[])valid.Clone();
            BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), length);
            OpenAndReadAll(dir, bytes);
        }, iter: 200, threads: 1);
        Gen.Long[0, long.MaxValue].Sample(dim =>
        {
            string header = $"{{\"x\":{{\"dtype\":\"F32\",\"shape\":[{dim},{dim}],\"data_offsets\":[0,16]}}}}";
            var h = System.Text.Encoding.UTF8.GetBytes(header);
            OpenAndReadAll(dir, [.. BitConverter.GetBytes((ulong)h.Length), .. h, .. new byte[16]]);
        }, iter: 200, threads: 1);
    }

    [Fact]
    public void Deeply_nested_headers_are_refused_by_file_name()
    {
        using var dir = new TempDirectory();
        Gen.Int[1, 5000].Sample(depth =>
        {
            string header = "{\"x\":" + new string('[', depth) + new string(']', depth) + "}";
            var h = System.Text.Encoding.UTF8.GetBytes(header);
            OpenAndReadAll(dir, [.. BitConverter.GetBytes((ulong)h.Length), .. h]);
        }, iter: 50, threads: 1);
    }
}
