using Raft.Model.Tokenization;

namespace Raft.Model.Tests.Tokenization;

/// <summary>Tokenizers are shared by data-loading threads: concurrent calls must give the serial results.</summary>
public class ConcurrencyTests
{
    private static void AssertThreadSafe(ITokenizer tok)
    {
        string[] texts = Enumerable.Range(0, 200)
            .Select(i => $"Example {i}: the quick brown fox #{i * 7919} jumps 🦙 over {new string('x', i % 13)} the lazy dog\n")
            .ToArray();
        int[][] serial = texts.Select(t => tok.Encode(t)).ToArray();
        var parallel = new int[texts.Length][];
        var decoded = new string[texts.Length];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            parallel[i] = tok.Encode(texts[i]);
            decoded[i] = tok.Decode(parallel[i]);
        });
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(serial[i], parallel[i]);
            Assert.Equal(texts[i], decoded[i]);
        }
    }

    [Fact]
    public void ByteTokenizer_IsThreadSafe() => AssertThreadSafe(ByteTokenizer.Instance);

    [Fact]
    public void Tiktoken_IsThreadSafe()
    {
        using var tmp = new TempDirectory();
        TokenizerFiles.ExtractTiktokenData("Microsoft.ML.Tokenizers.Data.Cl100kBase", "cl100k_base.tiktoken.deflate", tmp.Path);
        AssertThreadSafe(TokenizerLoader.FromDirectory(tmp.Path));
    }

    [TokenizerFilesFact("qwen3/tokenizer.json")]
    public void ByteLevelBpe_IsThreadSafe() => AssertThreadSafe(TokenizerFiles.Load("qwen3", "tokenizer.json"));

    [TokenizerFilesFact("llama2/tokenizer.model")]
    public void SentencePiece_IsThreadSafe() => AssertThreadSafe(TokenizerFiles.Load("llama2", "tokenizer.model"));
}
