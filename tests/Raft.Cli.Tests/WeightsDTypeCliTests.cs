using System.Text.Json;
using Raft.Model;

namespace Raft.Cli.Tests;

/// <summary>
/// --weights-dtype (eval), weights_dtype (refine) and teacher_weights_dtype (train): a BF16 checkpoint served on its
/// 16-bit weights gives the results of its fp32 widening; bad values, an ONNX teacher and a checkpoint in the other
/// 16-bit dtype exit 2 naming the option or the tensor.
/// </summary>
public class WeightsDTypeCliTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "2", "--batch-size", "2", "--warmup-steps", "1"];

    private string Saved(string name, SafeTensorDType dtype)
    {
        string src = PipelineFixtures.Checkpoint(PathOf(name + "-f32"));
        var (config, weights) = Checkpoint.Load(src);
        string dir = PathOf(name);
        Checkpoint.Save(dir, config, weights, dtype: dtype);
        return dir;
    }

    private static void AssertUsage(CliResult r, params string[] mentions)
    {
        Assert.True(r.Code == 2, r.ToString());
        foreach (var m in mentions) Assert.Contains(m, r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    private string EvalSet()
    {
        string set = PathOf("eval.jsonl");
        File.WriteAllLines(set,
        [
            "{\"prompt\": \"Flip 12.\", \"answer\": \"21\", \"extractor\": \"last_number\"}",
            "{\"prompt\": \"What is 1+1?\", \"answer\": \"2\", \"extractor\": \"last_number\", \"instructions\": [{\"kind\": \"lowercase\"}]}",
        ]);
        return set;
    }

    [Fact]
    public void Eval_and_refine_on_bf16_weights_as_stored_match_the_fp32_widening()
    {
        string ckpt = Saved("bf16", SafeTensorDType.BF16);
        string set = EvalSet();
        var e32 = Raft("eval", "--model", ckpt, "--set", set, "--out", PathOf("e32"), "--max-new-tokens", "6", "--threads", "1");
        var e16 = Raft("eval", "--model", ckpt, "--set", set, "--out", PathOf("e16"), "--max-new-tokens", "6", "--threads", "1", "--weights-dtype", "bf16");
        Assert.True(e32.Code == 0, e32.ToString());
        Assert.True(e16.Code == 0, e16.ToString());
        Assert.Contains("weights: bf16 (inference only)", e16.Stderr);
        Assert.DoesNotContain("weights: ", e32.Stderr);
        Assert.Equal(File.ReadAllText(Path.Combine(PathOf("e32"), "report.json")).Replace(PathOf("e32"), ""),
                     File.ReadAllText(Path.Combine(PathOf("e16"), "report.json")).Replace(PathOf("e16"), ""));

        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        var r32 = Raft("refine", "--teacher", ckpt, "--data", data, "--out", PathOf("r32.jsonl"), "--candidates", "2", "--max-new-tokens", "4", "--threads", "1");
        var r16 = Raft("refine", "--teacher", ckpt, "--data", data, "--out", PathOf("r16.jsonl"), "--candidates", "2", "--max-new-tokens", "4", "--threads", "1",
            "--weights-dtype", "bf16");
        Assert.True(r32.Code == 0, r32.ToString());
        Assert.True(r16.Code == 0, r16.ToString());
        Assert.Contains("(bf16 weights)", r16.Stderr);
        Assert.Equal(File.ReadAllLines(PathOf("r32.jsonl")), File.ReadAllLines(PathOf("r16.jsonl")));

        // the frozen teacher of RAFT on bf16 weights; the student trains on fp32
        var run = Raft(["train", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--teacher", ckpt, "--teacher-weights-dtype", "bf16", .. Tiny]);
        Assert.True(run.Code == 0, run.ToString());
        Assert.Contains("(bf16 weights)", run.Stderr);
        var cfg = JsonDocument.Parse(File.ReadAllText(Path.Combine(PathOf("run"), "config.json"))).RootElement;
        Assert.Equal("bf16", cfg.GetProperty("teacher_weights_dtype").GetString());
    }

    [Fact]
    public void Bad_values_exit_2_naming_the_option_and_value()
    {
        string ckpt = Saved("bf16", SafeTensorDType.BF16);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        AssertUsage(Raft("eval", "--model", ckpt, "--set", EvalSet(), "--out", PathOf("e"), "--weights-dtype", "int8"), "--weights-dtype", "int8", "fp32, bf16 or fp16");
        Assert.False(Directory.Exists(PathOf("e")));
        AssertUsage(Raft("refine", "--teacher", ckpt, "--data", data, "--out", PathOf("r.jsonl"), "--weights-dtype", "q4"), "weights_dtype", "q4");
        AssertUsage(Raft(["train", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--teacher", ckpt, "--teacher-weights-dtype", "half", .. Tiny]),
            "teacher_weights_dtype", "half");
        string cfg = PathOf("train.json");
        File.WriteAllText(cfg, "{\"teacher_weights_dtype\": \"fp8\"}");
        AssertUsage(Raft(["train", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--teacher", ckpt, "--config", cfg, .. Tiny]),
            "teacher_weights_dtype", "fp8");
        Assert.False(Directory.Exists(PathOf("run")));
    }

    [Fact]
    public void The_other_16_bit_dtype_and_an_onnx_teacher_are_refused()
    {
        string f16 = Saved("f16", SafeTensorDType.F16);
        var r = Raft("eval", "--model", f16, "--set", EvalSet(), "--out", PathOf("e"), "--weights-dtype", "bf16");
        AssertUsage(r, "model.embed_tokens.weight", "F16", "model.safetensors");
        var ok = Raft("eval", "--model", f16, "--set", EvalSet(), "--out", PathOf("e2"), "--weights-dtype", "fp16", "--max-new-tokens", "2", "--threads", "1");
        Assert.True(ok.Code == 0, ok.ToString());
        Assert.Contains("weights: fp16 (inference only)", ok.Stderr);

        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string onnx = PipelineFixtures.Onnx(ckpt, PathOf("onnx"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        AssertUsage(Raft("refine", "--teacher", onnx, "--tokenizer-from", ckpt, "--data", data, "--out", PathOf("r.jsonl"), "--weights-dtype", "bf16", "--threads", "1"),
            "bf16", "ONNX");
    }
}
