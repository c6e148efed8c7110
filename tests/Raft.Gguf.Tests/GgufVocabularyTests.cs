using Raft.Model;
using Raft.Model.Gguf;
using Raft.Model.Tokenization;

namespace Raft.Gguf.Tests;

/// <summary>The tokenizer side of the export without llama.cpp: the SentencePiece reader against Microsoft.ML.Tokenizers, and value checks.</summary>
public class GgufVocabularyTests
{
    [TokenizerFilesFact("llama2/tokenizer.model")]
    public void SentencePiece_pieces_scores_and_types_match_the_engine_tokenizer()
    {
        string path = Path.Combine(TokenizerDirs.Root, "llama2", "tokenizer.model");
        Assert.True(File.Exists(path), $"{path} is missing: run tests/Raft.Model.Tests/fetch-tokenizers.sh.");
        var sp = SentencePieceModelFile.Read(path);
        Assert.Equal(32000, sp.Pieces.Count);
        Assert.Equal("BPE", sp.ModelTypeName);
        Assert.True(sp.ByteFallback);
        Assert.True(sp.AddDummyPrefix);
        Assert.Equal(SentencePieceModelFile.PieceType.Unknown, sp.Pieces[0].Type);
        Assert.Equal(("<s>", SentencePieceModelFile.PieceType.Control), (sp.Pieces[1].Text, sp.Pieces[1].Type));
        Assert.Equal(("<0x0A>", SentencePieceModelFile.PieceType.Byte), (sp.Pieces[3 + 10].Text, sp.Pieces[3 + 10].Type));
        // every ordinary piece is the engine's (Microsoft.ML.Tokenizers') vocabulary entry of the same id
        var engine = (MlTokenizerAdapter)TokenizerLoader.FromDirectory(Path.GetDirectoryName(path)!);
        var vocab = ((Microsoft.ML.Tokenizers.SentencePieceTokenizer)engine.Inner).Vocabulary;
        int compared = 0;
        for (int id = 0; id < sp.Pieces.Count; id++)
        {
            var p = sp.Pieces[id];
            if (p.Type != SentencePieceModelFile.PieceType.Normal) continue;
            Assert.True(vocab.TryGetValue(p.Text, out int other) && other == id, $"piece {id} \"{p.Text}\" is id {other} in the engine's vocabulary");
            compared++;
        }
        Assert.True(compared > 31000, $"{compared} pieces compared");
        // scores decrease with the merge rank for BPE pieces (SentencePiece's -rank convention)
        Assert.True(sp.Pieces[300].Score > sp.Pieces[20000].Score);
    }

    [Fact]
    public void A_malformed_tokenizer_model_is_refused_naming_the_file()
    {
        using var dir = new TempDirectory();
        string p = dir.File("tokenizer.model");
        File.WriteAllBytes(p, [0x0A, 0x20, 0x0A]); // a piece of 32 bytes, cut short
        var e = Assert.Throws<InvalidDataException>(() => SentencePieceModelFile.Read(p));
        Assert.Contains(p, e.Message);
        Assert.Contains("runs past the end", e.Message);
        File.WriteAllBytes(p, []);
        Assert.Contains("no pieces", Assert.Throws<InvalidDataException>(() => SentencePieceModelFile.Read(p)).Message);
    }

    [Theory]
    [InlineData(GgmlType.F16, 70000f, "beyond f16's range")]
    [InlineData(GgmlType.F32, float.NaN, "finite weights")]
    public void Weights_the_file_cannot_hold_are_refused_naming_the_tensor(GgmlType type, float value, string fragment)
    {
        var config = new ModelConfig
        {
            ModelType = "llama", HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2,
            NumKeyValueHeads = 1, VocabSize = 10, MaxPositionEmbeddings = 32,
        };
        var weights = RandomData.RandomParameters(config, 2);
        weights["model.layers.0.mlp.up_proj.weight"].Data[5] = value;
        var vocab = new GgufVocabulary { Model = "gpt2", Pre = "gpt2", Tokens = Enumerable.Range(0, 10).Select(i => $"t{i}").ToArray(), TokenTypes = new int[10] };
        var e = Assert.ThrowsAny<Exception>(() => GgufExporter.Build(config, weights, vocab, type));
        Assert.Contains("blk.0.ffn_up.weight", e.Message);
        Assert.Contains(fragment, e.Message);
    }
}
