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

        string[] methods = ["base", "sft", "raft", "raft_no_refine", "raft_no_answer_cond", "raft_fixed_weights"];
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
        var png = File.ReadAllBytes(dir.File("out/learning_curves.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        // the curves hold step 0 and the last step for sft and raft
        Assert.Equal([0, 1, 2], report.Curves["sft"].Select(p => p.Step));
        Assert.Equal([0, 1, 2], report.Curves["raft"].Select(p => p.Step));
        Assert.Contains(logs, l => l.StartsWith("base:", StringComparison.Ordinal));
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
    }
}
