using System.Text;
using Raft.Model.Tokenization;

namespace Raft.Model.Tests.Tokenization;

public class ByteTokenizerTests
{
    private readonly ByteTokenizer _tok = new();

    [Theory]
    [InlineData("")]
    [InlineData("hello world")]
    [InlineData("Tabs\tnew\nlines\r\n and  spaces ")]
    [InlineData("naïve café, Straße, Ελληνικά, русский, 日本語, 한국어")]
    [InlineData("emoji: 🦙🤗👍🏽 and a family 👨‍👩‍👧")]
    [InlineData("\0 control \u0001\u007f bytes")]
    public void RoundTrips(string text)
    {
        int[] ids = _tok.Encode(text);
        Assert.Equal(Encoding.UTF8.GetByteCount(text), ids.Length);
        Assert.All(ids, id => Assert.InRange(id, 0, 255));
        Assert.Equal(text, _tok.Decode(ids));
    }

    [Fact]
    public void Ids_AreTheUtf8Bytes()
    {
        Assert.Equal([0x68, 0x69], _tok.Encode("hi"));
        Assert.Equal([0xC3, 0xA9], _tok.Encode("é"));
        Assert.Equal([0xF0, 0x9F, 0xA6, 0x99], _tok.Encode("🦙"));
        Assert.Empty(_tok.Encode(""));
    }

    [Fact]
    public void SpecialTokens_AreSingleIds_WhenAllowed()
    {
        Assert.Equal(263, _tok.VocabSize);
        Assert.Equal(256, _tok.BosId);
        Assert.Equal(257, _tok.EosId);
        Assert.Equal(258, _tok.PadId);
        for (int i = 0; i < ByteTokenizer.SpecialTokenTexts.Count; i++)
        {
            string s = ByteTokenizer.SpecialTokenTexts[i];
            Assert.Equal([256 + i], _tok.Encode(s));
            Assert.Equal(256 + i, _tok.SpecialId(s));
            Assert.True(_tok.IsSpecial(256 + i));
            Assert.Equal(s, _tok.Decode([256 + i]));
        }
        Assert.False(_tok.IsSpecial(255));
        Assert.False(_tok.IsSpecial(263));

        string text = "<|user|>héllo 🦙<|end|><|assistant|>hi<|end|>";
        int[] ids = _tok.Encode(text);
        Assert.Equal(259, ids[0]);
        Assert.Equal(262, ids[^1]);
        Assert.Equal(4, ids.Count(_tok.IsSpecial));
        Assert.Equal(text, _tok.Decode(ids));
        Assert.Equal("héllo 🦙hi", _tok.Decode(ids, skipSpecial: true));
    }

    [Fact]
    public void SpecialTokens_AreBytes_WhenNotAllowed()
    {
        int[] ids = _tok.Encode("<|eos|>", allowSpecial: false);
        Assert.Equal(7, ids.Length);
        Assert.DoesNotContain(ids, _tok.IsSpecial);
        Assert.Equal("<|eos|>", _tok.Decode(ids));
    }

    [Fact]
    public void PartialSpecialText_StaysText()
    {
        string text = "<|eos| <|bos <|unknown|> <|";
        int[] ids = _tok.Encode(text);
        Assert.DoesNotContain(ids, _tok.IsSpecial);
        Assert.Equal(text, _tok.Decode(ids));
    }

    [Fact]
    public void AddSpecial_PutsBosFirst()
    {
        Assert.Equal([256, 0x61], _tok.Encode("a", addSpecial: true));
        Assert.Equal([256], _tok.Encode("", addSpecial: true));
    }

    [Fact]
    public void Decode_RejectsIdsOutsideTheVocabulary()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _tok.Decode([104, 263]));
        Assert.Contains("263", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => _tok.Decode([-1]));
    }

    [Fact]
    public void Decode_InvalidUtf8_GivesReplacementCharacters()
    {
        // A lone continuation byte is not UTF-8; the decoder substitutes U+FFFD rather than throwing.
        Assert.Equal("a\uFFFDb", _tok.Decode([0x61, 0x80, 0x62]));
    }
}
