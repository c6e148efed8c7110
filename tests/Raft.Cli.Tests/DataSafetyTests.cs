using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// The data-safety rule through the real binary: no command writes into, over or inside its inputs; a non-empty run folder
/// needs --resume or --overwrite; --resume needs a checkpoint. Each refusal is exit 2 naming both options and the path, and
/// leaves the inputs byte-identical.
/// </summary>
public class DataSafetyTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "2", "--batch-size", "2", "--warmup-steps", "1"];

    private static void AssertUsage(CliResult r, params string[] mentions)
    {
        Assert.True(r.Code == 2, r.ToString());
        Assert.StartsWith("error: ", r.Stderr);
        foreach (var m in mentions) Assert.Contains(m, r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    /// <summary>Every file under <paramref name="dir"/> with its bytes, to show nothing changed.</summary>
    private static Dictionary<string, byte[]> Snapshot(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(dir, f), File.ReadAllBytes);

    private static void AssertSame(Dictionary<string, byte[]> before, string dir)
    {
        var after = Snapshot(dir);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (k, v) in before) Assert.True(v.AsSpan().SequenceEqual(after[k]), $"{k} changed");
    }

    [Fact]
    public void Sft_and_train_refuse_an_out_that_is_inside_or_contains_an_input()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        var before = Snapshot(ckpt);

        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", ckpt, .. Tiny]), "--out", "--model", ckpt, "is the same path as");
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", Path.Combine(ckpt, "run"), .. Tiny]), "--out", "--model", ckpt, "is inside the");
        Assert.False(Directory.Exists(Path.Combine(ckpt, "run")));
        // The data file as the run folder, and a run folder that holds the data.
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", data, .. Tiny]), "--out", "--data", data);
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", Dir, "--overwrite", .. Tiny]), "--out", "contains the", "--model");
        // A teacher inside the run folder, reached through a symbolic link to the folder.
        string link = PathOf("link-to-base");
        Directory.CreateSymbolicLink(link, ckpt);
        AssertUsage(Raft(["train", "--model", ckpt, "--teacher", ckpt, "--data", data, "--out", Path.Combine(link, "r"), .. Tiny]), "--out", "--model", ckpt);
        Assert.False(Directory.Exists(Path.Combine(ckpt, "r")));
        AssertSame(before, ckpt);
    }

    [Fact]
    public void Refine_kd_eval_and_exports_refuse_to_write_over_their_inputs()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        byte[] dataBytes = File.ReadAllBytes(data);
        var before = Snapshot(ckpt);

        AssertUsage(Raft("refine", "--teacher", ckpt, "--data", data, "--out", data, "--candidates", "1", "--threads", "1"), "--out", "--data", data, "is the same path as");
        // The summary goes beside the output: <out>.summary.json must not be an input either.
        string summaryVictim = PathOf("r.jsonl.summary.json");
        File.Copy(data, summaryVictim);
        AssertUsage(Raft("refine", "--teacher", ckpt, "--data", summaryVictim, "--out", PathOf("r.jsonl"), "--candidates", "1", "--threads", "1"), "--out (its summary)", "--data");
        Assert.False(File.Exists(PathOf("r.jsonl")));
        Assert.Equal(dataBytes, File.ReadAllBytes(data));

        var (student, teacher, _, _) = WriteLogits(3, 5);
        byte[] s = File.ReadAllBytes(student), t = File.ReadAllBytes(teacher);
        AssertUsage(Raft("kd", "--student", student, "--teacher", teacher, "--grad-out", student), "--grad-out", "--student", student);
        string link = PathOf("teacher-link.npy");
        File.CreateSymbolicLink(link, teacher);
        AssertUsage(Raft("kd", "--student", student, "--teacher", teacher, "--grad-out", link), "--grad-out", "--teacher", link);
        Assert.Equal(s, File.ReadAllBytes(student));
        Assert.Equal(t, File.ReadAllBytes(teacher));

        AssertUsage(Raft("eval", "--model", ckpt, "--set", data, "--out", ckpt, "--threads", "1"), "--out", "--model", ckpt);
        AssertUsage(Raft("export-onnx", "--model", ckpt, "--out", Path.Combine(ckpt, "onnx")), "--out", "--model", ckpt);
        AssertUsage(Raft("export-gguf", "--model", ckpt, "--out", Path.Combine(ckpt, "m.gguf")), "--out", "--model", ckpt);
        AssertSame(before, ckpt);
    }

    [Fact]
    public void A_non_empty_run_folder_needs_resume_or_overwrite_which_removes_only_the_old_runs_files()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        var first = Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--checkpoint-every", "1", .. Tiny]);
        Assert.True(first.Code == 0, first.ToString());
        Assert.True(Directory.Exists(Path.Combine(run, Trainer.CheckpointsDir, "step-0000001")));
        string notes = Path.Combine(run, "notes.txt");
        File.WriteAllText(notes, "mine");
        var old = Snapshot(run);

        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, .. Tiny]), "--out", run, "not empty", "--resume", "--overwrite");
        AssertSame(old, run);
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--resume", "--overwrite", .. Tiny]), "--resume", "--overwrite");
        AssertSame(old, run);

        // --overwrite with a bad input: refused before the old run is touched.
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", PathOf("missing.jsonl"), "--out", run, "--overwrite", .. Tiny]), "--data");
        AssertSame(old, run);

        var again = Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--overwrite", "--steps", "3", .. Tiny[..2], .. Tiny[4..]]);
        Assert.True(again.Code == 0, again.ToString());
        Assert.Contains("--overwrite", again.Stderr);
        Assert.False(Directory.Exists(Path.Combine(run, Trainer.CheckpointsDir)), "the old run's checkpoints were left beside the new run");
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length);
        Assert.Equal("mine", File.ReadAllText(notes));
    }

    [Fact]
    public void Resume_without_a_checkpoint_names_the_folder_instead_of_starting_afresh()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--resume", .. Tiny]), "--resume", run, "no checkpoint");
        Assert.False(Directory.Exists(run));
        Directory.CreateDirectory(Path.Combine(run, Trainer.CheckpointsDir, "step-0000001")); // a checkpoint that never got its state
        AssertUsage(Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--resume", .. Tiny]), "--resume", run, "no checkpoint");
        Assert.False(File.Exists(Path.Combine(run, Trainer.ConfigFile)));
    }
}
