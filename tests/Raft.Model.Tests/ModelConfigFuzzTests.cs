using CsCheck;
using Raft.Model;

namespace Raft.Model.Tests;

/// <summary>
/// Mutation tests of the config.json reader (#19): a valid config is truncated, bit-flipped or deeply nested; loading it
/// either succeeds or throws <see cref="InvalidDataException"/> or <see cref="ArgumentException"/> (a refused or invalid
/// value, <see cref="UnsupportedConfigException"/> included) naming the file, never another exception type.
/// </summary>
public class ModelConfigFuzzTests
{
    private static void Load(TempDirectory dir, byte[] bytes)
    {
        string path = dir.File("config.json");
        File.WriteAllBytes(path, bytes);
        try { FuzzBounds.Run($"{bytes.Length}-byte config", bytes.Length, () => ModelConfig.Load(path), factor: 16); }
        catch (Exception e) when (e is InvalidDataException or ArgumentException)
        {
            Assert.Contains(path, e.Message);
        }
    }

    [Fact]
    public void Truncations_bit_flips_and_nesting_give_a_typed_error_naming_the_file()
    {
        using var dir = new TempDirectory();
        var valid = System.Text.Encoding.UTF8.GetBytes(TestModels.Tiny().ToJson());
        Gen.Int[0, valid.Length - 1].Sample(n => Load(dir, valid[..n]), iter: 200, threads: 1);
        Gen.Int[0, valid.Length * 8 - 1].Array[1, 6].Sample(flips =>
        {
            var bytes = (byte[])valid.Clone();
            foreach (int bit in flips) bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            Load(dir, bytes);
        }, iter: 500, threads: 1);
        Gen.Int[1, 20000].Sample(depth =>
            Load(dir, System.Text.Encoding.UTF8.GetBytes("{\"rope_scaling\": " + new string('[', depth) + new string(']', depth) + "}")),
            iter: 40, threads: 1);
    }
}
