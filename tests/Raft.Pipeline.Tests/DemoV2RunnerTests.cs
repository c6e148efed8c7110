using Raft.Pipeline.Demo;
using Raft.Pipeline.Demo.V2;
using Raft.Pipeline.Eval;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>The v2 table's machinery on a tiny v2-shaped base (a few pretrain steps; the numbers do not matter).</summary>
public sealed class DemoV2RunnerTests
{
    private static readonly DemoV2Options Tiny = new()
    {
        Seeds = [1, 2], TrainPerDomain = 2, EvalPerDomain = 2, GeneralPerTask = 1, FormatItems = 3, MaxNewTokens = 4, LoraRank = 2,
        Threads = 1,
        Budget = new TrainOptions { Method = TrainMethod.Sft, Steps = 2, BatchSize = 2, LearningRate = 1e-3, MinLearningRate = 1e-4, WarmupSteps = 1, ClipNorm = 1.0 },
        Raft = new DemoV2Options().Raft with { RolloutMaxTokens = 4 },
        Refine = new DemoV2Options().Refine with { Candidates = 1, MaxNewTokens = 4 },
    };

    private static Raft.Model.LlamaModel TinyBase() => DemoV2Base.Pretrain(
        DemoBase.PretrainOptions(steps: 12, learningRate: 3e-3, minLearningRate: 1e-4, warmup: 2, seed: 1) with { BatchSize = 4, Threads = 1 },
        config: DemoBase.ByteLlama(hidden: 32, intermediate: 64, layers: 1, heads: 2, kvHeads: 1, positions: 320));

    [Fact]
    public void The_table_has_every_row_and_column_with_intervals_and_counts_that_match_the_runs()
    {
        var baseModel = TinyBase();
        var runner = new DemoV2Runner(Tiny with { Ablations = true });
        var runs = runner.Run(baseModel);
        string[] rows = ["base", "sft", "sdft", "raft", "raft_no_stage1", "raft_no_answer_cond", "raft_fixed_weights", "sft_lora", "raft_lora"];
        Assert.Equal(rows, runs.Select(r => r.Method).Distinct());
        Assert.Equal(1 + 2 * (rows.Length - 1), runs.Count);
        var table = DemoV2Runner.Table(runs);
        Assert.Equal(rows, table.Rows);
        Assert.Equal([.. DemoV2Domains.Names, "domain", "general", "format strict", "format loose"], table.Columns);
        // base: one measurement → Wilson's interval over its items; a trained row over 2 seeds → the t interval.
        var b = runs[0];
        Assert.Equal(Intervals.Wilson(b.General.Correct, b.General.AnswerItems), table.Cell("base", "general"));
        var sft = runs.Where(r => r.Method == "sft").ToArray();
        Assert.Equal(Intervals.OfProportion([.. sft.Select(r => (r.Format.CompliantLoose, r.Format.InstructionItems))]), table.Cell("sft", "format loose"));
        Assert.Equal(3 * 2, b.Domain.Values.Sum(s => s.AnswerItems));
        Assert.Equal(10, b.General.AnswerItems);
        Assert.Equal(3, b.Format.InstructionItems);
        string md = table.ToMarkdown();
        foreach (string row in rows) Assert.Contains($"| {row} | ", md);
        Assert.Contains(" [", md);
    }

    [Fact]
    public void The_gap_check_trains_house_style_and_foreign_sft_per_seed()
    {
        var runs = new DemoV2Runner(Tiny).GapCheck(TinyBase());
        Assert.Equal(["base", "sft_house", "sft", "sft_house", "sft"], runs.Select(r => r.Method));
        Assert.Equal([0, 1, 1, 2, 2], runs.Select(r => r.Seed));
    }
}

public sealed class DemoV2TargetsTests
{
    private static IntervalTable Table(params (string Row, int Domain, int General, int Format)[] rows)
    {
        var t = new IntervalTable();
        foreach (var (row, d, g, f) in rows) { t.Add(row, "domain", d, 100); t.Add(row, "general", g, 100); t.Add(row, "format strict", f, 100); }
        return t;
    }

    [Fact]
    public void Each_target_is_decided_on_the_means_at_its_threshold()
    {
        // base 0/80/90; SFT 50/40/50 (loses 40 and 40); SDFT 60/60/80; RAFT 65/60/70: general loss 20 = ½·40 (met), format loss 20 ≤ 20 (met), RAFT = SDFT + 5.
        var met = DemoV2Targets.Check(Table(("base", 0, 80, 90), ("sft", 50, 40, 50), ("sdft", 60, 60, 80), ("raft", 65, 60, 70)));
        Assert.All(met, c => Assert.True(c.Met, c.ToString()));
        Assert.Contains("RAFT 65.0, SFT 50.0", met[1].Numbers);
        var missed = DemoV2Targets.Check(Table(("base", 0, 80, 90), ("sft", 49, 40, 90), ("sdft", 64, 50, 80), ("raft", 63, 59, 70)));
        Assert.Equal([false, false, false, false, false], missed.Select(c => c.Met));   // 49 < 50; 63 < 64; 21 > 20; SFT keeps format; RAFT < SDFT
        Assert.StartsWith("MISSED", missed[0].ToString());
        var viaGeneral = DemoV2Targets.Check(Table(("base", 0, 80, 90), ("sft", 50, 40, 50), ("sdft", 65, 40, 80), ("raft", 66, 60, 70)));
        Assert.True(viaGeneral[4].Met);   // RAFT < SDFT + 5 but loses 20 ≤ ¾·40
    }

    [Fact]
    public void The_gap_check_needs_three_quarters_and_five_points()
    {
        Assert.True(DemoV2Targets.Gap(Table(("base", 0, 80, 90), ("sft_house", 90, 65, 85), ("sft", 60, 60, 50))).Met);    // 15 ≤ 15, 15 ≤ 15
        Assert.False(DemoV2Targets.Gap(Table(("base", 0, 80, 90), ("sft_house", 90, 64, 85), ("sft", 60, 60, 50))).Met);   // 16 > 15
        Assert.False(DemoV2Targets.Gap(Table(("base", 0, 80, 90), ("sft_house", 90, 78, 85), ("sft", 60, 76, 50))).Met);   // 2 ≤ 3 but not 5 less
        Assert.Throws<ArgumentException>(() => DemoV2Targets.Gap(Table(("base", 0, 80, 90))));
    }
}
