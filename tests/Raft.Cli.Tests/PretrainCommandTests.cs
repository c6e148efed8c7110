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
}
