using System.Text.Json.Nodes;
using Raft.Kernels;
using Raft.Model;
using Raft.Pipeline.Demo;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline.Tests;

/// <summary>The demo end to end on a tiny random base: every method is run and reported in the documented shapes.</summary>
public class DemoRunnerTests
{
    private static DemoOptions Tiny(string baseDir, string? outDir, bool ablations, int[] seeds) => new()
    {
        BaseModel = baseDir, OutDir = outDir, Ablations = ablations, Seeds = seeds, DomainExamples = 6, EvalItems = 4, CurvePoints = 3, Threads = 1,
        Sft = new DemoOptions().Sft with { Steps = 2, BatchSize = 3 },
        Raft = new DemoOptions().Raft with { RolloutMaxTokens = 4, TopK = 4 },
        Refine = new DemoOptions().Refine with { Candidates = 2, MaxNewTokens = 6 },
    };

    [Fact]
    public void A_demo_on_a_tiny_base_writes_the_table_json_and_chart_for_every_method()
    {
        using var dir = new TempDir();
        string baseDir = dir.File("base");
        var model = LlamaModel.CreateRandom(TinyModels.Config(maxPositions: 160), 5);
        Checkpoint.Save(baseDir, model.Config, model.Parameters);
        var logs = new List<string>();
        var report = new DemoRunner(Tiny(baseDir, dir.File("out"), ablations: true, seeds: [1, 2]), logs.Add).Run();

        string[] methods = ["base", "sft", "raft", "raft_no_refine", "raft_no_answer_cond", "raft_fixed_weights", "sft_lora", "raft_lora"];
        Assert.Equal(methods, report.Methods.ToArray());
        Assert.Single(report.Scores["base"]);
        foreach (var m in methods.Skip(1)) Assert.Equal(2, report.Scores[m].Count);
        Assert.Equal(2, report.Refinement.Count);

        var json = JsonNode.Parse(File.ReadAllText(dir.File("out/report.json")))!.AsObject();
        Assert.True(json["seconds"]!.GetValue<double>() > 0);
        Assert.Equal([1, 2], json["seeds"]!.AsArray().Select(n => n!.GetValue<int>()));
        var jm = json["methods"]!.AsObject();
        Assert.Equal(methods.OrderBy(m => m), jm.Select(kv => kv.Key).OrderBy(m => m));
        foreach (var (name, node) in jm)
            foreach (var key in new[] { "domain_accuracy", "general_accuracy", "format_compliance" })
            {
                double mean = node![key]!.GetValue<double>(), std = node[key + "_std"]!.GetValue<double>();
                Assert.InRange(mean, 0, 1);
                Assert.True(std >= 0, $"{name}.{key}_std = {std}");
                // the mean is the mean of the per-seed values
                var perSeed = node["per_seed"]!.AsArray().Select(s => s![key]!.GetValue<double>()).ToArray();
                Assert.Equal(perSeed.Average(), mean, 5);
            }
        string md = File.ReadAllText(dir.File("out/report.md"));
        foreach (var m in methods) Assert.Contains($"| {m} |", md);
        // the budget both methods trained with, in both files
        var budget = json["budget"]!.AsObject();
        Assert.Equal(2, budget["steps"]!.GetValue<int>());
        Assert.Equal(3, budget["batch_size"]!.GetValue<int>());
        Assert.Equal(DemoOptions.DemoTrainable, budget["trainable"]!.GetValue<string>());
        Assert.Contains("Budget of both methods: 2 steps of 3 prompts, AdamW 3e-4 → 3e-5, trainable \"mlp\".", md);
        Assert.Contains("sft_lora and raft_lora train LoRA adapters of rank 8", md);
        var png = File.ReadAllBytes(dir.File("out/learning_curves.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        // the curves hold step 0 and the last step for sft and raft
        Assert.Equal([0, 1, 2], report.Curves["sft"].Select(p => p.Step));
        Assert.Equal([0, 1, 2], report.Curves["raft"].Select(p => p.Step));
        Assert.Contains(logs, l => l.StartsWith("base:", StringComparison.Ordinal));
        // the curves' eval subset is stated in report.md and report.json (CurveItems 20 > EvalItems 4: every item)
        Assert.Contains("Learning curves: accuracy at 3 evenly spaced steps of each run (step 0 to 2), mean over seeds, on all 4 items of the domain and of the general eval set (the table: every item).", md);
        var curves = json["curves"]!.AsObject();
        Assert.Equal(4, curves["items_per_set"]!.GetValue<int>());
        Assert.Equal(4, curves["eval_items"]!.GetValue<int>());
        Assert.Equal([0, 1, 2], curves["methods"]!["raft"]!.AsArray().Select(p => p!["step"]!.GetValue<int>()));
    }

    [Fact]
    public void The_curve_schedule_has_the_asked_points_from_step_0_to_the_last_step()
    {
        var d = new DemoOptions();
        Assert.True(d.CurvePoints >= 20, $"default curve points {d.CurvePoints} < 20");
        var at = DemoRunner.CurveSteps(d.Sft.Steps, d.CurvePoints);
        Assert.Equal(d.CurvePoints, at.Count);
        Assert.Equal(at.Count, at.Distinct().Count());
        Assert.Equal(at.Order(), at);
        Assert.Equal(0, at[0]);
        Assert.Equal(d.Sft.Steps, at[^1]);
        // evenly spaced: gaps differ by at most one step
        var gaps = at.Zip(at.Skip(1), (a, b) => b - a).ToArray();
        Assert.InRange(gaps.Max() - gaps.Min(), 0, 1);
        foreach (int steps in new[] { 19, 40, 150, 301, 1000 })
        {
            var s = DemoRunner.CurveSteps(steps, 20);
            Assert.Equal(20, s.Distinct().Count());
            Assert.Equal(0, s[0]);
            Assert.Equal(steps, s[^1]);
        }
        // a run shorter than the points asked for: every step once
        Assert.Equal([0, 1, 2, 3], DemoRunner.CurveSteps(3, 20));
        Assert.Equal([0, 7], DemoRunner.CurveSteps(7, 2));
        Assert.Equal("points", Assert.Throws<ArgumentOutOfRangeException>(() => DemoRunner.CurveSteps(10, 1)).ParamName);
        Assert.Equal("steps", Assert.Throws<ArgumentOutOfRangeException>(() => DemoRunner.CurveSteps(0, 5)).ParamName);
    }

    [Fact]
    public void The_table_does_not_depend_on_how_often_the_curves_are_evaluated()
    {
        using var dir = new TempDir();
        string baseDir = dir.File("base");
        var model = LlamaModel.CreateRandom(TinyModels.Config(maxPositions: 160), 7);
        Checkpoint.Save(baseDir, model.Config, model.Parameters);
        DemoReport Run(int points) => new DemoRunner(Tiny(baseDir, null, ablations: false, seeds: [2]) with
        {
            CurvePoints = points, Sft = new DemoOptions().Sft with { Steps = 19, BatchSize = 3 },
        }).Run();
        var rare = Run(2);
        var often = Run(20);
        Assert.Equal([0, 19], rare.Curves["raft"].Select(p => p.Step));
        Assert.Equal(Enumerable.Range(0, 20), often.Curves["raft"].Select(p => p.Step));
        Assert.Equal(rare.Methods, often.Methods);
        foreach (var m in rare.Methods)
            Assert.Equal(rare.Scores[m], often.Scores[m]); // exact: records of doubles compared bit for bit
        Assert.Equal(rare.ToMarkdown(), often.ToMarkdown());
        // and the curves' end points are the same evaluations in both runs
        foreach (var m in new[] { "sft", "raft" })
        {
            Assert.Equal(rare.Curves[m][0], often.Curves[m][0]);
            Assert.Equal(rare.Curves[m][^1], often.Curves[m][^1]);
        }
    }

    [Fact]
    public void The_curves_chart_states_its_subset_and_keeps_a_line_at_zero_visible()
    {
        var steps = DemoRunner.CurveSteps(300, 20);
        var flat = steps.Select(s => (s, 0.0, 0.66)).ToArray();                          // sft domain at 0 throughout
        var rising = steps.Select(s => (s, 0.0, 0.66 - s / 300.0 * 0.1)).ToArray();        // raft domain on top of it
        var report = new DemoReport(1, [1, 2, 3], new Dictionary<string, IReadOnlyList<DemoScores>>(),
            new Dictionary<string, IReadOnlyList<(int, double, double)>> { ["sft"] = flat, ["raft"] = rising }, [])
        { CurveItems = new DemoOptions().CurveItems, EvalItems = 100 };
        Assert.Equal("curves: first 20 of 100 items of the domain and general eval sets, 20 points per run; table: every item", DemoRunner.CurvesNote(report));
        Assert.Equal("the first 20 of the 100 items of the domain and of the general eval set", report.CurveSubsetText);
        var panel = DemoRunner.CurvesPanel(report)!;
        Assert.Equal((-2.0, 102.0), panel.YLimits);
        Assert.Equal(["sft domain", "sft general", "raft domain", "raft general"], panel.Series.Select(s => s.Name));

        var img = PngDecoder.Decode(Eval.Charts.RenderLineChart(panel, DemoRunner.CurvesNote(report)));
        Assert.Equal((960, 600), (img.Width, img.Height));
        Assert.InRange(img.Count(p => p is { R: 255, G: 255, B: 255 }), 1, 960 * 600 * 98 / 100);
        var sft = Eval.Charts.Palette[1];
        Assert.True(img.CountNear((sft.R, sft.G, sft.B)) > 200, "sft lines barely present");
        // sft's flat 0 % line, with raft's drawn over it, still shows and is drawn clear of the bottom frame: under the
        // lowest row where the sft colour runs across most of the plot, a light gap comes before the dark frame line
        bool Near((byte R, byte G, byte B) p) => Math.Abs(p.R - sft.R) <= 40 && Math.Abs(p.G - sft.G) <= 40 && Math.Abs(p.B - sft.B) <= 40;
        int lineRow = Enumerable.Range(0, img.Height).Last(y => img.Count(Near, 0, y, img.Width, y + 1) > img.Width / 2);
        int frameRow = Enumerable.Range(lineRow + 1, 40).First(y => img.Count(p => p.R < 90 && p.G < 90 && p.B < 90, 0, y, img.Width, y + 1) > img.Width / 2);
        Assert.True(frameRow - lineRow >= 5, $"the 0 % line (row {lineRow}) touches the frame (row {frameRow})");
        Assert.Contains(Enumerable.Range(lineRow + 1, frameRow - lineRow - 1),
            y => img.Count(p => p.R > 200 && p.G > 200 && p.B > 200, 0, y, img.Width, y + 1) > img.Width * 3 / 4);
    }

    [Fact]
    public void Every_method_starts_from_the_base_weights_and_the_base_is_never_modified()
    {
        using var dir = new TempDir();
        string baseDir = dir.File("base");
        var model = LlamaModel.CreateRandom(TinyModels.Config(maxPositions: 160), 6);
        Checkpoint.Save(baseDir, model.Config, model.Parameters);
        var before = TinyModels.Flatten(Checkpoint.Load(baseDir).Weights);
        LlamaModel? teacherModel = null;
        new DemoRunner(Tiny(baseDir, null, ablations: false, seeds: [3]), null, m =>
        {
            teacherModel = m;
            return new EngineTeacher(m, new CpuKernels(1));
        }).Run();
        Assert.NotNull(teacherModel);
        Assert.Equal(before, TinyModels.Flatten(teacherModel!.Parameters));
        Assert.Equal(before, TinyModels.Flatten(Checkpoint.Load(baseDir).Weights));
    }

    [Fact]
    public void Bad_demo_options_are_rejected_naming_the_option()
    {
        var e = Assert.Throws<ArgumentException>(() => new DemoRunner(new DemoOptions { Seeds = [] }));
        Assert.Contains("seeds", e.Message);
        e = Assert.Throws<ArgumentException>(() => new DemoRunner(new DemoOptions { EvalItems = 0 }));
        Assert.Contains("eval items", e.Message);
        e = Assert.Throws<ArgumentException>(() => new DemoRunner(new DemoOptions { Sft = new DemoOptions().Sft with { Steps = 0 } }));
        Assert.Contains("steps", e.Message);
        e = Assert.Throws<ArgumentException>(() => new DemoRunner(new DemoOptions { CurvePoints = 1 }));
        Assert.Contains("curve points = 1", e.Message);
        e = Assert.Throws<ArgumentException>(() => new DemoRunner(new DemoOptions { CurveItems = 0 }));
        Assert.Contains("curve items = 0", e.Message);
    }
}
