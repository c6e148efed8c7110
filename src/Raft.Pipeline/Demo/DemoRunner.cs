using Raft.Teacher;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Data;
using Raft.Pipeline.Eval;
using Raft.Pipeline.Filtering;
using Raft.Pipeline.Refine;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Demo;

/// <summary>The options of <c>raft demo</c>.</summary>
public sealed record DemoOptions
{
    /// <summary>The seeds; every method is trained once per seed.</summary>
    public int[] Seeds { get; init; } = [1, 2, 3];
    /// <summary>
    /// Also run RAFT without refinement, without answer conditioning and with fixed weights, and the LoRA rows sft_lora and
    /// raft_lora (adapters of rank <see cref="LoraRank"/> on q_proj and v_proj instead of the MLP blocks, same budget; raft_lora's
    /// teacher is the base itself, its adapters switched off).
    /// </summary>
    public bool Ablations { get; init; }
    /// <summary>The LoRA rows' rank (α = 8, PEFT's default targets q_proj, v_proj).</summary>
    public int LoraRank { get; init; } = 8;
    /// <summary>Where report.md, report.json and learning_curves.png go (null: print only).</summary>
    public string? OutDir { get; init; }
    /// <summary>The base checkpoint; trained first (<see cref="DemoBase.Pretrain"/>) when the folder does not exist.</summary>
    public string BaseModel { get; init; } = "models/demo-base";
    /// <summary>Domain training examples.</summary>
    public int DomainExamples { get; init; } = 256;
    /// <summary>Items per evaluation set (domain, general, format).</summary>
    public int EvalItems { get; init; } = 100;
    /// <summary>
    /// Learning-curve points per run, evenly spaced from step 0 to the last step (both included; fewer when the run has
    /// fewer steps). Evaluating the curves only reads the student's weights: the table does not depend on it.
    /// </summary>
    public int CurvePoints { get; init; } = 20;
    /// <summary>
    /// The curves are evaluated on the first <see cref="CurveItems"/> items of the domain and of the general eval set
    /// (all of them when <see cref="EvalItems"/> is smaller); the table on all <see cref="EvalItems"/>. 20 points on 20
    /// items cost about what the earlier 5 points on half of the 100-item sets did (batched greedy decoding runs to the
    /// longest answer of the batch, so a 20-item evaluation costs a quarter to a third of a 50-item one).
    /// </summary>
    public int CurveItems { get; init; } = 20;
    /// <summary>CPU threads (0: all cores).</summary>
    public int Threads { get; init; }
    /// <summary>The SFT baseline's budget (the steps, batch and learning rate that RAFT gets too).</summary>
    public TrainOptions Sft { get; init; } = new()
    {
        Method = TrainMethod.Sft, Steps = 300, BatchSize = 16, LearningRate = 3e-4, MinLearningRate = 3e-5, WarmupSteps = 10,
        Trainable = DemoTrainable,
    };

    /// <summary>
    /// The demo fine-tunes the MLP blocks only (attention, norms and the tied embedding frozen), for both methods: see
    /// docs/demo.md for why (with every parameter trained, learning the domain's digit skill overwrites the base's
    /// digit-copying general skills whatever the method).
    /// </summary>
    public const string DemoTrainable = "mlp";
    /// <summary>RAFT's options; steps, batch, learning rate, trainable parameters and seed are taken from <see cref="Sft"/> so both get the same budget.</summary>
    public TrainOptions Raft { get; init; } = new()
    {
        Method = TrainMethod.Raft, TopK = 16, Temperature = 1f, RolloutTemperature = 1f, RolloutMaxTokens = 24, EmaDecay = 0.9,
        TargetRatio = [1.0, 3.0],
    };
    /// <summary>Stage 1's options.</summary>
    public RefineOptions Refine { get; init; } = new() { Candidates = 4, Temperature = 0.7f, MaxNewTokens = 32, Extractor = "last_number", SimilarityThreshold = 0.05 };
}

/// <summary>One method's scores on one seed.</summary>
public sealed record DemoScores(double DomainAccuracy, double GeneralAccuracy, double FormatCompliance);

