using System.Text;
using System.Text.Json;
using CsCheck;
using Raft.Model;

namespace Raft.Model.Tests;

/// <summary>
/// Mutation tests of a sharded checkpoint (#19): <c>model.safetensors.index.json</c> and its two shards are truncated,
/// bit-flipped, deeply nested or given a huge weight_map or shard name; <see cref="Checkpoint.Load"/> either loads the
/// model or throws <see cref="InvalidDataException"/> naming the index or a shard, never another exception type, within
/// <see cref="FuzzBounds.Timeout"/> and a small multiple of the checkpoint's bytes of allocation.
/// </summary>
public class ShardedSafeTensorsFuzzTests
{
    private const string Shard1 = "model-00001-of-00002.safetensors", Shard2 = "model-00002-of-00002.safetensors";

    /// <summary>A valid sharded tiny checkpoint: F32 first shard, BF16 second, an index with metadata.</summary>
    private sealed class Sharded : IDisposable
    {
        public readonly TempDirectory Dir = new();
        public readonly byte[] Index, First, Second;

        public Sharded()
        {
            var config = TestModels.Tiny();
            var weights = TestModels.RandomWeights(config);
            File.WriteAllText(Dir.File(Checkpoint.ConfigFile), config.ToJson());
            var first = weights.Tensors.Take(7).ToList();
            var second = weights.Tensors.Skip(7).ToList();
            SafeTensorsWriter.Write(Dir.File(Shard1), first);
            SafeTensorsWriter.Write(Dir.File(Shard2), second, SafeTensorDType.BF16);
            var map = first.ToDictionary(t => t.Name, _ => Shard1);
            foreach (var t in second) map[t.Name] = Shard2;
            File.WriteAllText(Dir.File(Checkpoint.IndexFile), JsonSerializer.Serialize(new { metadata = new { total_size = 4242 }, weight_map = map }));
            Index = File.ReadAllBytes(Dir.File(Checkpoint.IndexFile));
            First = File.ReadAllBytes(Dir.File(Shard1));
            Second = File.ReadAllBytes(Dir.File(Shard2));
        }

        /// <summary>Writes the three files (each mutant or valid) and loads; only a typed error naming one of them may escape.</summary>
        public void Load(string what, byte[] index, byte[] first, byte[] second)
        {
            File.WriteAllBytes(Dir.File(Checkpoint.IndexFile), index);
            File.WriteAllBytes(Dir.File(Shard1), first);
            File.WriteAllBytes(Dir.File(Shard2), second);
            string[] named = [Path.GetFullPath(Dir.File(Checkpoint.IndexFile)), Path.GetFullPath(Dir.File(Shard1)), Path.GetFullPath(Dir.File(Shard2))];
            // 8 × the bytes: a JSON index's names become UTF-16 strings (twice the bytes) in a list, after its document
            FuzzBounds.Run(what, index.Length + first.Length + second.Length, () =>
            {
                try { Checkpoint.Load(Dir.Path); }
                catch (InvalidDataException e)
                {
                    Assert.True(named.Any(e.Message.Contains), $"{what}: the error names none of the checkpoint's files: {e.Message}");
                }
            }, factor: 8);
        }

        public void Dispose() => Dir.Dispose();
    }

    private static byte[] Flip(byte[] valid, int[] bits)
    {
        var bytes = (byte[])valid.Clone();
        foreach (int bit in bits) bytes[bit / 8 % bytes.Length] ^= (byte)(1 << (bit % 8));
        return bytes;
    }

    [Fact]
    public void The_valid_checkpoint_loads()
    {
        using var c = new Sharded();
        c.Load("valid", c.Index, c.First, c.Second);
        Assert.Equal(TestModels.Tiny().TensorShapes().Count, Checkpoint.Load(c.Dir.Path).Weights.Count);
    }

