using System.Text.Json;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// Every flag whose value is one of a fixed set of words reads it case-insensitively, on every command (#19: README says
/// so; <c>--device CPU</c> worked on kd only, <c>kd --loss JSD</c>, <c>--lora-targets Q_PROJ</c> and
/// <c>--extractor LAST_NUMBER</c> were refused). What is recorded is the canonical lower-case spelling.
/// </summary>
public class CaseInsensitiveValueTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "1", "--batch-size", "2", "--warmup-steps", "1"];

    private (string Checkpoint, string Data) Inputs() =>
        (PipelineFixtures.Checkpoint(PathOf("base")), PipelineFixtures.Data(PathOf("data.jsonl")));

    private static JsonElement RunConfig(string run) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(run, Trainer.ConfigFile))).RootElement;

    [Fact]
    public void Sft_reads_upper_case_device_precision_dtype_collective_and_booleans()
    {
        var (ckpt, data) = Inputs();
        string run = PathOf("run");
        var r = Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--device", "CPU", "--precision", "FP32",
            "--base-weights-dtype", "AUTO", "--collective", "NONE", "--gradient-checkpointing", "TRUE", .. Tiny]);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal("cpu", r.Json.GetProperty("device").GetString());
        Assert.Equal("cpu", RunConfig(run).GetProperty("device").GetString());
        Assert.DoesNotContain("kernels on", r.Stderr); // cpu, as the lower-case spelling: quiet
    }

    [Fact]
    public void Sft_reads_upper_case_lora_targets_and_records_peft_names()
    {
        var (ckpt, data) = Inputs();
        string run = PathOf("run");
        var r = Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--device", "Cpu", "--lora-rank", "2", "--lora-targets", "Q_PROJ, V_Proj", .. Tiny]);
        Assert.True(r.Code == 0, r.ToString());
        using var adapter = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, Trainer.FinalDir, "adapter_config.json")));
        string[] modules = adapter.RootElement.GetProperty("target_modules").EnumerateArray().Select(m => m.GetString()!).Order().ToArray();
        Assert.Equal(new[] { "q_proj", "v_proj" }, modules);

        var all = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("all"), "--device", "cpu", "--lora-rank", "2", "--lora-targets", "ALL-LINEAR", .. Tiny]);
        Assert.True(all.Code == 0, all.ToString());
    }

    [Fact]
    public void Train_reads_upper_case_device_provider_loss_kind_and_teacher_dtype()
    {
        var (ckpt, data) = Inputs();
        string run = PathOf("run");
        var r = Raft(["train", "--model", ckpt, "--data", data, "--out", run, "--device", "CPU", "--teacher-provider", "CPU",
            "--loss-kind", "JSD", "--teacher-weights-dtype", "FP32", "--rollout-max-tokens", "2", .. Tiny]);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal("cpu", RunConfig(run).GetProperty("device").GetString());
    }

    [Fact]
    public void Kd_reads_upper_case_loss_and_device()
    {
        var r = Raft("kd", "--example", "--rows", "4", "--vocab", "300", "--top-k", "8", "--threads", "1", "--loss", "JSD", "--device", "CPU");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal("jsd", r.Json.GetProperty("loss_kind").GetString());
        var rk = Raft("kd", "--example", "--rows", "4", "--vocab", "300", "--top-k", "8", "--threads", "1", "--loss", "Reverse-KL");
        Assert.True(rk.Code == 0, rk.ToString());
        Assert.Equal("reverse-kl", rk.Json.GetProperty("loss_kind").GetString());
    }

    [Fact]
    public void Refine_reads_upper_case_extractor_provider_and_weights_dtype()
    {
        var (ckpt, data) = Inputs();
        string refined = PathOf("refined.jsonl");
        var r = Raft("refine", "--teacher", ckpt, "--data", data, "--out", refined, "--candidates", "1", "--max-new-tokens", "2", "--threads", "1",
            "--teacher-provider", "CPU", "--extractor", "LAST_NUMBER", "--weights-dtype", "FP32");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal(4, File.ReadAllLines(refined).Length);
        // a marker's text is kept as written: only the kind is case-insensitive
        var marker = Raft("refine", "--teacher", ckpt, "--data", data, "--out", PathOf("m.jsonl"), "--candidates", "1", "--max-new-tokens", "2", "--threads", "1",
            "--teacher-provider", "cpu", "--extractor", "Marker:");
        Assert.Equal(2, marker.Code);
        Assert.Contains("empty marker", marker.Stderr);
    }

    [Fact]
    public void Export_gguf_and_eval_read_upper_case_dtypes()
    {
        var (ckpt, _) = Inputs();
        // the tiny raft checkpoint has no GGUF export: refused after --dtype was read, for the model, not for the dtype
        var gguf = Raft("export-gguf", "--model", ckpt, "--out", PathOf("m.gguf"), "--dtype", "F16");
        Assert.Equal(2, gguf.Code);
        Assert.Contains("model_type", gguf.Stderr);
        Assert.DoesNotContain("--dtype", Raft("export-gguf", "--model", ckpt, "--out", PathOf("m.gguf"), "--dtype", "BF16").Stderr);
        Assert.Contains("--dtype must be f32, f16 or bf16, got 'f8'", Raft("export-gguf", "--model", ckpt, "--out", PathOf("m.gguf"), "--dtype", "f8").Stderr);
        string set = PathOf("eval.jsonl");
        File.WriteAllText(set, "{\"prompt\": \"Flip 12.\", \"answer\": \"21\", \"extractor\": \"LAST_NUMBER\"}\n");
        var eval = Raft("eval", "--model", ckpt, "--set", set, "--out", PathOf("eval"), "--max-new-tokens", "2", "--threads", "1", "--weights-dtype", "FP32");
        Assert.True(eval.Code == 0, eval.ToString());
    }

    [Fact]
    public void Demo_and_pretrain_read_upper_case_world_and_teacher()
    {
        // checked before any work: the next error is about another option, not --world / --teacher
        var demo = Raft("demo", "--world", "V1", "--teacher", "ENGINE", "--gap-check");
        Assert.Equal(2, demo.Code);
        Assert.Contains("--gap-check needs --world v2", demo.Stderr);
        var v2 = Raft("demo", "--world", "V2", "--teacher", "Onnx", "--base", PathOf("absent"));
        Assert.Equal(2, v2.Code);
        Assert.Contains("--base", v2.Stderr);
        Assert.DoesNotContain("--world must", v2.Stderr);
        var pretrain = Raft("pretrain", "--world", "V2", "--copy-steps", "3", "--out", PathOf("base2"));
        Assert.Equal(2, pretrain.Code);
        Assert.Contains("--copy-steps: the v2 base has one phase", pretrain.Stderr);
    }
}
