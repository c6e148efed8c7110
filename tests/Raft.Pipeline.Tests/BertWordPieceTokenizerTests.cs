using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Tests;

/// <summary>
/// <see cref="BertWordPieceTokenizer"/> against Hugging Face's BERT tokenization rules, worked out by hand on a small
/// vocabulary: cleaning, CJK, lower-casing with accent stripping, punctuation splitting, WordPiece, truncation.
/// </summary>
public sealed class BertWordPieceTokenizerTests
{
    private static readonly string[] Vocab =
    [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
        "un", "##aff", "##able", "hello", "world", ",", "!", ".", "'", "cafe", "naive", "100", "°c", "°", "##c", "c",
        "日", "本", "a", "b", "##b", "don", "t", "Hello",
    ];

    private static readonly BertWordPieceTokenizer Uncased = new(Vocab);

    private static string Tokens(string text, BertWordPieceTokenizer? t = null) => string.Join(" ", (t ?? Uncased).Tokenize(text));

    [Theory]
    [InlineData("unaffable", "un ##aff ##able")]                 // the WordPiece example of the BERT paper's code
    [InlineData("Hello,World!", "hello , world !")]             // punctuation splits off, lower-cased
    [InlineData("Café NAÏVE", "cafe naive")]                     // accents stripped (NFD, non-spacing marks dropped)
    [InlineData("100 °C.", "100 °c .")]                          // ° is a symbol (So), not punctuation: it stays in the word
    [InlineData("°b", "° ##b")]                                  // greedy longest match first
    [InlineData("日本", "日 本")]                                 // CJK ideographs stand alone
    [InlineData("hello\u00A0world\u0007\u200B!", "hello world !")] // no-break space is whitespace; BEL and ZWSP are dropped
    [InlineData("don't", "don ' t")]
    [InlineData("unx", "[UNK]")]                                  // no full cover: the whole word is [UNK]
    [InlineData("hello zzz world", "hello [UNK] world")]
    [InlineData("  \t\r\n ", "")]
    public void Tokenizes_as_hugging_face_bert_uncased(string text, string expected) => Assert.Equal(expected, Tokens(text));

    [Fact]
    public void A_word_over_100_characters_is_one_unknown()
    {
        Assert.Equal("[UNK]", Tokens(new string('b', 101)));
        Assert.Equal(100, Uncased.WordPieces(new string('b', 100)).Count); // b ##b ##b …
    }

    [Fact]
    public void Cased_keeps_case_and_accents()
    {
        var cased = new BertWordPieceTokenizer(Vocab, lowerCase: false);
        Assert.Equal("Hello , [UNK]", Tokens("Hello, Café", cased));
    }

    [Fact]
    public void Encode_adds_cls_and_sep_and_truncates_on_the_right()
    {
        Assert.Equal([2, 8, 10, 9, 3], Uncased.Encode("hello, world", 256));
        Assert.Equal([2, 8, 3], Uncased.Encode("hello, world", 3));
        Assert.Equal([2, 3], Uncased.Encode("hello", 2));
        Assert.Equal([2, 3], Uncased.Encode("", 8));
    }

    [Fact]
    public void A_vocabulary_without_a_special_token_is_refused_by_name()
    {
        using var dir = new TempDir();
        string path = dir.Write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\nhello\n");
        var e = Assert.Throws<InvalidDataException>(() => BertWordPieceTokenizer.FromFile(path));
        Assert.Contains("[SEP]", e.Message);
        Assert.Contains(path, e.Message);
    }
}
