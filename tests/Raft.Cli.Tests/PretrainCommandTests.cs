using Raft.Pipeline;
using Raft.Pipeline.Demo;

namespace Raft.Cli.Tests;

public class PretrainCommandTests : CliHarness
{
    [Fact]
    public void Pretrain_a_few_steps_writes_a_loadable_checkpoint()
    {
        string outDir = PathOf("base");
        var r = Raft("pretrain", "--steps", "3", "--copy-steps", "2", "--out", outDir, "--threads", "2");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal(3, r.Json.GetProperty("steps").GetInt32());
        Assert.Equal(2, r.Json.GetProperty("copy_steps").GetInt32());
        Assert.Equal(3, File.ReadAllLines(Path.Combine(outDir + ".run", "general", "metrics.jsonl")).Length);
        Assert.Equal(2, File.ReadAllLines(Path.Combine(outDir + ".run", "copy", "metrics.jsonl")).Length);
        var loaded = ModelStore.LoadStudent(outDir);
        Assert.Equal(DemoBase.Config.HiddenSize, loaded.Model.Config.HiddenSize);
        Assert.Equal(DemoBase.Config.NumHiddenLayers, loaded.Model.Config.NumHiddenLayers);
        Assert.Equal("raft", loaded.Template.Name);
        Assert.Equal(loaded.Model.Config.VocabSize, loaded.Tokenizer.VocabSize);
    }

    [Fact]
    public void Pretrain_refuses_to_write_over_a_base_or_a_run_without_overwrite_and_resumes_only_a_checkpoint()
    {
        string outDir = PathOf("base");
        var first = Raft("pretrain", "--steps", "2", "--copy-steps", "1", "--out", outDir, "--threads", "2");
        Assert.True(first.Code == 0, first.ToString());
        byte[] weights = File.ReadAllBytes(Path.Combine(outDir, "model.safetensors"));

        var again = Raft("pretrain", "--steps", "2", "--copy-steps", "1", "--out", outDir, "--threads", "2");
        Assert.Equal(2, again.Code);
        Assert.Contains("--overwrite", again.Stderr);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(outDir, "model.safetensors")));

        string other = PathOf("other");
        var runTaken = Raft("pretrain", "--steps", "2", "--out", other, "--run-dir", outDir + ".run", "--threads", "2");
        Assert.Equal(2, runTaken.Code);
        Assert.Contains("--run-dir", runTaken.Stderr);
        Assert.False(Directory.Exists(other));

        var both = Raft("pretrain", "--out", other, "--resume", "--overwrite");
        Assert.Equal(2, both.Code);
        Assert.Contains("exclude each other", both.Stderr);
        var nothing = Raft("pretrain", "--out", other, "--resume");
        Assert.Equal(2, nothing.Code);
        Assert.Contains("no checkpoint", nothing.Stderr);
        var copyV2 = Raft("pretrain", "--world", "v2", "--copy-steps", "3", "--out", other);
        Assert.Equal(2, copyV2.Code);
        Assert.Contains("--copy-steps", copyV2.Stderr);
        var world = Raft("pretrain", "--world", "v3", "--out", other);
        Assert.Equal(2, world.Code);
        Assert.Contains("v3", world.Stderr);

        // --overwrite replaces the base with the same deterministic run's result and starts the run directory afresh
        var redo = Raft("pretrain", "--steps", "2", "--copy-steps", "1", "--out", outDir, "--threads", "2", "--overwrite");
        Assert.True(redo.Code == 0, redo.ToString());
        Assert.Equal(2, File.ReadAllLines(Path.Combine(outDir + ".run", "general", "metrics.jsonl")).Length);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(outDir, "model.safetensors")));
    }
}
