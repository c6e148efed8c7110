using System.Text.Json;
using System.Text.Json.Nodes;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Eval;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>Evaluation during training (issue #16 item 5): --eval-set, --eval-every, --eval-max-new-tokens.</summary>
public class TrainerEvalTests
{
    private sealed class StopHere : Exception;

    /// <summary>An answer set (last_number) of 4 items and a format set of 3 items (2 with instructions).</summary>
    private static (string Math, string Format) Sets(TempDir tmp)
    {
        string math = tmp.Write("math.jsonl", string.Concat(TinyModels.Data.Take(4).Select(e =>
            JsonSerializer.Serialize(new { prompt = e.Prompt, answer = e.Answer, extractor = "last_number" }) + "\n")));
        string format = tmp.Write("format.jsonl",
            "{\"prompt\": \"Flip 12.\", \"instructions\": [{\"kind\": \"max_words\", \"value\": 40}]}\n" +
            "{\"prompt\": \"What is 2+3?\", \"instructions\": [{\"kind\": \"capitals\"}]}\n" +
            "{\"prompt\": \"What comes after 8?\"}\n");
        return (math, format);
    }

    private static string[] TrainingLinesWithoutTimes(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, Trainer.MetricsFile)).Where(l => l.Length > 0 && !l.Contains("\"eval\"")).Select(l =>
        {
            var o = JsonNode.Parse(l)!.AsObject();
            foreach (var k in new[] { "elapsed_s", "tokens_per_s", "train_s", "rollout_s", "teacher_s" }) o.Remove(k);
            return o.ToJsonString();
        }).ToArray();

    [Fact]
    public void Eval_lines_follow_their_steps_and_hold_raft_evals_scores()
    {
        using var tmp = new TempDir();
        var (math, format) = Sets(tmp);
        string run = tmp.File("run");
        var options = TinyModels.Sft(5) with { EvalSet = [math, format], EvalEvery = 2, EvalMaxNewTokens = 8 };
        var model = TinyModels.Model(seed: 7);
        var logged = new List<string>();
        var result = TinyModels.Trainer(model, options, log: logged.Add).Run(run);

        // the file: each step's line, an eval line after steps 2, 4 and the last (5)
        var lines = File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile));
        var order = lines.Select(l => JsonNode.Parse(l)!.AsObject()).Select(o => (o["step"]!.GetValue<int>(), o.ContainsKey("eval"))).ToArray();
        Assert.Equal([(1, false), (2, false), (2, true), (3, false), (4, false), (4, true), (5, false), (5, true)], order);

        var evals = MetricsLog.ReadEvals(Path.Combine(run, Trainer.MetricsFile));
        Assert.Equal([2, 4, 5], evals.Select(e => e.Step));
        Assert.Equal([2, 4, 5], result.Evals.Select(e => e.Step));
        foreach (var e in evals)
        {
            Assert.Equal(["math", "format"], e.Eval.Keys);
            var m = e.Eval["math"];
            Assert.Equal(4, m.Items);
            Assert.Equal(4, m.AnswerItems);
            Assert.InRange(m.Accuracy!.Value, 0, 1);
            Assert.Equal((double)m.Correct / 4, m.Accuracy!.Value);
            Assert.Null(m.FormatCompliance);
            var f = e.Eval["format"];
            Assert.Equal(3, f.Items);
            Assert.Null(f.Accuracy);
            Assert.Equal(2, f.InstructionItems);
            Assert.InRange(f.FormatCompliance!.Value, 0, 1);
            Assert.True(e.Seconds >= 0);
        }
        // the raw line has the documented shape
        var raw = JsonNode.Parse(lines[^1])!.AsObject();
        Assert.Equal(5, raw["step"]!.GetValue<int>());
        Assert.True(raw["eval_s"]!.GetValue<double>() >= 0);
        Assert.Equal(4, raw["eval"]!["math"]!["items"]!.GetValue<int>());
        Assert.Null(raw["eval"]!["math"]!["format_compliance"]);

        // the last evaluation is raft eval's evaluator on the final weights, exactly
        var template = ChatTemplate.Raft;
        var final = Checkpoint.Load(Path.Combine(run, Trainer.FinalDir));
        var fresh = new LlamaModel(final.Config, final.Weights) { Threads = 1 };
        var expectMath = ModelEvaluator.Evaluate(fresh, ByteTokenizer.Instance, template, EvalSet.Load(math), 8);
        var expectFormat = ModelEvaluator.Evaluate(fresh, ByteTokenizer.Instance, template, EvalSet.Load(format), 8);
        Assert.Equal(EvalSetMetrics.From(expectMath), evals[^1].Eval["math"]);
        Assert.Equal(EvalSetMetrics.From(expectFormat), evals[^1].Eval["format"]);
        Assert.Contains(logged, l => l.StartsWith("step 4: eval math: accuracy ", StringComparison.Ordinal));
        Assert.Contains(logged, l => l.StartsWith("evaluation on math (4 items), format (3 items) every 2 steps and at step 5", StringComparison.Ordinal));

        // MetricsLog.Read (raft plot, resume) sees the training steps only
        var steps = MetricsLog.Read(Path.Combine(run, Trainer.MetricsFile));
        Assert.Equal([1, 2, 3, 4, 5], steps.Select(s => s.Step));
        Assert.Equal(result.Metrics.Select(m => m.Loss), steps.Select(s => s.Loss));
    }

    [Fact]
    public void Eval_every_0_evaluates_after_the_last_step_only_and_no_run_directory_still_returns_them()
    {
        using var tmp = new TempDir();
        var (math, _) = Sets(tmp);
        var result = TinyModels.Trainer(TinyModels.Model(seed: 7), TinyModels.Sft(3) with { EvalSet = [math], EvalMaxNewTokens = 4 }).Run();
        Assert.Equal([3], result.Evals.Select(e => e.Step));
        Assert.Equal(4, result.Evals[0].Eval["math"].Items);
        Assert.Empty(TinyModels.Trainer(TinyModels.Model(seed: 7), TinyModels.Sft(2)).Run().Evals);
    }

    public static TheoryData<string> Kinds => new() { "sft", "raft", "raft-lora-dropout", "sft-bf16", "sft-accumulation" };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Evaluation_does_not_change_the_training(string kind)
    {
        using var tmp = new TempDir();
        var (math, format) = Sets(tmp);
        var start = TinyModels.Model(seed: 11);
        var options = kind switch
        {
            "sft" => TinyModels.Sft(4),
            "raft" => TinyModels.Raft(4),
            "raft-lora-dropout" => TinyModels.Raft(4) with { LoraRank = 4, LoraAlpha = 8, LoraDropout = 0.1, LoraTargets = "all-linear" },
            "sft-bf16" => TinyModels.Sft(4) with { Precision = "bf16" },
            _ => TinyModels.Sft(4) with { BatchSize = 2, GradientAccumulationSteps = 2 },
        };
        using var teacher = options.Method == TrainMethod.Raft && options.LoraRank is null ? TinyModels.Teacher(start) : null;
        var plain = TinyModels.Copy(start);
        TinyModels.Trainer(plain, options with { CheckpointEvery = 2 }, teacher).Run(tmp.File("plain"));
        var evaluated = TinyModels.Copy(start);
        var result = TinyModels.Trainer(evaluated, options with { CheckpointEvery = 2, EvalSet = [math, format], EvalEvery = 1, EvalMaxNewTokens = 6 }, teacher)
            .Run(tmp.File("evaluated"));
        Assert.Equal([1, 2, 3, 4], result.Evals.Select(e => e.Step));

        TinyModels.AssertBitwiseEqual(plain.Parameters, evaluated.Parameters);
        if (options.LoraRank is not null) TinyModels.AssertBitwiseEqual(plain.Lora!.Parameters, evaluated.Lora!.Parameters);
        Assert.Equal(TrainingLinesWithoutTimes(tmp.File("plain")), TrainingLinesWithoutTimes(tmp.File("evaluated")));
        foreach (string dir in new[] { Path.Combine(Trainer.CheckpointsDir, "step-0000002"), Trainer.FinalDir })
            TinyModels.AssertBitwiseEqual(SafeTensorsFile.ReadAll(Path.Combine(tmp.File("plain"), dir, AdamW.StateFile)),
                SafeTensorsFile.ReadAll(Path.Combine(tmp.File("evaluated"), dir, AdamW.StateFile)));
    }

    [Fact]
    public void A_resume_may_add_or_drop_the_evaluation_and_keeps_the_earlier_eval_lines()
    {
        using var tmp = new TempDir();
        var (math, _) = Sets(tmp);
        var start = TinyModels.Model(seed: 13);
        var options = TinyModels.Sft(6) with { CheckpointEvery = 2 };
        var full = TinyModels.Copy(start);
        TinyModels.Trainer(full, options).Run(tmp.File("a"));

        // without evaluation, stopped in step 3 (after the step-2 checkpoint); resumed with evaluation every step (checkpoint
        // every 4, also not compared), stopped in step 6
        string b = tmp.File("b");
        var first = TinyModels.Trainer(TinyModels.Copy(start), options, afterStep: (m, _) => { if (m.Step == 3) throw new StopHere(); });
        Assert.Throws<StopHere>(() => first.Run(b));
        var added = options with { EvalSet = [math], EvalEvery = 1, EvalMaxNewTokens = 4, CheckpointEvery = 4 };
        var second = TinyModels.Trainer(TinyModels.Model(seed: 999), added, afterStep: (m, _) => { if (m.Step == 6) throw new StopHere(); });
        Assert.Throws<StopHere>(() => second.Run(b, resume: true));
        Assert.Equal([3, 4, 5], MetricsLog.ReadEvals(Path.Combine(b, Trainer.MetricsFile)).Select(e => e.Step));

        // resumed again from step 4, now without evaluation: the eval lines up to the checkpoint stay, step 5's goes
        var last = TinyModels.Model(seed: 998);
        var end = TinyModels.Trainer(last, options).Run(b, resume: true);
        Assert.Equal([5, 6], end.Metrics.Select(m => m.Step));
        Assert.Empty(end.Evals);
        Assert.Equal([3, 4], MetricsLog.ReadEvals(Path.Combine(b, Trainer.MetricsFile)).Select(e => e.Step));
        TinyModels.AssertBitwiseEqual(full.Parameters, last.Parameters);
        Assert.Equal(TrainingLinesWithoutTimes(tmp.File("a")), TrainingLinesWithoutTimes(b));
    }

    [Fact]
    public void MetricsLog_reads_steps_and_evals_apart_and_names_a_bad_eval_line()
    {
        using var tmp = new TempDir();
        string path = tmp.Write("metrics.jsonl",
            "{\"step\": 1, \"loss\": 2.5}\n" +
            "{\"step\": 1, \"eval\": {\"s\": {\"accuracy\": 0.5, \"format_compliance\": null, \"items\": 2}}, \"eval_s\": 0.1}\n" +
            "{\"step\": 2, \"loss\": 2.0}\n" +
            "\n" +
            "{\"step\": 2, \"eval\": {\"s\": {\"accuracy\": 1.0, \"items\": 2}}, \"eval_s\": 0.2}\n");
        var steps = MetricsLog.Read(path);
        Assert.Equal([1, 2], steps.Select(s => s.Step));
        Assert.Equal([2.5, 2.0], steps.Select(s => s.Loss));
        var evals = MetricsLog.ReadEvals(path);
        Assert.Equal([1, 2], evals.Select(e => e.Step));
        Assert.Equal([0.5, 1.0], evals.Select(e => e.Eval["s"].Accuracy!.Value));
        Assert.Equal(2, evals[0].Eval["s"].Items);

        string bad = tmp.Write("bad.jsonl", "{\"step\": 1, \"loss\": 2.5}\n{\"step\": 1, \"eval\": {\"s\": {\"accuracy\": \"high\"}}}\n");
        Assert.Single(MetricsLog.Read(bad));
        var e = Assert.Throws<Raft.Pipeline.Data.DataFormatException>(() => MetricsLog.ReadEvals(bad));
        Assert.Contains("line 2", e.Message);
        Assert.Contains(bad, e.Message);

        // raft plot's panels: an evaluation panel only when there are eval lines
        Assert.Equal(6, MetricsPlot.Panels(steps).Count);
        var panels = MetricsPlot.Panels(steps, evals);
        Assert.Equal(7, panels.Count);
        var acc = Assert.Single(panels[^1].Series);   // no format compliance in this set
        Assert.Equal("s accuracy", acc.Name);
        Assert.Equal([(1.0, 0.5), (2.0, 1.0)], acc.Points);
    }

    [Fact]
    public void Bad_eval_options_and_files_are_refused_by_name()
    {
        using var tmp = new TempDir();
        var (math, _) = Sets(tmp);
        void Refused(TrainOptions o, string param, params string[] parts)
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => TinyModels.Trainer(TinyModels.Model(), o));
            Assert.Equal(param, e.ParamName);
            foreach (string p in parts) Assert.Contains(p, e.Message);
        }
        var sft = TinyModels.Sft(2);
        Refused(sft with { EvalSet = [math], EvalEvery = -1 }, "eval_every", "eval_every = -1", "≥ 0");
        Refused(sft with { EvalEvery = 2 }, "eval_every", "needs eval_set");
        Refused(sft with { EvalSet = [math], EvalMaxNewTokens = 0 }, "eval_max_new_tokens", "eval_max_new_tokens = 0");
        Refused(sft with { EvalSet = [math, ""] }, "eval_set", "empty file name");
        Refused(sft with { EvalSet = [tmp.File("none.jsonl")] }, "eval_set", tmp.File("none.jsonl"), "does not exist");
        string broken = tmp.Write("broken.jsonl", "{\"prompt\": \"a\"}\n{\"answer\": \"no prompt\"}\n");
        Refused(sft with { EvalSet = [broken] }, "eval_set", broken, "line 2", "prompt");
        string empty = tmp.Write("empty.jsonl", "\n");
        Refused(sft with { EvalSet = [empty] }, "eval_set", empty, "no items");
        Directory.CreateDirectory(tmp.File("other"));
        string twin = tmp.Write(Path.Combine("other", "math.jsonl"), "{\"prompt\": \"a\"}\n");
        Refused(sft with { EvalSet = [math, twin] }, "eval_set", twin, "\"math\"", "already used by " + math);
        string longPrompt = tmp.Write("long.jsonl", "{\"prompt\": \"ok\"}\n" + JsonSerializer.Serialize(new { prompt = new string('x', 200) }) + "\n");
        Refused(sft with { EvalSet = [longPrompt] }, "eval_set", longPrompt, "line 2", "max_position_embeddings");
    }
}