    [Fact]
    public void Findings_invalid_utf8_and_overlong_shard_names_are_refused_by_the_index_name()
    {
        using var c = new Sharded();
        string index = Path.GetFullPath(c.Dir.File(Checkpoint.IndexFile));
        // found by the bit flips: JsonDocument passed the byte through and reading the name threw InvalidOperationException
        File.WriteAllBytes(index, [.. "{\"weight_map\": {\"mo"u8, 0xAE, .. "\": \"x\"}}"u8]);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(c.Dir.Path));
        Assert.Contains(index, e.Message);
        Assert.Contains("UTF-8", e.Message);
        // found by the allocation bound: a 60 000-character name was carried into paths and the message
        File.WriteAllText(index, "{\"weight_map\": {\"model.norm.weight\": \"" + new string('s', 256) + "\"}}");
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(c.Dir.Path));
        Assert.Contains(index, e.Message);
        Assert.Contains("256 characters", e.Message);
        Assert.DoesNotContain(new string('s', 256), e.Message);
    }

    [Fact]
    public void Index_truncations_and_bit_flips_give_a_typed_error_naming_a_file()
    {
        using var c = new Sharded();
        Gen.Int[0, c.Index.Length - 1].Sample(n => c.Load($"index[..{n}]", c.Index[..n], c.First, c.Second), iter: 200, threads: 1);
        Gen.Int[0, int.MaxValue].Array[1, 6].Sample(bits => c.Load($"index bits {string.Join(",", bits)}", Flip(c.Index, bits), c.First, c.Second),
            iter: 400, threads: 1);
    }

    [Fact]
    public void Shard_truncations_and_bit_flips_give_a_typed_error_naming_the_shard()
    {
        using var c = new Sharded();
        Gen.Select(Gen.Int[0, c.First.Length - 1], Gen.Int[0, c.Second.Length - 1], Gen.Bool).Sample((n1, n2, which) =>
            c.Load($"{(which ? "first" : "second")} shard truncated", c.Index, which ? c.First[..n1] : c.First, which ? c.Second : c.Second[..n2]),
            iter: 200, threads: 1);
        Gen.Select(Gen.Int[0, int.MaxValue].Array[1, 6], Gen.Bool).Sample((bits, which) =>
            c.Load($"{(which ? "first" : "second")} shard bits {string.Join(",", bits)}", c.Index,
                which ? Flip(c.First, bits) : c.First, which ? c.Second : Flip(c.Second, bits)),
            iter: 400, threads: 1);
    }

    [Fact]
    public void Deep_nesting_huge_maps_and_huge_shard_names_give_a_typed_error_naming_the_index()
    {
        using var c = new Sharded();
        Gen.Select(Gen.Int[1, 20000], Gen.Bool).Sample((depth, inMap) =>
        {
            string nest = new string('[', depth) + new string(']', depth);
            string json = inMap ? "{\"weight_map\": {\"lm_head.weight\": " + nest + "}}" : "{\"metadata\": " + nest + ", \"weight_map\": {}}";
            c.Load($"nesting {depth} in {(inMap ? "weight_map" : "metadata")}", Encoding.UTF8.GetBytes(json), c.First, c.Second);
        }, iter: 60, threads: 1);
        // a weight_map of many tensors the architecture lacks, each in an existing shard
        Gen.Int[1, 20000].Sample(n =>
        {
            var json = new StringBuilder("{\"weight_map\": {");
            for (int i = 0; i < n; i++) json.Append(i == 0 ? "" : ", ").Append($"\"t{i}\": \"{Shard1}\"");
            c.Load($"weight_map of {n}", Encoding.UTF8.GetBytes(json.Append("}}").ToString()), c.First, c.Second);
        }, iter: 30, threads: 1);
        // a shard name far beyond any file-name limit
        Gen.Int[1, 1 << 18].Sample(n =>
            c.Load($"shard name of {n} chars", Encoding.UTF8.GetBytes("{\"weight_map\": {\"model.norm.weight\": \"" + new string('s', n) + "\"}}"), c.First, c.Second),
            iter: 30, threads: 1);
    }
}