/// <summary>What <c>raft demo</c> measured.</summary>
public sealed record DemoReport(
    double Seconds,
    IReadOnlyList<int> Seeds,
    IReadOnlyDictionary<string, IReadOnlyList<DemoScores>> Scores,
    IReadOnlyDictionary<string, IReadOnlyList<(int Step, double Domain, double General)>> Curves,
    IReadOnlyList<RefineSummary> Refinement)
{
    /// <summary>The budget both methods trained with (steps, batch, learning rates, trainable parameters); null if unknown.</summary>
    public TrainOptions? Budget { get; init; }
    /// <summary>How many items (the first ones) of the domain and of the general eval set the curves were evaluated on; null if unknown.</summary>
    public int? CurveItems { get; init; }
    /// <summary>How many items each eval set holds (the table is scored on all of them); null if unknown.</summary>
    public int? EvalItems { get; init; }
    /// <summary>The rank of the LoRA rows (sft_lora, raft_lora); null without them.</summary>
    public int? LoraRank { get; init; }

    /// <summary>
    /// What the curves were evaluated on, e.g. <c>the first 20 of the 100 items of the domain and of the general eval
    /// set</c>; null when <see cref="CurveItems"/> or <see cref="EvalItems"/> is unknown.
    /// </summary>
    public string? CurveSubsetText => CurveItems is not { } c || EvalItems is not { } e ? null
        : c >= e ? $"all {e} items of the domain and of the general eval set"
        : $"the first {c} of the {e} items of the domain and of the general eval set";

    /// <summary>One line describing <see cref="Budget"/>, e.g. <c>300 steps of 16 prompts, AdamW 3e-4 → 3e-5, trainable "mlp"</c>.</summary>
    public string? BudgetText => Budget is not { } b ? null : string.Create(CultureInfo.InvariantCulture,
        $"{b.Steps} steps of {b.BatchSize} prompts, AdamW {b.LearningRate:0.##e-0} → {b.MinLearningRate:0.##e-0}, trainable {(b.Trainable is null ? "all parameters" : $"\"{b.Trainable}\"")}");

    /// <summary>The methods in table order.</summary>
    public IEnumerable<string> Methods => Scores.Keys;

    private static (double Mean, double Std) Stat(IEnumerable<double> xs)
    {
        var a = xs.ToArray();
        double mean = a.Average();
        double std = a.Length < 2 ? 0 : Math.Sqrt(a.Sum(x => (x - mean) * (x - mean)) / (a.Length - 1));
        return (mean, std);
    }

    /// <summary>Mean and sample standard deviation of a metric of a method over the seeds.</summary>
    public (double Mean, double Std) Stat(string method, Func<DemoScores, double> metric) => Stat(Scores[method].Select(metric));

    /// <summary>The table as Markdown (mean ± standard deviation over seeds, in percent).</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"| method | domain accuracy | general accuracy | format compliance |");
        sb.AppendLine("|---|---:|---:|---:|");
        foreach (var m in Methods)
        {
            string Cell(Func<DemoScores, double> f)
            {
                var (mean, std) = Stat(m, f);
                return string.Create(CultureInfo.InvariantCulture, $"{100 * mean:F1} ± {100 * std:F1}");
            }
            sb.AppendLine($"| {m} | {Cell(s => s.DomainAccuracy)} | {Cell(s => s.GeneralAccuracy)} | {Cell(s => s.FormatCompliance)} |");
        }
        return sb.ToString();
    }

    /// <summary>The machine-readable report: <c>{"seconds", "seeds", "methods": {name: {metric, metric_std…}}}</c>, metrics as fractions.</summary>
    public JsonObject ToJson()
    {
        var methods = new JsonObject();
        foreach (var m in Methods)
        {
            var o = new JsonObject();
            foreach (var (key, f) in new (string, Func<DemoScores, double>)[]
                     { ("domain_accuracy", s => s.DomainAccuracy), ("general_accuracy", s => s.GeneralAccuracy), ("format_compliance", s => s.FormatCompliance) })
            {
                var (mean, std) = Stat(m, f);
                o[key] = Math.Round(mean, 6);
                o[key + "_std"] = Math.Round(std, 6);
            }
            o["per_seed"] = new JsonArray(Scores[m].Select(s => (JsonNode)new JsonObject
            {
                ["domain_accuracy"] = s.DomainAccuracy, ["general_accuracy"] = s.GeneralAccuracy, ["format_compliance"] = s.FormatCompliance,
            }).ToArray());
            methods[m] = o;
        }
        return new JsonObject
        {
            ["seconds"] = Math.Round(Seconds, 1),
            ["seeds"] = new JsonArray(Seeds.Select(s => (JsonNode)s).ToArray()),
            ["methods"] = methods,
            ["refinement"] = JsonSerializer.SerializeToNode(Refinement),
            ["budget"] = Budget is not { } b ? null : new JsonObject
            {
                ["steps"] = b.Steps, ["batch_size"] = b.BatchSize, ["learning_rate"] = b.LearningRate,
                ["min_learning_rate"] = b.MinLearningRate, ["trainable"] = b.Trainable,
            },
            ["curves"] = new JsonObject
            {
                ["items_per_set"] = CurveItems, ["eval_items"] = EvalItems,
                ["methods"] = new JsonObject(Curves.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonArray(kv.Value.Select(p => (JsonNode)new JsonObject
                {
                    ["step"] = p.Step, ["domain_accuracy"] = Math.Round(p.Domain, 6), ["general_accuracy"] = Math.Round(p.General, 6),
                }).ToArray())))),
            },
        };
    }
}

