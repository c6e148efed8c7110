using CsCheck;
using Raft.Pipeline.Data;
using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Tests;

/// <summary>
/// Mutation tests of the JSONL readers (#19): a valid evaluation set (also read as training data) is truncated, bit-flipped or deeply nested; loading it
/// either succeeds or throws <see cref="DataFormatException"/> naming the file and a line within it, never another exception.
/// </summary>
public class JsonlFuzzTests
{
    private static readonly byte[] Valid = System.Text.Encoding.UTF8.GetBytes(string.Join("\n",
        "{\"prompt\": \"Flip 13.\", \"answer\": \"31\"}",
        "{\"id\": \"b\", \"prompt\": \"Say hi.\", \"instructions\": [{\"kind\": \"lowercase\"}]}",
        "{\"prompt\": \"Add 2 and 2.\", \"answer\": \"4\", \"extractor\": \"number\"}") + "\n");

    private static void Load(TempDirectory dir, byte[] bytes, bool skip)
    {
        string path = dir.File("set.jsonl");
        File.WriteAllBytes(path, bytes);
        int lines = bytes.Count(b => b == (byte)'\n') + 1;
        // The same bytes through both readers: evaluation sets and training data.
        foreach (Action load in (Action[])[() => EvalSet.Load(path, skipBadLines: skip, log: _ => { }), () => JsonlDataset.Load(path, skip, _ => { })])
        {
            try { FuzzBounds.Run($"{bytes.Length}-byte set", bytes.Length, load, factor: 16); }
            catch (DataFormatException e)
            {
                Assert.Equal(path, e.Path);
                Assert.InRange(e.Line, 0, lines);
                Assert.Contains(path, e.Message);
            }
        }
    }

    [Fact]
    public void Truncations_and_bit_flips_give_a_data_format_error_or_a_set()
    {
        using var dir = new TempDirectory();
        Gen.Int[0, Valid.Length].Sample(n => Load(dir, Valid[..n], skip: false), iter: 200, threads: 1);
        Gen.Select(Gen.Int[0, Valid.Length * 8 - 1].Array[1, 6], Gen.Bool).Sample((flips, skip) =>
        {
            var bytes = (byte[])Valid.Clone();
            foreach (int bit in flips) bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            Load(dir, bytes, skip);
        }, iter: 500, threads: 1);
    }

    [Fact]
    public void Deep_nesting_and_random_bytes_give_a_data_format_error()
    {
        using var dir = new TempDirectory();
        Gen.Int[1, 20000].Sample(depth =>
            Load(dir, System.Text.Encoding.UTF8.GetBytes("{\"prompt\": " + new string('[', depth) + new string(']', depth) + "}\n"), skip: false),
            iter: 40, threads: 1);
        Gen.Byte.Array[0, 300].Sample(bytes => Load(dir, bytes, skip: false), iter: 300, threads: 1);
    }
}
