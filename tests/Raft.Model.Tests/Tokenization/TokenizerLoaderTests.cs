using Raft.Model.Tokenization;

namespace Raft.Model.Tests.Tokenization;

public class TokenizerLoaderTests
{
    [Fact]
    public void SyntheticTokenizerJson_AppliesMergesAndAddedTokens()
    {
        using var tmp = new TempDirectory();
        var tok = TokenizerLoader.FromDirectory(SyntheticTokenizer.WriteTokenizerJson(tmp.Path, SyntheticTokenizer.ChatMlTokens));
        Assert.Equal("bpe", tok.Family);
        int[] ids = tok.Encode("hello world");
        Assert.Equal(2, ids.Length); // "hello" and " world" are merged tokens
        Assert.Equal("hello world", tok.Decode(ids));
        Assert.Equal(1001, tok.SpecialId("<|im_start|>"));
        Assert.Equal([1001, ids[0], 1002], tok.Encode("<|im_start|>hello<|im_end|>"));
        foreach (string s in new[] { "", " ", "naïve 🦙 x\n\n", "<|im_start", "tab\there" })
            Assert.Equal(s, tok.Decode(tok.Encode(s)));
        Assert.Equal(1003, tok.VocabSize);
    }

    [Fact]
    public void TokenizerConfig_SetsBosEosPadAndAddBos()
    {
        using var tmp = new TempDirectory();
        var tok = TokenizerLoader.FromDirectory(SyntheticTokenizer.WriteTokenizerJson(tmp.Path, SyntheticTokenizer.ChatMlTokens, """
            { "add_bos_token": true, "add_eos_token": true,
              "bos_token": { "content": "<|im_start|>", "special": true }, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>" }
            """));
        Assert.Equal(1001, tok.BosId);
        Assert.Equal(1002, tok.EosId);
        Assert.Equal(1000, tok.PadId);
        int[] ids = tok.Encode("hello", addSpecial: true);
        Assert.Equal(1001, ids[0]);
        Assert.Equal(1002, ids[^1]);
        Assert.Equal("hello", tok.Decode(ids, skipSpecial: true));
    }

    [Fact]
    public void MissingDirectory_IsNamed()
    {
        string dir = Path.Combine(Path.GetTempPath(), "raft-no-such-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<DirectoryNotFoundException>(() => TokenizerLoader.FromDirectory(dir));
        Assert.Contains(dir, e.Message);
    }

    [Fact]
    public void EmptyDirectory_SaysWhatIsExpected()
    {
        using var tmp = new TempDirectory();
        var e = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.FromDirectory(tmp.Path));
        Assert.Contains(tmp.Path, e.Message);
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("merges.txt", e.Message);
    }

