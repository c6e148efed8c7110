using Raft.Teacher;
using System.Diagnostics;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Data;
using Raft.Pipeline.Filtering;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Refine;

/// <summary>
/// Stage 1 of RAFT. For each example: <b>self-conditioned rewriting</b> (the teacher, shown the prompt and the reference
/// through <see cref="PromptTemplates.Rewrite"/>, samples N candidates in its own style), <b>semantic filtering</b> (a
/// <see cref="SemanticFilter"/>: by default the final answer must match the reference's, then a similarity score must pass
/// a threshold) and <b>answer fusion</b> (the kept candidate with the highest similarity, ties to the earlier one; or the
/// reference itself when none survives, marked <c>fused_from: reference</c>).
/// Candidate j of example i is sampled with the sequence index i·N + j, so the output does not depend on batching or on
/// how examples are split across processes.
/// </summary>
public sealed class Refiner
{
    private readonly ITeacher _teacher;
    private readonly ITokenizer _tokenizer;
    private readonly ChatTemplate _template;
    private readonly SemanticFilter _filter;
    private readonly RefineOptions _o;

    /// <summary>
    /// Builds the filter from <paramref name="options"/> (<see cref="BuildRules"/>, with <paramref name="miniLm"/> for
    /// <c>embedding_model: minilm</c>) unless <paramref name="filter"/> is given.
    /// </summary>
    public Refiner(ITeacher teacher, ITokenizer tokenizer, ChatTemplate template, RefineOptions options, SemanticFilter? filter = null,
        Func<ISimilarity>? miniLm = null)
    {
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (tokenizer.VocabSize > teacher.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens, the teacher's vocabulary {teacher.VocabSize}.", nameof(tokenizer));
        _teacher = teacher; _tokenizer = tokenizer; _template = template; _o = options;
        _filter = filter ?? new SemanticFilter(BuildRules(options, miniLm));
    }

    /// <summary>
    /// The rules of <paramref name="options"/>: answer match (when an extractor is named), then similarity (when the
    /// threshold is above 0) by the measure <c>embedding_model</c> names: the character 3-gram cosine (null or
    /// <c>ngram</c>), <paramref name="miniLm"/>'s similarity (<c>minilm</c>; without a factory an
    /// <see cref="ArgumentException"/> says so: this library does not carry the model) or an ONNX model folder.
    /// </summary>
    public static IReadOnlyList<IFilterRule> BuildRules(RefineOptions options, Func<ISimilarity>? miniLm = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var rules = new List<IFilterRule>();
        if (!string.IsNullOrEmpty(options.Extractor)) rules.Add(new AnswerMatchRule(AnswerExtractors.Parse(options.Extractor)));
        if (options.SimilarityThreshold > 0)
        {
            ISimilarity sim = options.EmbeddingModel switch
            {
                null or RefineOptions.NGramEmbedding => new CharNgramCosine(),
                MiniLm.Name => (miniLm ?? throw new ArgumentException(
                    $"embedding_model = {MiniLm.Name}: no MiniLM factory given (the model comes from the {MiniLm.PackageId} package, which the raft CLI references; a library caller passes MiniLm.Open(assemblyPath))."))(),
                string dir => new OnnxEmbeddingSimilarity(dir),
            };
            rules.Add(new SimilarityRule(sim, options.SimilarityThreshold));
        }
        return rules;
    }

    /// <summary>
    /// What fusion ranks kept candidates by: their similarity (the similarity rules' scores). Other rules' scores must not
    /// take part: answer match scores 1 for every kept candidate, which would tie them all above any similarity.
    /// Without a similarity rule, the highest score of any rule.
    /// </summary>
    private static double FusionScore(IReadOnlyDictionary<string, double> scores)
    {
        double best = double.NegativeInfinity;
        foreach (var (rule, value) in scores)
            if (rule.StartsWith("similarity:", StringComparison.Ordinal)) best = Math.Max(best, value);
        if (!double.IsNegativeInfinity(best)) return best;
        return scores.Count == 0 ? 0 : scores.Values.Max();
    }

    /// <summary>Refines <paramref name="examples"/>; <paramref name="firstIndex"/> is the global index of examples[0] (for sharded runs).</summary>
    public (IReadOnlyList<RefinedExample> Examples, RefineSummary Summary) Run(IReadOnlyList<DomainExample> examples, int firstIndex = 0,
        Action<int, int>? progress = null, int batchExamples = 16)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var sw = Stopwatch.StartNew();
        int n = _o.Candidates;
        var sampling = new SamplingOptions
        {
            Temperature = _o.Temperature, TopK = _o.TopK, TopP = _o.TopP, MaxNewTokens = _o.MaxNewTokens,
            StopTokenIds = _template.StopIds(_tokenizer), Seed = (ulong)_o.Seed,
            VocabLimit = _tokenizer.VocabSize, // never a padding row of the embedding
        };
        var result = new RefinedExample[examples.Count];
        var byRule = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int kept = 0, rejected = 0, fusedRewrite = 0;
        for (int start = 0; start < examples.Count; start += batchExamples)
        {
            int count = Math.Min(batchExamples, examples.Count - start);
            var prompts = new List<int[]>(count * n);
            for (int i = 0; i < count; i++)
            {
                var e = examples[start + i];
                var ids = _template.Encode(_tokenizer, [ChatMessage.User(PromptTemplates.Rewrite(e.Prompt, e.Answer))], addGenerationPrompt: true).Ids;
                for (int j = 0; j < n; j++) prompts.Add(ids);
            }
            var gens = _teacher.Generate(prompts, sampling, (ulong)(firstIndex + start) * (ulong)n);
            for (int i = 0; i < count; i++)
            {
                var e = examples[start + i];
                var cands = new RefineCandidate[n];
                int best = -1;
                double bestScore = double.NegativeInfinity;
                for (int j = 0; j < n; j++)
                {
                    string text = _tokenizer.Decode(gens[i * n + j].Tokens, skipSpecial: true).Trim();
                    var verdict = text.Length == 0
                        ? new FilterResult(false, "nonempty", "the rewrite is empty", new Dictionary<string, double>())
                        : _filter.Check(text, e.Answer);
                    cands[j] = new RefineCandidate { Text = text, Kept = verdict.Keep, Reason = verdict.Keep ? null : $"{verdict.RejectedBy}: {verdict.Reason}", Scores = verdict.Scores };
                    if (verdict.Keep)
                    {
                        kept++;
                        double score = FusionScore(verdict.Scores);
                        if (score > bestScore) { bestScore = score; best = j; }
                    }
                    else
                    {
                        rejected++;
                        byRule[verdict.RejectedBy ?? "?"] = byRule.GetValueOrDefault(verdict.RejectedBy ?? "?") + 1;
                    }
                }
                if (best >= 0) fusedRewrite++;
                result[start + i] = new RefinedExample
                {
                    Id = e.Id, Prompt = e.Prompt, Reference = e.Answer,
                    Answer = best >= 0 ? cands[best].Text : e.Answer,
                    FusedFrom = best >= 0 ? "rewrite" : "reference",
                    Chosen = best >= 0 ? best : null,
                    Source = e.Line > 0 ? $"{e.Source}:{e.Line}" : e.Source,
                    Candidates = cands,
                };
            }
            progress?.Invoke(start + count, examples.Count);
        }
        var summary = new RefineSummary
        {
            Examples = examples.Count, Candidates = examples.Count * n, Kept = kept, Rejected = rejected, RejectedByRule = byRule,
            FusedRewrite = fusedRewrite, Fallback = examples.Count - fusedRewrite, Seconds = sw.Elapsed.TotalSeconds,
        };
        return (result, summary);
    }
}
