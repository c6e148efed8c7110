using System.Text.Json;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

public class PipelineCommandTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "2", "--batch-size", "2", "--warmup-steps", "1"];
    private static readonly string[] TinyRaft = [.. Tiny, "--top-k", "4", "--rollout-max-tokens", "4", "--teacher-provider", "cpu"];

    private static void AssertOk(CliResult r)
    {
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal(JsonValueKind.Object, r.Json.ValueKind);
    }

    private static void AssertRunDirectory(string run, int steps)
    {
        Assert.True(File.Exists(Path.Combine(run, Trainer.ConfigFile)));
        var metrics = File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile));
        Assert.Equal(steps, metrics.Length);
        Assert.All(metrics, l => JsonDocument.Parse(l));
        string final = Path.Combine(run, Trainer.FinalDir);
        foreach (var f in new[] { Checkpoint.ConfigFile, Checkpoint.WeightsFile, Trainer.StateFile })
            Assert.True(File.Exists(Path.Combine(final, f)), $"{final} has no {f}");
    }

    [Fact]
    public void Sft_takes_a_collective_and_rejects_an_unknown_one()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        var ok = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--collective", "none", .. Tiny]);
        AssertOk(ok);
        AssertRunDirectory(PathOf("run"), 2);
        var bad = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run2"), "--collective", "gloo", .. Tiny]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--collective gloo", bad.Stderr);
        Assert.False(Directory.Exists(PathOf("run2")));
    }

    [Fact]
    public void Shard_optimizer_is_a_bare_flag_or_true_false_and_a_bad_value_names_the_option()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        var bare = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--shard-optimizer", .. Tiny]);
        AssertOk(bare);
        Assert.Contains("\"shard_optimizer\": true", File.ReadAllText(Path.Combine(PathOf("run"), Trainer.ConfigFile)));
        var off = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run2"), "--shard-optimizer", "false", .. Tiny]);
        AssertOk(off);
        Assert.Contains("\"shard_optimizer\": false", File.ReadAllText(Path.Combine(PathOf("run2"), Trainer.ConfigFile)));
        var bad = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run3"), "--shard-optimizer", "maybe", .. Tiny]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--shard-optimizer 'maybe'", bad.Stderr);
        Assert.False(Directory.Exists(PathOf("run3")));
    }

    [Fact]
    public void Refine_then_train_then_eval_and_sft_on_a_tiny_checkpoint()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string onnx = PipelineFixtures.Onnx(ckpt, PathOf("base-onnx"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string refined = PathOf("refined.jsonl");

        // Stage 1 with the ONNX teacher (tokenizer from the checkpoint).
        var refine = Raft("refine", "--teacher", onnx, "--tokenizer-from", ckpt, "--data", data, "--out", refined,
            "--candidates", "2", "--max-new-tokens", "6", "--threads", "1", "--teacher-provider", "cpu");
        AssertOk(refine);
        Assert.Equal(4, refine.Json.GetProperty("examples").GetInt32());
        Assert.Equal(8, refine.Json.GetProperty("candidates").GetInt32());
        var lines = File.ReadAllLines(refined);
        Assert.Equal(4, lines.Length);
        foreach (var l in lines)
        {
            var e = JsonDocument.Parse(l).RootElement;
            Assert.Equal(2, e.GetProperty("candidates").GetArrayLength());
            Assert.Contains(e.GetProperty("fused_from").GetString(), new[] { "rewrite", "reference" });
        }
        var summary = JsonDocument.Parse(File.ReadAllText(refined + ".summary.json")).RootElement;
        Assert.Equal(4, summary.GetProperty("examples").GetInt32());

        // Stage 2 with the checkpoint folder as teacher.
        string run = PathOf("run");
        var train = Raft(["train", "--model", ckpt, "--data", refined, "--out", run, "--teacher", ckpt, .. TinyRaft]);
        AssertOk(train);
        Assert.Equal("raft", train.Json.GetProperty("method").GetString());
        Assert.Equal(2, train.Json.GetProperty("steps").GetInt32());
        AssertRunDirectory(run, 2);
        Assert.Contains("kd_loss", File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile))[0]);
        Assert.NotEqual(PipelineFixtures.Weights(ckpt), PipelineFixtures.Weights(Path.Combine(run, Trainer.FinalDir)));

        string sftRun = PathOf("sft");
        var sft = Raft(["sft", "--model", ckpt, "--data", refined, "--out", sftRun, .. Tiny]);
        AssertOk(sft);
        Assert.Equal("sft", sft.Json.GetProperty("method").GetString());
        AssertRunDirectory(sftRun, 2);
        Assert.DoesNotContain("\"kd_loss\":0", File.ReadAllText(Path.Combine(sftRun, Trainer.MetricsFile)));

        string set = PathOf("eval.jsonl");
        File.WriteAllLines(set,
        [
            "{\"prompt\": \"Flip 12.\", \"answer\": \"21\", \"extractor\": \"last_number\"}",
            "{\"prompt\": \"What is 1+1?\", \"answer\": \"2\", \"extractor\": \"last_number\", \"instructions\": [{\"kind\": \"lowercase\"}]}",
        ]);
        string evalOut = PathOf("eval");
        var eval = Raft("eval", "--model", Path.Combine(run, Trainer.FinalDir), "--set", set, "--out", evalOut, "--max-new-tokens", "4", "--threads", "1");
        AssertOk(eval);
        var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(evalOut, "report.json"))).RootElement;
        var line = Assert.Single(report.GetProperty("sets").EnumerateArray());
        Assert.Equal(2, line.GetProperty("n").GetInt32());
        Assert.Equal(2, line.GetProperty("answer_items").GetInt32());
        Assert.Equal(1, line.GetProperty("instruction_items").GetInt32());
        Assert.Equal(report.GetRawText().ReplaceLineEndings(" "), eval.Json.GetRawText());
        Assert.Contains("eval", File.ReadAllText(Path.Combine(evalOut, "report.md")));
        var answers = File.ReadAllLines(Path.Combine(evalOut, "answers.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(2, answers.Length);
        Assert.Equal("Flip 12.", answers[0].GetProperty("prompt").GetString());
        Assert.Equal(JsonValueKind.Null, answers[0].GetProperty("format_strict").ValueKind);
        Assert.Contains("lowercase", answers[1].GetProperty("prompt").GetString());
        var verdict = Assert.Single(answers[1].GetProperty("instructions").EnumerateArray());
        Assert.Equal("lowercase", verdict.GetProperty("kind").GetString());
        string answer1 = answers[1].GetProperty("answer").GetString()!;
        Assert.Equal(!answer1.Any(char.IsUpper), verdict.GetProperty("strict").GetBoolean());
        Assert.Equal(verdict.GetProperty("strict").GetBoolean(), answers[1].GetProperty("format_strict").GetBoolean());
    }

    [Fact]
    public void Train_resume_gives_the_final_weights_of_an_uninterrupted_run_and_a_changed_option_exits_2()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"), seed: 2);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"), 6);
        string[] args = [.. TinyRaft.Where((_, i) => i < 2 || i > 3), "--steps", "4", "--checkpoint-every", "2"];
        string a = PathOf("a"), b = PathOf("b");
        AssertOk(Raft(["train", "--model", ckpt, "--data", data, "--out", a, .. args]));
        AssertOk(Raft(["train", "--model", ckpt, "--data", data, "--out", b, .. args]));
        // Interrupted after the step-2 checkpoint: the final model never got written.
        Directory.Delete(Path.Combine(b, Trainer.FinalDir), recursive: true);
        Assert.True(Directory.Exists(Path.Combine(b, Trainer.CheckpointsDir, "step-0000002")));

        var changed = Raft(["train", "--model", ckpt, "--data", data, "--out", b, .. args, "--learning-rate", "0.5", "--resume"]);
        Assert.True(changed.Code == 2, changed.ToString());
        Assert.Contains("learning_rate", changed.Stderr);
        Assert.False(Directory.Exists(Path.Combine(b, Trainer.FinalDir)));

        var resumed = Raft(["train", "--model", ckpt, "--data", data, "--out", b, .. args, "--resume"]);
        AssertOk(resumed);
        Assert.Contains("resumed from", resumed.Stderr);
        Assert.Equal(PipelineFixtures.Weights(Path.Combine(a, Trainer.FinalDir)), PipelineFixtures.Weights(Path.Combine(b, Trainer.FinalDir)));
        Assert.Equal(4, File.ReadAllLines(Path.Combine(b, Trainer.MetricsFile)).Length);
    }

    [Theory]
    [InlineData("--trainable", "mlp(", "--trainable")]
    [InlineData("--learning-rate", "0", "--learning-rate")]
    [InlineData("--steps", "0", "--steps")]
    public void Demo_refuses_a_bad_budget_with_exit_code_2_naming_the_flag(string flag, string value, string expected)
    {
        var r = Raft("demo", flag, value, "--base", PathOf("no-base-needed"));
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains(expected, r.Stderr);
        Assert.Contains(value, r.Stderr);
    }

    [Theory]
    [InlineData(new[] { "--world", "v3" }, "--world", "v3")]
    [InlineData(new[] { "--gap-check" }, "--gap-check", "--world v2")]
    [InlineData(new[] { "--quick" }, "--quick", "--world v2")]
    [InlineData(new[] { "--world", "v2", "--learning-rate", "1e-3" }, "--learning-rate", "pre-registered")]
    [InlineData(new[] { "--world", "v2", "--quick" }, "--base", "v2 base")]
    public void Demo_v2_options_are_refused_by_name_with_exit_code_2(string[] args, string expected1, string expected2)
    {
        var r = Raft(["demo", .. args, "--base", PathOf("no-base-here"), "--teacher", "engine"]);
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains(expected1, r.Stderr);
        Assert.Contains(expected2, r.Stderr);
    }

    [Fact]
    public void Demo_v2_quick_prints_the_table_with_intervals_and_every_target_on_a_tiny_v2_base()
    {
        string basePath = PathOf("tiny-v2");
        var m = global::Raft.Pipeline.Demo.V2.DemoV2Base.Pretrain(
            global::Raft.Pipeline.Demo.DemoBase.PretrainOptions(steps: 4, learningRate: 3e-3, minLearningRate: 1e-4, warmup: 1, seed: 1) with { BatchSize = 2, Threads = 1 },
            config: global::Raft.Pipeline.Demo.DemoBase.ByteLlama(hidden: 16, intermediate: 32, layers: 1, heads: 2, kvHeads: 1, positions: 320));
        global::Raft.Model.Checkpoint.Save(basePath, m.Config, m.Parameters);
        string outDir = PathOf("v2-out");
        var r = Raft("demo", "--world", "v2", "--quick", "--base", basePath, "--steps", "1", "--teacher", "engine", "--threads", "1", "--out", outDir);
        Assert.True(r.Code == 0, r.ToString());
        foreach (string row in new[] { "base", "sft", "sdft", "raft" }) Assert.Contains($"| {row} | ", r.Stdout);
        Assert.Contains("Wilson", r.Stdout);
        Assert.Contains("seeds 1,", r.Stdout);
        Assert.Equal(5, r.Stdout.Split('\n').Count(l => l.StartsWith("- met", StringComparison.Ordinal) || l.StartsWith("- MISSED", StringComparison.Ordinal)));
        Assert.Contains("| raft | ", File.ReadAllText(Path.Combine(outDir, "report.md")));
    }

    [Fact]
    public void Help_lists_every_command()
    {
        var r = Raft("--help");
        Assert.True(r.Code == 0, r.ToString());
        foreach (var c in new[] { "demo", "refine", "train", "sft", "eval", "pretrain", "export-onnx", "export-gguf", "kd" })
            Assert.Matches($@"(?m)^\s+{c}\b", r.Stdout);
    }

    [Fact]
    public void Export_onnx_matches_the_checkpoint_forward()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"), seed: 3);
        string outDir = PathOf("onnx");
        var r = Raft("export-onnx", "--model", ckpt, "--out", outDir);
        AssertOk(r);
        Assert.Equal(Path.Combine(outDir, "model.onnx"), r.Json.GetProperty("model").GetString());

        var (config, weights) = Checkpoint.Load(ckpt);
        var model = new LlamaModel(config, weights) { Threads = 1 };
        int[] tokens = global::Raft.Model.Tokenization.ByteTokenizer.Instance.Encode("Flip 1234 please.");
        var expected = model.Forward(tokens, 1, tokens.Length);
        using var session = global::Raft.Teacher.TeacherSession.Open(outDir, new global::Raft.Teacher.TeacherOptions { Provider = global::Raft.Kernels.ComputeDevice.Cpu, IntraOpThreads = 1 });
        var actual = session.Forward(tokens.Select(t => (long)t).ToArray(), 1, tokens.Length);
        Assert.Equal(expected.Length, actual.Length);
        double maxRef = expected.Max(Math.Abs), maxDiff = 0;
        for (int i = 0; i < expected.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
        Assert.True(maxRef > 0.1, $"degenerate logits {maxRef}");
        Assert.True(maxDiff / maxRef < 1e-4, $"max |Δ| {maxDiff} vs max |logit| {maxRef}");
    }

    [Theory]
    [InlineData("rope_scaling", "{\"rope_type\": \"longrope\", \"long_factor\": [1], \"short_factor\": [1]}", "rope_scaling.rope_type = \"longrope\"")]
    [InlineData("hidden_act", "\"gelu\"", "hidden_act = \"gelu\"")]
    [InlineData("quantization_config", "{\"quant_method\": \"awq\"}", "quantization_config = {")]
    public void A_config_key_the_engine_does_not_compute_is_exit_2_naming_key_value_and_file(string key, string json, string named)
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"), seed: 3);
        string configPath = Path.Combine(ckpt, "config.json");
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        node[key] = System.Text.Json.Nodes.JsonNode.Parse(json);
        File.WriteAllText(configPath, node.ToJsonString());
        var r = Raft("export-onnx", "--model", ckpt, "--out", PathOf("onnx"));
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains($"config.json key {named}", r.Stderr);
        Assert.Contains(configPath, r.Stderr);
        Assert.False(Directory.Exists(PathOf("onnx")) && File.Exists(Path.Combine(PathOf("onnx"), "model.onnx")));
    }
}