/// <summary>
/// <c>raft demo</c>: on the built-in world (<see cref="DemoWorld"/>), evaluates the base model, then for every seed trains
/// SFT on the raw domain references and RAFT (refinement by the base model as teacher, then answer-conditioned on-policy
/// distillation) with the same budget, evaluates both, and reports the paper's table: domain accuracy, general accuracy and
/// format compliance, mean and spread over seeds.
/// </summary>
public sealed class DemoRunner
{
    private readonly DemoOptions _o;
    private readonly Action<string> _log;
    private readonly Func<LlamaModel, ITeacher> _teacherFactory;

    /// <summary>
    /// Prepares a demo. <paramref name="teacherFactory"/> turns the base model into the teacher (the CLI exports it to ONNX
    /// and serves it with ONNX Runtime); by default the engine's own frozen forward.
    /// </summary>
    public DemoRunner(DemoOptions options, Action<string>? log = null, Func<LlamaModel, ITeacher>? teacherFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Seeds is not { Length: > 0 }) throw new ArgumentException("seeds must name at least one seed.", nameof(options));
        if (options.EvalItems < 1) throw new ArgumentException($"eval items = {options.EvalItems}: must be ≥ 1.", nameof(options));
        if (options.DomainExamples < 1) throw new ArgumentException($"domain examples = {options.DomainExamples}: must be ≥ 1.", nameof(options));
        if (options.CurvePoints < 2) throw new ArgumentException($"curve points = {options.CurvePoints}: must be ≥ 2 (step 0 and the last step).", nameof(options));
        if (options.CurveItems < 1) throw new ArgumentException($"curve items = {options.CurveItems}: must be ≥ 1.", nameof(options));
        options.Sft.Validate();
        options.Raft.Validate();
        options.Refine.Validate();
        _o = options;
        _log = log ?? (_ => { });
        _teacherFactory = teacherFactory ?? (m => new EngineTeacher(m, new CpuKernels(options.Threads), "engine (frozen base)"));
    }

    private static readonly ITokenizer Tok = ByteTokenizer.Instance;
    private static readonly ChatTemplate Template = ChatTemplate.Raft;

    /// <summary>The evaluation sets of the world (domain, general, format), as <see cref="EvalSet"/>s whose prompts carry their instruction inline.</summary>
    public static (EvalSet Domain, EvalSet General, EvalSet Format) EvalSets(int items)
    {
        var last = new LastNumberExtractor();
        EvalSet Make(string name, IReadOnlyList<DemoItem> src) => new(name, src.Select((d, i) => new EvalItem(
            $"{name}-{i}", d.Prompt, d.Format?.Kind == "max_words" ? d.Final : d.Answer, last,
            d.Format is null ? [] : [new FormatInstruction(d.Format.Kind, d.Format.Value)], "demo:" + name, i + 1)).ToArray());
        return (Make("domain", DemoWorld.DomainEval(items, 1001)), Make("general", DemoWorld.GeneralEval(items, 1002)),
            Make("format", DemoWorld.FormatEval(items, 1003)));
    }

    private static DemoScores Score(LlamaModel model, (EvalSet Domain, EvalSet General, EvalSet Format) sets) =>
        new(Acc(model, sets.Domain), Acc(model, sets.General), Evaluate(model, sets.Format).FormatCompliance ?? 0);

    /// <summary>Loads (or first trains) the base model.</summary>
    public LlamaModel LoadBase()
    {
        if (!Directory.Exists(_o.BaseModel))
        {
            _log($"no base model at {_o.BaseModel}: instruction-tuning one first (raft pretrain)");
            var m = DemoBase.Pretrain(DemoBase.DefaultOptions with { Threads = _o.Threads }, runDirectory: null, log: _log);
            Checkpoint.Save(_o.BaseModel, m.Config, m.Parameters);
            return m;
        }
        var (config, weights) = Checkpoint.Load(_o.BaseModel);
        if (config.VocabSize != Tok.VocabSize)
            throw new ArgumentException($"{_o.BaseModel}: vocab_size {config.VocabSize}, the demo's byte tokenizer has {Tok.VocabSize}.");
        return new LlamaModel(config, weights) { Threads = _o.Threads };
    }

    /// <summary>Runs the demo and writes the report files when <see cref="DemoOptions.OutDir"/> is set.</summary>
    public DemoReport Run()
    {
        var sw = Stopwatch.StartNew();
        var baseModel = LoadBase();
        var full = EvalSets(_o.EvalItems);
        int curveItems = Math.Min(_o.CurveItems, _o.EvalItems);
        var curveSets = (Domain: full.Domain with { Items = full.Domain.Items.Take(curveItems).ToArray() },
                         General: full.General with { Items = full.General.Items.Take(curveItems).ToArray() });
        var scores = new Dictionary<string, List<DemoScores>>();
        var curves = new Dictionary<string, List<List<(int, double, double)>>>();
        void Add(string method, DemoScores s) => (scores.TryGetValue(method, out var l) ? l : scores[method] = []).Add(s);

        var b = Score(baseModel, full);
        Add("base", b);
        _log(string.Create(CultureInfo.InvariantCulture, $"base: domain {b.DomainAccuracy:P1}, general {b.GeneralAccuracy:P1}, format {b.FormatCompliance:P1} ({sw.Elapsed.TotalSeconds:F0} s)"));

        var domain = DemoWorld.DomainTrain(_o.DomainExamples, 7);
        var refinements = new List<RefineSummary>();
        using var teacher = _teacherFactory(baseModel);
        foreach (int seed in _o.Seeds)
        {
            var refined = new Refiner(teacher, Tok, Template, _o.Refine with { Seed = seed }).Run(domain);
            refinements.Add(refined.Summary);
            _log($"seed {seed}: refinement kept {refined.Summary.Kept}/{refined.Summary.Candidates} rewrites, fused {refined.Summary.FusedRewrite}/{domain.Count} ({refined.Summary.Fallback} fell back to the reference)");
            var raw = domain.Select(e => new TrainExample(e.Prompt, e.Answer)).ToArray();
            var fused = refined.Examples.Select(e => new TrainExample(e.Prompt, e.Answer)).ToArray();
            var sft = _o.Sft with { Seed = seed, Threads = _o.Threads, Method = TrainMethod.Sft };
            var raft = WithBudgetOf(_o.Raft, sft);
            var runs = new List<(string Name, TrainOptions Options, TrainExample[] Data)> { ("sft", sft, raw), ("raft", raft, fused) };
            if (_o.Ablations)
            {
                runs.Add(("raft_no_refine", raft, raw));
                runs.Add(("raft_no_answer_cond", raft with { AnswerConditioned = false }, fused));
                runs.Add(("raft_fixed_weights", raft with { FixedWeights = [1.0, 1.0] }, fused));
                runs.Add(("sft_lora", sft with { LoraRank = _o.LoraRank, Trainable = null }, raw));
                runs.Add(("raft_lora", raft with { LoraRank = _o.LoraRank, Trainable = null }, fused));
            }
            foreach (var (name, options, data) in runs)
            {
                var t0 = sw.Elapsed.TotalSeconds;
                var student = new LlamaModel(baseModel.Config, baseModel.Parameters.Clone()) { Threads = _o.Threads };
                var curve = new List<(int, double, double)>();
                var at = CurveSteps(options.Steps, _o.CurvePoints).ToHashSet();
                if (at.Contains(0)) curve.Add((0, Acc(student, curveSets.Domain), Acc(student, curveSets.General)));
                // RAFT with LoRA and no teacher: the teacher is the base, the student's own weights with the adapters off
                var trainer = new Trainer(student, Tok, Template, data, options, options.Method == TrainMethod.Raft && options.LoraRank is null ? teacher : null)
                {
                    AfterStep = (m, model) => { if (at.Contains(m.Step)) curve.Add((m.Step, Acc(model, curveSets.Domain), Acc(model, curveSets.General))); },
                };
                var result = trainer.Run();
                var s = Score(student, full);
                Add(name, s);
                (curves.TryGetValue(name, out var cl) ? cl : curves[name] = []).Add(curve);
                _log(string.Create(CultureInfo.InvariantCulture,
                    $"seed {seed} {name}: domain {s.DomainAccuracy:P1}, general {s.GeneralAccuracy:P1}, format {s.FormatCompliance:P1} ({sw.Elapsed.TotalSeconds - t0:F0} s, {result.SkippedSteps} skipped steps)"));
            }
        }

        var meanCurves = curves.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<(int, double, double)>)kv.Value[0]
            .Select((p, i) => (p.Item1, kv.Value.Average(c => c[i].Item2), kv.Value.Average(c => c[i].Item3))).ToArray());
        var report = new DemoReport(sw.Elapsed.TotalSeconds, _o.Seeds,
            scores.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<DemoScores>)kv.Value), meanCurves, refinements)
        {
            Budget = _o.Sft, CurveItems = curveItems, EvalItems = _o.EvalItems, LoraRank = _o.Ablations ? _o.LoraRank : null,
        };
        if (_o.OutDir is not null) Write(report, _o.OutDir);
        return report;
    }

    /// <summary>
    /// RAFT's options <paramref name="raft"/> with the budget of <paramref name="sft"/> (seed, threads, steps, batch,
    /// learning-rate schedule, weight decay, clipping and trainable parameters), so both methods get the same budget.
    /// </summary>
    public static TrainOptions WithBudgetOf(TrainOptions raft, TrainOptions sft)
    {
        ArgumentNullException.ThrowIfNull(raft);
        ArgumentNullException.ThrowIfNull(sft);
        return raft with
        {
            Method = TrainMethod.Raft, Seed = sft.Seed, Threads = sft.Threads, Steps = sft.Steps, BatchSize = sft.BatchSize,
            LearningRate = sft.LearningRate, MinLearningRate = sft.MinLearningRate, WarmupSteps = sft.WarmupSteps,
            WeightDecay = sft.WeightDecay, ClipNorm = sft.ClipNorm, Trainable = sft.Trainable,
        };
    }

    /// <summary>The world's prompts carry their instruction inline, so each item is sent as its prompt.</summary>
    private static EvalSetResult Evaluate(LlamaModel model, EvalSet set) =>
        ModelEvaluator.Evaluate(model, Tok, Template, set, 32, i => i.Prompt);

    private static double Acc(LlamaModel model, EvalSet set) => Evaluate(model, set).Accuracy ?? 0;

    /// <summary>
    /// The steps at which a run of <paramref name="steps"/> steps is evaluated for the curves: <paramref name="points"/>
    /// evenly spaced steps from 0 to <paramref name="steps"/> (both included), ascending and distinct, so fewer when
    /// <paramref name="steps"/> + 1 &lt; <paramref name="points"/>.
    /// </summary>
    public static IReadOnlyList<int> CurveSteps(int steps, int points)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "steps must be ≥ 1.");
        if (points < 2) throw new ArgumentOutOfRangeException(nameof(points), points, "curve points must be ≥ 2 (step 0 and the last step).");
        var at = new SortedSet<int>();
        for (int i = 0; i < points; i++) at.Add((int)Math.Round((double)steps * i / (points - 1), MidpointRounding.AwayFromZero));
        return [.. at];
    }

    /// <summary>Writes report.md, report.json and learning_curves.png into <paramref name="dir"/> (each atomically).</summary>
    public static void Write(DemoReport report, string dir)
    {
        ArgumentNullException.ThrowIfNull(report);
        Directory.CreateDirectory(dir);
        var md = new StringBuilder();
        md.AppendLine("# RAFT demo");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Seeds: {string.Join(", ", report.Seeds)}; {report.Seconds:F0} s. Accuracies in percent, mean ± standard deviation over seeds.");
        if (report.BudgetText is { } budget) md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Budget of both methods: {budget}.");
        if (report.LoraRank is { } rank)
            md.AppendLine().AppendLine(CultureInfo.InvariantCulture,
                $"sft_lora and raft_lora train LoRA adapters of rank {rank} (α 8, q_proj and v_proj, PEFT's defaults) instead of those parameters, with the same steps, batch and learning rates; raft_lora's teacher is the base itself (the student with its adapters off).");
        md.AppendLine();
        md.Append(report.ToMarkdown());
        md.AppendLine();
        var sft = report.Curves.GetValueOrDefault("sft");
        if (sft is { Count: > 0 })
            md.AppendLine(CultureInfo.InvariantCulture,
                $"Learning curves: accuracy at {sft.Count} evenly spaced steps of each run (step {sft[0].Step} to {sft[^1].Step}), mean over seeds, " +
                $"on {report.CurveSubsetText ?? "a subset of the domain and of the general eval set"} (the table: every item).").AppendLine();
        md.AppendLine("![learning curves](learning_curves.png)");
        AtomicFile.WriteText(Path.Combine(dir, "report.md"), md.ToString());
        AtomicFile.WriteText(Path.Combine(dir, "report.json"), report.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        if (CurvesPanel(report) is { } panel)
            Charts.WriteLineChart(Path.Combine(dir, "learning_curves.png"), panel, CurvesNote(report));
    }

    /// <summary>
    /// The learning-curves chart of <paramref name="report"/>: sft and raft, domain (solid) and general (dashed) accuracy
    /// in percent, one colour per method, on a fixed −2…102 % axis so that a line at 0 or 100 stays clear of the frame.
    /// sft is drawn first and wider, so where raft's line lies on it (both at 0 % domain accuracy, or at step 0 where
    /// both are the base) sft's still shows around it. Null when neither method has a curve.
    /// </summary>
    public static ChartPanel? CurvesPanel(DemoReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var series = new List<ChartSeries>();
        foreach (var (method, colour, width) in new[] { ("sft", 1, 4.5f), ("raft", 0, 2f) })
        {
            if (report.Curves.GetValueOrDefault(method) is not { Count: > 0 } points) continue;
            series.Add(new ChartSeries($"{method} domain", points.Select(p => ((double)p.Step, 100 * p.Domain)).ToArray()) { ColorIndex = colour, LineWidth = width });
            series.Add(new ChartSeries($"{method} general", points.Select(p => ((double)p.Step, 100 * p.General)).ToArray()) { ColorIndex = colour, Dashed = true, LineWidth = width });
        }
        if (series.Count == 0) return null;
        string seeds = report.Seeds.Count == 1 ? $"seed {report.Seeds[0]}" : $"mean over {report.Seeds.Count} seeds";
        return new ChartPanel($"Accuracy during training ({seeds})", "training step", "accuracy (%)", series) { YLimits = (-2, 102) };
    }

    /// <summary>The note under the chart's title: the eval subset the curves were evaluated on, and how many points.</summary>
    public static string CurvesNote(DemoReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        int points = report.Curves.Values.Select(c => c.Count).DefaultIfEmpty(0).Max();
        string subset = report.CurveItems is { } c && report.EvalItems is { } e
            ? (c >= e ? $"all {e} items" : $"first {c} of {e} items") + " of the domain and general eval sets"
            : "a subset of the domain and general eval sets";
        return $"curves: {subset}, {points} points per run; table: every item";
    }
}
