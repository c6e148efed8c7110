using System.Globalization;
using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Eval;
using Raft.Pipeline.Filtering;
using Raft.Pipeline.Refine;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline.Demo.V2;

/// <summary>The v2 table's settings (docs/demo.md, "The methods and the budget"); the defaults are the pre-registered ones.</summary>
public sealed record DemoV2Options
{
    /// <summary>Seeds (default 1, 2, 3).</summary>
    public int[] Seeds { get; init; } = [1, 2, 3];
    /// <summary>Adds raft without stage 1, without answer conditioning, with fixed weights, and the LoRA rows.</summary>
    public bool Ablations { get; init; }
    /// <summary>Training examples per domain (default 256).</summary>
    public int TrainPerDomain { get; init; } = 256;
    /// <summary>Held-out domain items per domain (default 100).</summary>
    public int EvalPerDomain { get; init; } = 100;
    /// <summary>General items per task type (default 40).</summary>
    public int GeneralPerTask { get; init; } = 40;
    /// <summary>Format items (default 320).</summary>
    public int FormatItems { get; init; } = 320;
    /// <summary>Most new tokens of an evaluation answer (default 48).</summary>
    public int MaxNewTokens { get; init; } = 48;
    /// <summary>The LoRA rows' rank (default 8).</summary>
    public int LoraRank { get; init; } = 8;
    /// <summary>CPU threads (0 = all).</summary>
    public int Threads { get; init; }
    /// <summary>The budget every trained method gets: every parameter, 600 steps of 16 (attempt 3 of docs/demo.md; attempts 1–2 used 150), AdamW 2e-4 → 2e-5, 10 warm-up steps, clip 1.</summary>
    public TrainOptions Budget { get; init; } = new()
    {
        Method = TrainMethod.Sft, Steps = 600, BatchSize = 16, LearningRate = 2e-4, MinLearningRate = 2e-5, WarmupSteps = 10, ClipNorm = 1.0,
    };
    /// <summary>Stage 2's own settings (v1's): 1 rollout at T = 1, ≤ 48 tokens, top-16 at τ = 1, EMA 0.9, target ratio 1 : 3.</summary>
    public TrainOptions Raft { get; init; } = new()
    {
        Method = TrainMethod.Raft, TopK = 16, Temperature = 1f, RolloutTemperature = 1f, RolloutMaxTokens = 48, EmaDecay = 0.9,
        TargetRatio = [1.0, 3.0],
    };
    /// <summary>Stage 1: 4 rewrites at T = 0.7, kept when final_token agrees and the 3-gram cosine is ≥ 0.05.</summary>
    public RefineOptions Refine { get; init; } = new()
    {
        Candidates = 4, Temperature = 0.7f, MaxNewTokens = 48, Extractor = FinalTokenExtractor.SpecName, SimilarityThreshold = 0.05,
    };
}

/// <summary>One trained (or base) model's counts on the v2 sets for one seed.</summary>
/// <param name="Method">The row.</param>
/// <param name="Seed">The seed (0 for the base).</param>
/// <param name="Domain">Per-domain results, keyed by domain name.</param>
/// <param name="General">The general set's result.</param>
/// <param name="Format">The format set's result (strict and loose).</param>
public sealed record DemoV2Run(string Method, int Seed, IReadOnlyDictionary<string, EvalSetResult> Domain, EvalSetResult General, EvalSetResult Format);

/// <summary>
/// The v2 table (docs/demo.md): base, sft (the foreign references), sdft (SFT on stage 1's fused answers), raft
/// (stage 1 + stage 2), every parameter trained with the same budget; with ablations also raft_no_stage1,
/// raft_no_answer_cond, raft_fixed_weights, sft_lora and raft_lora. <see cref="GapCheck"/> is the pre-registered check.
/// </summary>
public sealed class DemoV2Runner
{
    private static readonly ITokenizer Tok = ByteTokenizer.Instance;
    private static readonly ChatTemplate Template = ChatTemplate.Raft;
    private readonly DemoV2Options _o;
    private readonly Action<string> _log;
    private readonly Func<LlamaModel, ITeacher> _teacherFactory;
    private readonly EvalSet[] _domainSets;
    private readonly EvalSet _general, _format;

