namespace Raft.Cli.Tests;

/// <summary>Wrong input to refine/train/sft/eval: exit code 2, a message naming the culprit, and nothing written.</summary>
public class PipelineErrorTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "2", "--batch-size", "2", "--warmup-steps", "1"];

    private static void AssertUsage(CliResult r, params string[] mentions)
    {
        Assert.True(r.Code == 2, r.ToString());
        Assert.StartsWith("error: ", r.Stderr);
        foreach (var m in mentions) Assert.Contains(m, r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    private string BadData()
    {
        string path = PathOf("bad.jsonl");
        File.WriteAllLines(path,
        [
            "{\"prompt\": \"Flip 12.\", \"answer\": \"ok so ~~ 21 ~~ that's it\"}",
            "{\"prompt\": \"Flip 34.\", \"answer\": ",
            "{\"prompt\": \"Flip 56.\", \"answer\": \"ok so ~~ 65 ~~ that's it\"}",
        ]);
        return path;
    }

    [Fact]
    public void A_malformed_line_names_file_and_line_and_writes_nothing_unless_skipped()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = BadData();
        string run = PathOf("run"), refined = PathOf("refined.jsonl");

        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, .. Tiny]), data, "line 2", "--skip-bad-lines");
        Assert.False(Directory.Exists(run), "the run directory was created for a run that never started");
        AssertUsage(Raft("refine", "--teacher", ckpt, "--data", data, "--out", refined, "--candidates", "1", "--max-new-tokens", "2", "--threads", "1"), data, "line 2");
        Assert.False(File.Exists(refined));
        Assert.False(File.Exists(refined + ".summary.json"));

        AssertUsage(Raft("eval", "--model", ckpt, "--set", data, "--out", run, "--threads", "1"), data, "line 2");
        Assert.False(Directory.Exists(run));

        var ok = Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--skip-bad-lines", .. Tiny]);
        Assert.True(ok.Code == 0, ok.ToString());
        Assert.Contains($"skipped 1 malformed line(s) of {data}", ok.Stderr);
        var okRefine = Raft("refine", "--teacher", ckpt, "--data", data, "--out", refined, "--candidates", "1", "--max-new-tokens", "2", "--threads", "1", "--skip-bad-lines");
        Assert.True(okRefine.Code == 0, okRefine.ToString());
        Assert.Equal(2, okRefine.Json.GetProperty("examples").GetInt32());
        Assert.Equal(2, File.ReadAllLines(refined).Length);
    }

    [Fact]
    public void Non_utf8_bytes_in_jsonl_are_refused_by_file_and_line_not_replaced()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PathOf("latin1.jsonl"), run = PathOf("run");
        // line 1 with a BOM and CRLF (valid), line 2 "café" in Latin-1 (0xE9 alone is not UTF-8)
        byte[] good = [0xEF, 0xBB, 0xBF, .. "{\"prompt\": \"Flip 12.\", \"answer\": \"ok so ~~ 21 ~~ that's it\"}\r\n"u8];
        byte[] bad = [.. "{\"prompt\": \"caf"u8, 0xE9, .. "\", \"answer\": \"x\"}\n"u8];
        File.WriteAllBytes(data, [.. good, .. bad]);
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, .. Tiny]), data, "line 2", "not valid UTF-8", "E9");
        Assert.False(Directory.Exists(run));
        AssertUsage(Raft("eval", "--model", ckpt, "--set", data, "--out", run, "--threads", "1"), data, "line 2", "not valid UTF-8");
        Assert.False(Directory.Exists(run));
        // the valid line alone (BOM, CRLF) still reads
        File.WriteAllBytes(data, good);
        var ok = Raft("eval", "--model", ckpt, "--set", data, "--out", run, "--threads", "1", "--max-new-tokens", "2");
        Assert.True(ok.Code == 0, ok.ToString());
    }

    [Fact]
    public void A_missing_teacher_folder_is_named()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string missing = PathOf("no-such-teacher"), run = PathOf("run");
        AssertUsage(Raft(["train", "--model", ckpt, "--data", data, "--out", run, "--teacher", missing, .. Tiny]), "--teacher", missing);
        Assert.False(Directory.Exists(run));
        AssertUsage(Raft("refine", "--teacher", missing, "--tokenizer-from", ckpt, "--data", data, "--out", PathOf("r.jsonl")), "--teacher", missing);
        Assert.False(File.Exists(PathOf("r.jsonl")));
    }

    [Fact]
    public void A_teacher_with_another_vocabulary_is_refused()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string other = PipelineFixtures.Onnx(PipelineFixtures.Checkpoint(PathOf("other"), vocab: 300), PathOf("other-onnx"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        AssertUsage(Raft(["train", "--model", ckpt, "--data", data, "--out", run, "--teacher", other, "--teacher-provider", "cpu", .. Tiny]), "--teacher", other, "300", "263");
        Assert.False(Directory.Exists(run));
        // Checkpoint teachers are checked too.
        AssertUsage(Raft(["train", "--model", ckpt, "--data", data, "--out", run, "--teacher", PathOf("other"), .. Tiny]), "300", "263");
        Assert.False(Directory.Exists(run));
    }

    [Fact]
    public void An_output_under_a_regular_file_is_refused()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        File.WriteAllText(PathOf("plain-file"), "not a directory");
        string run = Path.Combine(PathOf("plain-file"), "run");
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, .. Tiny]), "--out", run);
        AssertUsage(Raft("refine", "--teacher", ckpt, "--data", data, "--out", Path.Combine(PathOf("plain-file"), "r.jsonl")), "--out");
        AssertUsage(Raft("eval", "--model", ckpt, "--set", data, "--out", run), "--out", run);
        Assert.Equal("not a directory", File.ReadAllText(PathOf("plain-file")));
    }

    [Fact]
    public void An_unknown_config_key_and_a_bad_flag_value_are_named()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string config = PathOf("config.json"), run = PathOf("run");
        File.WriteAllText(config, "{\"steps\": 2, \"stepz\": 3}");
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--config", config]), "--config", config, "\"stepz\"");
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, .. Tiny, "--learning-rate", "abc"]), "--learning-rate", "'abc'");
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, .. Tiny, "--learning-rate", "-1"]), "learning_rate");
        AssertUsage(Raft("refine", "--teacher", ckpt, "--data", data, "--out", PathOf("r.jsonl"), "--candidates", "0"), "candidates");
        Assert.False(Directory.Exists(run));
        Assert.False(File.Exists(PathOf("r.jsonl")));
    }
}
