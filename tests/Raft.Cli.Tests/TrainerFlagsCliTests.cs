using System.Text.Json;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// What a Hugging Face Trainer user expects of <c>raft sft</c> / <c>raft train</c> (issue #16 part 5, #19's <c>--steps 1</c>),
/// through the real command line.
/// </summary>
public class TrainerFlagsCliTests : CliHarness
{
    private static void AssertOk(CliResult r) => Assert.True(r.Code == 0, r.ToString());

    [Theory]
    [InlineData("sft")]
    [InlineData("train")]
    public void Steps_1_moves_the_weights_with_the_default_warmup(string command)
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        string[] raft = command == "train" ? ["--top-k", "4", "--rollout-max-tokens", "4", "--teacher-provider", "cpu"] : [];
        // the default warm-up (10 steps) is cut to the run's one step: its one update is at the peak learning rate
        AssertOk(Raft([command, "--model", ckpt, "--data", data, "--out", run, "--threads", "1", "--steps", "1", "--batch-size", "2", .. raft]));
        var before = PipelineFixtures.Weights(ckpt);
        var after = PipelineFixtures.Weights(Path.Combine(run, Trainer.FinalDir));
        Assert.Equal(before.Length, after.Length);
        Assert.True(before.Zip(after).Count(p => p.First != p.Second) > before.Length / 2, "one step left most weights unchanged");
        var line = JsonDocument.Parse(File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Single()).RootElement;
        Assert.Equal(1e-3, line.GetProperty("lr").GetDouble(), 12);
    }

    [Fact]
    public void Epochs_replace_steps_and_both_are_refused_by_name()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));   // 4 examples
        string[] common = ["sft", "--model", ckpt, "--data", data, "--threads", "1", "--batch-size", "2"];
        var both = Raft([.. common, "--out", PathOf("both"), "--steps", "3", "--epochs", "2"]);
        Assert.Equal(2, both.Code);
        Assert.Contains("--steps", both.Stderr);
        Assert.Contains("--epochs", both.Stderr);
        Assert.False(Directory.Exists(PathOf("both")));
        string config = PathOf("config.json");
        File.WriteAllText(config, "{\"steps\": 3}");
        var mixed = Raft([.. common, "--out", PathOf("mixed"), "--config", config, "--epochs", "2"]);
        Assert.Equal(2, mixed.Code);
        Assert.Contains("--epochs", mixed.Stderr);

        string run = PathOf("run");
        var ok = Raft([.. common, "--out", run, "--epochs", "2"]);   // 2 × ⌈4/2⌉ = 4 steps
        AssertOk(ok);
        Assert.Equal(4, JsonDocument.Parse(ok.Stdout).RootElement.GetProperty("steps").GetInt32());
        Assert.Equal(4, File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length);
        var bad = Raft([.. common, "--out", PathOf("bad"), "--epochs", "0"]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--epochs", bad.Stderr);
    }

    [Fact]
    public void Save_total_limit_keeps_the_newest_checkpoints()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        AssertOk(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--threads", "1", "--batch-size", "2", "--steps", "4",
            "--checkpoint-every", "1", "--save-total-limit", "2"]));
        Assert.Equal(["step-0000002", "step-0000003"],
            Directory.GetDirectories(Path.Combine(run, Trainer.CheckpointsDir)).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var bad = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("bad"), "--save-total-limit", "0"]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--save-total-limit", bad.Stderr);
    }

    [Fact]
    public void Max_length_truncates_and_counts_and_one_beyond_the_model_is_refused()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));   // 256 positions
        string data = PathOf("long.jsonl");
        string longAnswer = string.Concat(Enumerable.Repeat("and so on ", 30));   // 300 bytes: over 256 positions
        File.WriteAllLines(data, [
            "{\"prompt\": \"Flip 12.\", \"answer\": \"21\"}",
            $"{{\"prompt\": \"Count.\", \"answer\": \"{longAnswer}\"}}",
            "{\"prompt\": \"Flip 34.\", \"answer\": \"43\"}",
            $"{{\"prompt\": \"Count again.\", \"answer\": \"{longAnswer}\"}}",
        ]);
        string[] common = ["--model", ckpt, "--data", data, "--threads", "1", "--batch-size", "2", "--steps", "1"];
        // the default limit, the model's positions: the two long answers are cut (they used to be refused)
        var sft = Raft(["sft", .. common, "--out", PathOf("sft")]);
        AssertOk(sft);
        var line = JsonDocument.Parse(sft.Stdout).RootElement;
        Assert.Equal(256, line.GetProperty("max_length").GetInt32());
        Assert.Equal(2, line.GetProperty("truncated_examples").GetInt32());
        Assert.Contains("max_length 256 (the model's max_position_embeddings): 2 of 4 examples truncated", sft.Stderr);

        // RAFT with --max-length 20: the long ones are cut, the short ones fit; rollouts are limited to the room left
        var raft = Raft(["train", .. common, "--out", PathOf("raft"), "--top-k", "4", "--rollout-max-tokens", "8", "--teacher-provider", "cpu", "--max-length", "20"]);
        AssertOk(raft);
        Assert.Equal(2, JsonDocument.Parse(raft.Stdout).RootElement.GetProperty("truncated_examples").GetInt32());
        Assert.Contains("max_length 20: 2 of 4 examples truncated", raft.Stderr);
        Assert.Contains("limited to fit (prompt + rollout ≤ 20)", raft.Stderr);
        Assert.Equal(20, JsonDocument.Parse(File.ReadAllText(Path.Combine(PathOf("raft"), Trainer.ConfigFile))).RootElement.GetProperty("max_length").GetInt32());

        foreach (string bad in new[] { "257", "1" })
        {
            var r = Raft(["sft", .. common, "--out", PathOf("bad" + bad), "--max-length", bad]);
            Assert.Equal(2, r.Code);
            Assert.Contains("--max-length", r.Stderr);
            Assert.Contains(bad == "257" ? "max_position_embeddings 256" : "≥ 2", r.Stderr);
            Assert.False(Directory.Exists(PathOf("bad" + bad)));
        }
    }

    [Theory]
    [InlineData("sft")]
    [InlineData("train")]
    public void Eval_set_writes_eval_lines_and_bad_values_are_refused_by_name(string command)
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string math = PathOf("math.jsonl"), format = PathOf("format.jsonl");
        File.WriteAllLines(math, ["{\"prompt\": \"Flip 13.\", \"answer\": \"31\", \"extractor\": \"last_number\"}", "{\"prompt\": \"Flip 24.\", \"answer\": \"42\", \"extractor\": \"last_number\"}"]);
        File.WriteAllLines(format, ["{\"prompt\": \"Flip 35.\", \"instructions\": [{\"kind\": \"max_words\", \"value\": 50}]}"]);
        string[] raft = command == "train" ? ["--top-k", "4", "--rollout-max-tokens", "4", "--teacher-provider", "cpu"] : [];
        string[] common = [command, "--model", ckpt, "--data", data, "--threads", "1", "--batch-size", "2", "--steps", "3", "--warmup-steps", "1", .. raft];
        string run = PathOf("run");
        var ok = Raft([.. common, "--out", run, "--eval-set", math, "--eval-set", format, "--eval-every", "2", "--eval-max-new-tokens", "6"]);
        AssertOk(ok);
        var evals = MetricsLog.ReadEvals(Path.Combine(run, Trainer.MetricsFile));
        Assert.Equal([2, 3], evals.Select(e => e.Step));
        Assert.Equal(2, evals[^1].Eval["math"].Items);
        Assert.InRange(evals[^1].Eval["math"].Accuracy!.Value, 0, 1);
        Assert.InRange(evals[^1].Eval["format"].FormatCompliance!.Value, 0, 1);
        Assert.Equal([1, 2, 3], MetricsLog.Read(Path.Combine(run, Trainer.MetricsFile)).Select(m => m.Step));
        var line = JsonDocument.Parse(ok.Stdout).RootElement;
        Assert.Equal(3, line.GetProperty("eval_step").GetInt32());
        Assert.Equal(2, line.GetProperty("eval").GetProperty("math").GetProperty("items").GetInt32());
        Assert.Contains("step 2: eval math: accuracy ", ok.Stderr);
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, Trainer.ConfigFile))).RootElement;
        Assert.Equal([math, format], config.GetProperty("eval_set").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(2, config.GetProperty("eval_every").GetInt32());

        // a resume may drop (or add) the evaluation: the eval keys are not compared (here from final/: nothing left to do)
        var resumed = Raft([.. common, "--out", run, "--resume"]);
        AssertOk(resumed);
        Assert.Equal([2, 3], MetricsLog.ReadEvals(Path.Combine(run, Trainer.MetricsFile)).Select(e => e.Step));
        var changed = Raft([.. common, "--out", run, "--resume", "--learning-rate", "0.5"]);
        Assert.Equal(2, changed.Code);   // while a compared key still is
        Assert.Contains("learning_rate", changed.Stderr);

        // raft plot draws the evaluation panel (7 panels: 4 rows) and counts the evaluations
        var plot = Raft(["plot", run]);
        AssertOk(plot);
        Assert.Equal(3, plot.Json.GetProperty("steps").GetInt32());
        Assert.Equal(2, plot.Json.GetProperty("evals").GetInt32());
        Assert.Equal(4 * 400 + 70, PngDecoder.Decode(File.ReadAllBytes(PathOf("run-metrics.png"))).Height);

        // the same keys from a --config file
        string cfg = PathOf("eval-config.json");
        File.WriteAllText(cfg, JsonSerializer.Serialize(new Dictionary<string, object> { ["eval_set"] = new[] { math }, ["eval_max_new_tokens"] = 4 }));
        var fromConfig = Raft([.. common, "--out", PathOf("cfg"), "--config", cfg]);
        AssertOk(fromConfig);
        Assert.Equal([3], MetricsLog.ReadEvals(Path.Combine(PathOf("cfg"), Trainer.MetricsFile)).Select(e => e.Step));

        string broken = PathOf("broken.jsonl");
        File.WriteAllLines(broken, ["{\"prompt\": \"a\"}", "{\"answer\": \"no prompt\"}"]);
        foreach (var (args, name, text) in new (string[], string, string)[]
        {
            (["--eval-set", math, "--eval-every", "-1"], "--eval-every", "eval_every = -1"),
            (["--eval-every", "2"], "--eval-every", "needs eval_set"),
            (["--eval-set", math, "--eval-max-new-tokens", "0"], "--eval-max-new-tokens", "eval_max_new_tokens = 0"),
            (["--eval-set", math, "--eval-every", "x"], "--eval-every", "'x'"),
            (["--eval-set", PathOf("missing.jsonl")], "--eval-set", "missing.jsonl: file not found"),
            (["--eval-set", broken], "--eval-set", "broken.jsonl line 2"),
        })
        {
            string bad = PathOf("bad-" + Guid.NewGuid().ToString("N"));
            var r = Raft([.. common, "--out", bad, .. args]);
            Assert.True(r.Code == 2, r.ToString());
            Assert.Contains(name, r.Stderr);
            Assert.Contains(text, r.Stderr);
            Assert.False(Directory.Exists(bad));
        }
    }
}