    /// <summary>Prepares a run; the teacher is by default the engine's frozen forward of the base.</summary>
    public DemoV2Runner(DemoV2Options options, Action<string>? log = null, Func<LlamaModel, ITeacher>? teacherFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Seeds is not { Length: > 0 }) throw new ArgumentException("seeds must name at least one seed.", nameof(options));
        options.Budget.Validate();
        options.Raft.Validate();
        options.Refine.Validate();
        _o = options;
        _log = log ?? (_ => { });
        _teacherFactory = teacherFactory ?? (m => new EngineTeacher(m, new CpuKernels(options.Threads), "engine (frozen base)"));
        var domain = DemoV2Eval.Domain(options.EvalPerDomain);
        _domainSets = [.. DemoV2Domains.Names.Select(d => domain with { Name = d, Items = [.. domain.Items.Where(i => i.Id.StartsWith(d + "-", StringComparison.Ordinal))] })];
        _general = DemoV2Eval.General(options.GeneralPerTask);
        _format = DemoV2Eval.Format(options.FormatItems);
    }

    /// <summary>The domains' training examples with their foreign references and their house-style answers.</summary>
    public IReadOnlyList<V2DomainItem> TrainItems() => [.. DemoV2Domains.Names.SelectMany((d, k) => DemoV2Domains.Items(d, _o.TrainPerDomain, 4001 + k, evalHalf: false))];

    /// <summary>Scores <paramref name="model"/> on every set.</summary>
    public DemoV2Run Evaluate(string method, int seed, LlamaModel model) => new(method, seed,
        _domainSets.ToDictionary(s => s.Name, s => ModelEvaluator.Evaluate(model, Tok, Template, s, _o.MaxNewTokens)),
        ModelEvaluator.Evaluate(model, Tok, Template, _general, _o.MaxNewTokens),
        ModelEvaluator.Evaluate(model, Tok, Template, _format, _o.MaxNewTokens));

    /// <summary>Runs the table: the base once, then every trained row for each seed.</summary>
    public IReadOnlyList<DemoV2Run> Run(LlamaModel baseModel)
    {
        ArgumentNullException.ThrowIfNull(baseModel);
        var runs = new List<DemoV2Run> { Evaluate("base", 0, baseModel) };
        var items = TrainItems();
        var raw = items.Select(i => new TrainExample(i.Prompt, i.Reference)).ToArray();
        var domain = items.Select((i, k) => new Raft.Pipeline.Data.DomainExample($"{i.Domain}-{k}", i.Prompt, i.Reference)).ToArray();
        using var teacher = _teacherFactory(baseModel);
        foreach (int seed in _o.Seeds)
        {
            var refined = new Refiner(teacher, Tok, Template, _o.Refine with { Seed = seed }).Run(domain);
            _log($"seed {seed}: stage 1 fused {refined.Summary.FusedRewrite}/{domain.Length} ({refined.Summary.Fallback} fell back to the reference)");
            var fused = refined.Examples.Select(e => new TrainExample(e.Prompt, e.Answer)).ToArray();
            var sft = _o.Budget with { Method = TrainMethod.Sft, Seed = seed, Threads = _o.Threads };
            var raft = DemoRunner.WithBudgetOf(_o.Raft, sft);
            var rows = new List<(string, TrainOptions, TrainExample[])> { ("sft", sft, raw), ("sdft", sft, fused), ("raft", raft, fused) };
            if (_o.Ablations)
            {
                rows.Add(("raft_no_stage1", raft, raw));
                rows.Add(("raft_no_answer_cond", raft with { AnswerConditioned = false }, fused));
                rows.Add(("raft_fixed_weights", raft with { FixedWeights = [1.0, 1.0] }, fused));
                rows.Add(("sft_lora", sft with { LoraRank = _o.LoraRank }, raw));
                rows.Add(("raft_lora", raft with { LoraRank = _o.LoraRank }, fused));
            }
            foreach (var (name, options, data) in rows) runs.Add(Train(name, seed, baseModel, options, data, teacher));
        }
        return runs;
    }

    /// <summary>
    /// The gap check: SFT on the house-style answers vs SFT on the foreign references, same budget, for each seed
    /// (rows <c>sft_house</c> and <c>sft</c>, after the base).
    /// </summary>
    public IReadOnlyList<DemoV2Run> GapCheck(LlamaModel baseModel)
    {
        ArgumentNullException.ThrowIfNull(baseModel);
        var runs = new List<DemoV2Run> { Evaluate("base", 0, baseModel) };
        var items = TrainItems();
        foreach (int seed in _o.Seeds)
        {
            var sft = _o.Budget with { Method = TrainMethod.Sft, Seed = seed, Threads = _o.Threads };
            runs.Add(Train("sft_house", seed, baseModel, sft, [.. items.Select(i => new TrainExample(i.Prompt, i.House))], null));
            runs.Add(Train("sft", seed, baseModel, sft, [.. items.Select(i => new TrainExample(i.Prompt, i.Reference))], null));
        }
        return runs;
    }

    private DemoV2Run Train(string name, int seed, LlamaModel baseModel, TrainOptions options, TrainExample[] data, ITeacher? teacher)
    {
        var student = new LlamaModel(baseModel.Config, baseModel.Parameters.Clone()) { Threads = _o.Threads };
        new Trainer(student, Tok, Template, data, options, options.Method == TrainMethod.Raft ? teacher : null).Run();
        var r = Evaluate(name, seed, student);
        _log(string.Create(CultureInfo.InvariantCulture, $"seed {seed} {name}: general {r.General.Accuracy:P1}, format {r.Format.FormatCompliance:P1}"));
        return r;
    }

    /// <summary>The table of <paramref name="runs"/>: per-domain and mean domain accuracy, general accuracy, format strict and loose, each with its 95 % interval.</summary>
    public static IntervalTable Table(IEnumerable<DemoV2Run> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var t = new IntervalTable();
        foreach (var r in runs)
        {
            foreach (var (d, s) in r.Domain) t.Add(r.Method, d, s.Correct, s.AnswerItems);
            t.Add(r.Method, "domain", r.Domain.Values.Sum(s => s.Correct), r.Domain.Values.Sum(s => s.AnswerItems));
            t.Add(r.Method, "general", r.General.Correct, r.General.AnswerItems);
            t.Add(r.Method, "format strict", r.Format.Compliant, r.Format.InstructionItems);
            t.Add(r.Method, "format loose", r.Format.CompliantLoose, r.Format.InstructionItems);
        }
        return t;
    }
}
