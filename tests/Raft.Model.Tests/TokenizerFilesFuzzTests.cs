using CsCheck;
using Raft.Model.Tokenization;

namespace Raft.Model.Tests;

/// <summary>
/// Mutation tests of tokenizer.json and tokenizer_config.json loading (#19): a small valid byte-level BPE pair of files is
/// truncated or bit-flipped; loading either succeeds or throws <see cref="InvalidDataException"/> or
/// <see cref="NotSupportedException"/> naming the file, never another exception type.
/// </summary>
public class TokenizerFilesFuzzTests
{
    private static readonly byte[] TokenizerJson = System.Text.Encoding.UTF8.GetBytes(
        "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":5,\"content\":\"<|end|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}]," +
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}," +
        "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"c\":4},\"merges\":[\"a b\"]}}");

    private static readonly byte[] ConfigJson = System.Text.Encoding.UTF8.GetBytes(
        "{\"eos_token\":\"<|end|>\",\"bos_token\":null,\"add_bos_token\":false,\"chat_template\":\"{% for m in messages %}{{ m['content'] }}{% endfor %}\"}");

    private static void Load(TempDirectory dir, byte[] tokenizer, byte[] config)
    {
        File.WriteAllBytes(dir.File("tokenizer.json"), tokenizer);
        File.WriteAllBytes(dir.File("tokenizer_config.json"), config);
        // bounded as TokenizerConfigFuzzTests bounds it (the tokenizer library's fixed set-up is ~0.7 MB)
        try { FuzzBounds.Run("tokenizer files", tokenizer.Length + config.Length, () => TokenizerLoader.FromDirectory(dir.Path).Encode("ab c"), factor: 64, slack: 4 << 20); }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException)
        {
            Assert.True(e.Message.Contains(dir.File("tokenizer.json")) || e.Message.Contains(dir.File("tokenizer_config.json")), e.Message);
        }
    }

    private static byte[] Flip(byte[] valid, int[] bits)
    {
        var bytes = (byte[])valid.Clone();
        foreach (int bit in bits) bytes[bit % bytes.Length * 8 / 8] ^= (byte)(1 << (bit % 8));
        return bytes;
    }

    [Fact]
    public void The_valid_pair_loads()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("tokenizer.json"), TokenizerJson);
        File.WriteAllBytes(dir.File("tokenizer_config.json"), ConfigJson);
        Assert.NotEmpty(TokenizerLoader.FromDirectory(dir.Path).Encode("ab c"));
    }

    [Fact]
    public void Truncations_and_bit_flips_give_a_typed_error_naming_the_file()
    {
        using var dir = new TempDirectory();
        Gen.Int[0, TokenizerJson.Length - 1].Sample(n => Load(dir, TokenizerJson[..n], ConfigJson), iter: 200, threads: 1);
        Gen.Int[0, ConfigJson.Length - 1].Sample(n => Load(dir, TokenizerJson, ConfigJson[..n]), iter: 150, threads: 1);
        Gen.Int[0, int.MaxValue].Array[1, 6].Sample(bits => Load(dir, Flip(TokenizerJson, bits), ConfigJson), iter: 400, threads: 1);
        Gen.Int[0, int.MaxValue].Array[1, 6].Sample(bits => Load(dir, TokenizerJson, Flip(ConfigJson, bits)), iter: 300, threads: 1);
    }
}
