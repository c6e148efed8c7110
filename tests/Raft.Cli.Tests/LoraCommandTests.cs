using System.Text.Json.Nodes;
using Raft.Model;

namespace Raft.Cli.Tests;

/// <summary>LoRA on the command line: train/sft with --lora-*, eval --adapter, merge-lora.</summary>
public class LoraCommandTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "2", "--batch-size", "2", "--warmup-steps", "1"];

    [Fact]
    public void RaftWithLoraTrainsAdaptersWithTheBaseAsTeacherAndMergesIntoAPlainCheckpoint()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        var r = Raft(["train", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--lora-rank", "2", "--lora-alpha", "4",
            "--lora-targets", "all-linear", "--top-k", "4", "--rollout-max-tokens", "4", .. Tiny]);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("the student's base (LoRA adapters off)", r.Stderr);
        string final = Path.Combine(PathOf("run"), "final");
        Assert.True(File.Exists(Path.Combine(final, LoraFiles.ConfigFile)), r.ToString());
        Assert.False(File.Exists(Path.Combine(final, "model.safetensors")));
        var baseWeights = PipelineFixtures.Weights(ckpt);

        r = Raft("merge-lora", "--model", ckpt, "--adapter", final, "--out", PathOf("merged"));
        Assert.True(r.Code == 0, r.ToString());
        var (config, weights) = Checkpoint.Load(ckpt);
        var adapters = LoraFiles.Load(final, DecoderLayout.For(config));
        var (mc, merged) = Checkpoint.Load(PathOf("merged"));
        var tokens = new[] { 1, 5, 9, 3, 7, 2 };
        var unmergedLogits = new LlamaModel(config, weights) { Threads = 1, Lora = adapters }.Forward(tokens, 1, tokens.Length);
        var mergedLogits = new LlamaModel(mc, merged) { Threads = 1 }.Forward(tokens, 1, tokens.Length);
        double e = 0;
        for (int i = 0; i < mergedLogits.Length; i++)
            e = Math.Max(e, Math.Abs(mergedLogits[i] - unmergedLogits[i]) / Math.Max(1.0, Math.Abs(unmergedLogits[i])));
        Assert.True(e < 1e-5, $"merged vs unmerged logits: {e}");
        Assert.Equal(baseWeights, PipelineFixtures.Weights(ckpt));   // the base folder is untouched

        // eval with the adapter, and a refused PEFT option naming its key (exit 2)
        string set = PathOf("eval.jsonl");
        File.WriteAllText(set, "{\"prompt\": \"What is 2+3?\", \"answer\": \"5\"}\n");
        r = Raft("eval", "--model", ckpt, "--adapter", final, "--set", set, "--out", PathOf("report"), "--max-new-tokens", "4", "--threads", "1");
        Assert.True(r.Code == 0, r.ToString());
        var cfgPath = Path.Combine(final, LoraFiles.ConfigFile);
        var json = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
        json["use_dora"] = true;
        File.WriteAllText(cfgPath, json.ToJsonString());
        r = Raft("eval", "--model", ckpt, "--adapter", final, "--set", set, "--out", PathOf("report2"), "--threads", "1");
        Assert.Equal(2, r.Code);
        Assert.Contains("adapter_config.json key use_dora = true", r.Stderr);
    }

    [Fact]
    public void LoraOptionsAreCheckedByNameAndSftWritesAnAdapter()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        var r = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("bad"), "--lora-rank", "2", "--lora-targets", "q_proj,lm_head", .. Tiny]);
        Assert.Equal(2, r.Code);
        Assert.Contains("lora_targets", r.Stderr);
        Assert.False(Directory.Exists(PathOf("bad")));
        r = Raft(["sft", "--model", ckpt, "--data", data, "--out", PathOf("run"), "--lora-rank", "2", "--lora-dropout", "0.1", .. Tiny]);
        Assert.True(r.Code == 0, r.ToString());
        var cfg = LoraFiles.ReadConfig(Path.Combine(PathOf("run"), "final", LoraFiles.ConfigFile));
        Assert.Equal(["q_proj", "v_proj"], cfg.Config.TargetModules);
        Assert.Equal(0.1, cfg.Config.Dropout);
        Assert.Equal(Path.GetFullPath(ckpt), cfg.BaseModel);
    }
}