    [Fact]
    public void VocabWithoutMerges_NamesTheMissingFile()
    {
        using var tmp = new TempDirectory();
        File.WriteAllText(tmp.File("vocab.json"), "{\"a\": 0}");
        var e = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.FromDirectory(tmp.Path));
        Assert.Contains("merges.txt", e.Message);
        Assert.Contains(tmp.Path, e.Message);
    }

    [Theory]
    [InlineData("{ not json", "not valid JSON")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"merges\": []}}", "model.vocab")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", "model.merges")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"zero\"}, \"merges\": []}, \"decoder\": {\"type\": \"ByteLevel\"}}", "model.vocab[\"a\"]")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [1]}, \"decoder\": {\"type\": \"ByteLevel\"}}", "model.merges[0]")]
    [InlineData("{\"added_tokens\": [{\"content\": \"<x>\"}], \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": \"ByteLevel\"}}", "added_tokens[0]")]
    [InlineData("{\"model\": \"BPE\"}", "\"model\" object")]
    public void MalformedTokenizerJson_NamesFileAndField(string json, string expected)
    {
        using var tmp = new TempDirectory();
        File.WriteAllText(tmp.File("tokenizer.json"), json);
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromDirectory(tmp.Path));
        Assert.Contains(tmp.File("tokenizer.json"), e.Message);
        Assert.Contains(expected, e.Message);
    }

    // found by the libFuzzer harness (fuzz/regressions/tokenizer): a value of another JSON type than the loader reads escaped
    // as System.Text.Json's InvalidOperationException ("requires an element of type 'Object'"), naming no file
    private const string Bpe = "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}, \"decoder\": {\"type\": \"ByteLevel\"}";

    [Theory]
    [InlineData("1", "top level is Number")]
    [InlineData("[{\"model\": {}}]", "top level is Array")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[1, 2]]}, \"decoder\": {\"type\": \"ByteLevel\"}}", "model.merges[0]")]
    [InlineData("{\"added_tokens\": [5], " + Bpe + "}", "added_tokens[0]")]
    [InlineData("{\"added_tokens\": [{\"id\": \"5\", \"content\": \"<x>\"}], " + Bpe + "}", "added_tokens[0]")]
    public void TokenizerJsonValuesOfAnotherJsonType_AreRefusedNamingTheFile(string json, string expected)
    {
        using var tmp = new TempDirectory();
        File.WriteAllText(tmp.File("tokenizer.json"), json);
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromDirectory(tmp.Path));
        Assert.Contains(tmp.File("tokenizer.json"), e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("{\"pre_tokenizer\": {\"type\": 5, \"pattern\": {\"Regex\": 1}}, " + Bpe + "}")]
    [InlineData("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": 1}}, " + Bpe + "}")]
    [InlineData("{\"post_processor\": {\"type\": 7}, " + Bpe + "}")]
    [InlineData("{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [5]}, " + Bpe + "}")]
    public void TokenizerJsonOptionalPartsOfAnotherJsonType_AreIgnoredAsAbsent(string json)
    {
        using var tmp = new TempDirectory();
        File.WriteAllText(tmp.File("tokenizer.json"), json);
        Assert.Equal([2], TokenizerLoader.FromDirectory(tmp.Path).Encode("ab"));
    }

    [Theory]
    [InlineData("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "WordPiece")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", "ByteLevel")]
    [InlineData("{\"normalizer\": {\"type\": \"Lowercase\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": \"ByteLevel\"}}", "Lowercase")]
    public void UnsupportedTokenizerJson_SaysWhy(string json, string expected)
    {
        using var tmp = new TempDirectory();
        File.WriteAllText(tmp.File("tokenizer.json"), json);
        var e = Assert.Throws<NotSupportedException>(() => TokenizerLoader.FromDirectory(tmp.Path));
        Assert.Contains(tmp.File("tokenizer.json"), e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void SentencePieceStyleTokenizerJson_WithoutModel_AsksForTokenizerModel()
    {
        using var tmp = new TempDirectory();
        File.WriteAllText(tmp.File("tokenizer.json"),
            "{\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\u2581\"}, \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {}, \"merges\": []}}");
        var e = Assert.Throws<NotSupportedException>(() => TokenizerLoader.FromDirectory(tmp.Path));
        Assert.Contains("tokenizer.model", e.Message);
    }

    [Fact]
    public void MalformedTokenizerConfig_IsNamed()
    {
        using var tmp = new TempDirectory();
        SyntheticTokenizer.WriteTokenizerJson(tmp.Path, SyntheticTokenizer.ChatMlTokens, "{ \"bos_token\": ");
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromDirectory(tmp.Path));
        Assert.Contains(tmp.File("tokenizer_config.json"), e.Message);
    }

    [Fact]
    public void MalformedTiktoken_NamesTheLine()
    {
        using var tmp = new TempDirectory();
        File.WriteAllText(tmp.File("cl100k_base.tiktoken"), "IQ== 0\nIg== one\n");
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromDirectory(tmp.Path));
        Assert.Contains("cl100k_base.tiktoken", e.Message);
        Assert.Contains("line 2", e.Message);
    }

    [Fact]
    public void GarbageTokenizerModel_IsNamed()
    {
        using var tmp = new TempDirectory();
        File.WriteAllBytes(tmp.File("tokenizer.model"), [0x0A, 0xFF, 0xFF, 0xFF, 0x01, 0x02]);
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromDirectory(tmp.Path));
        Assert.Contains(tmp.File("tokenizer.model"), e.Message);
    }

    [Fact]
    public void Adapter_RejectsIdsOutsideTheVocabulary()
    {
        using var tmp = new TempDirectory();
        var tok = TokenizerLoader.FromDirectory(SyntheticTokenizer.WriteTokenizerJson(tmp.Path, SyntheticTokenizer.ChatMlTokens));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([5, 1003]));
        Assert.Contains("1003", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([-2]));
    }
}

public class TokenizerForModelTests
{
    [Fact]
    public void RaftModelType_UsesTheByteTokenizer()
    {
        using var tmp = new TempDirectory();
        Assert.Same(ByteTokenizer.Instance, TokenizerLoader.ForModel(tmp.Path, "raft"));
        Assert.Throws<FileNotFoundException>(() => TokenizerLoader.ForModel(tmp.Path, "llama"));
    }
}
