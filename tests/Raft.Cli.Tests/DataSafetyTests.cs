using System.Text.Json;
using Raft.Model;
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

    /// <summary>As <see cref="AssertUsage"/>, for a refusal after the inputs were opened (the teacher line precedes the error).</summary>
    private static void AssertUsageLast(CliResult r, params string[] mentions)
    {
        string last = AssertUsageLastLine(r, mentions);
        Assert.DoesNotContain("rollout", r.Stderr.Replace(last, ""));
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
        AssertUsage(Raft("eval", "--model", ckpt, "--set", data, "--out", Path.Combine(ckpt, "eval"), "--threads", "1"), "--out", "is inside the --model folder", ckpt);
        // eval adds only report.json, report.md and answers.jsonl: a folder that holds the model (runs/a with runs/a/final) is allowed.
        var beside = Raft("eval", "--model", ckpt, "--set", data, "--out", Dir, "--threads", "1", "--max-new-tokens", "2");
        Assert.True(beside.Code == 0, beside.ToString());
        Assert.True(File.Exists(PathOf("report.json")));
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

    [Fact]
    public void Outputs_are_checked_before_any_work_a_file_as_pretrains_out_and_an_unwritable_folder()
    {
        string file = PathOf("not-a-folder");
        File.WriteAllText(file, "mine");
        var r = Raft("pretrain", "--out", file, "--steps", "1", "--copy-steps", "1", "--threads", "1");
        AssertUsage(r, "--out", file, "is a file");
        Assert.Equal("mine", File.ReadAllText(file));
        Assert.False(Directory.Exists(file + ".run"), "the run directory was created for a run that never started");
        AssertUsage(Raft("pretrain", "--out", PathOf("base"), "--run-dir", file, "--steps", "1", "--copy-steps", "1", "--threads", "1"), "--run-dir", file);
        Assert.False(Directory.Exists(PathOf("base")));

        // /proc takes no new files, even for root: refused before the teacher or the data are read.
        string ckpt = PipelineFixtures.Checkpoint(PathOf("ckpt"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        AssertUsage(Raft("refine", "--teacher", ckpt, "--data", data, "--out", "/proc/raft-refined.jsonl", "--candidates", "1", "--threads", "1"),
            "--out", "/proc/raft-refined.jsonl", "cannot write in /proc");
        var (student, teacher, _, _) = WriteLogits(2, 4);
        AssertUsage(Raft("kd", "--student", student, "--teacher", teacher, "--grad-out", "/proc/raft-grad.npy"), "--grad-out", "/proc/raft-grad.npy");
    }

    public static TheoryData<string, string[]> NonFiniteFlags => new()
    {
        { "sft", ["--learning-rate", "NaN"] },
        { "sft", ["--learning-rate", "Infinity"] },
        { "sft", ["--clip-norm", "NaN"] },
        { "sft", ["--weight-decay", "-Infinity"] },
        { "train", ["--learning-rate", "NaN"] },
        { "train", ["--temperature", "NaN"] },
        { "train", ["--target-ratio", "NaN,1"] },
        { "train", ["--fixed-weights", "1,Infinity"] },
        { "refine", ["--temperature", "NaN"] },
        { "refine", ["--similarity-threshold", "NaN"] },
    };

    [Theory]
    [MemberData(nameof(NonFiniteFlags))]
    public void A_non_finite_number_is_refused_naming_the_flag(string command, string[] flag)
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        var r = command == "refine"
            ? Raft(["refine", "--teacher", ckpt, "--data", data, "--out", PathOf("r.jsonl"), "--candidates", "1", "--threads", "1", .. flag])
            : Raft([command, "--model", ckpt, "--data", data, "--out", run, .. Tiny, .. flag]);
        AssertUsage(r, flag[0], "finite");
        Assert.DoesNotContain("JSON", r.Stderr);
        Assert.DoesNotContain("(Parameter", r.Stderr);
        Assert.False(Directory.Exists(run));
        Assert.False(File.Exists(PathOf("r.jsonl")));
    }

    [Fact]
    public void A_run_whose_last_step_is_non_finite_writes_json_that_strict_readers_accept()
    {
        // A student with a NaN in its final norm: every loss is NaN, each step skipped (2 < max_nonfinite_steps 5).
        var model = LlamaModel.CreateRandom(PipelineFixtures.Config(), 3);
        model.Parameters.Tensors.First(t => t.Name == "model.norm.weight").Data[0] = float.NaN;
        string ckpt = PathOf("nan-base");
        Checkpoint.Save(ckpt, model.Config, model.Parameters);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        var r = Raft(["sft", "--model", ckpt, "--data", data, "--out", run, .. Tiny]);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal(JsonValueKind.Null, r.Json.GetProperty("final_loss").ValueKind);
        Assert.True(r.Json.GetProperty("final_loss_nonfinite").GetBoolean());
        Assert.Equal(2, r.Json.GetProperty("skipped_steps").GetInt32());
        var lines = File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile));
        Assert.Equal(2, lines.Length);
        foreach (var line in lines)
        {
            // Strict JSON (no NaN literal): the non-finite numbers are the strings "NaN", "Infinity" or "-Infinity".
            var loss = JsonDocument.Parse(line).RootElement.GetProperty("loss");
            Assert.Equal(JsonValueKind.String, loss.ValueKind);
            Assert.Equal("NaN", loss.GetString());
        }
        // A finite run says so too.
        string ok = PipelineFixtures.Checkpoint(PathOf("base"));
        var fine = Raft(["sft", "--model", ok, "--data", data, "--out", PathOf("run2"), .. Tiny]);
        Assert.True(fine.Code == 0, fine.ToString());
        Assert.False(fine.Json.GetProperty("final_loss_nonfinite").GetBoolean());
        Assert.True(double.IsFinite(fine.Json.GetProperty("final_loss").GetDouble()));
    }

    [Fact]
    public void Too_many_rollouts_are_refused_before_any_rollout_with_the_bound()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        var r = Raft(["train", "--model", ckpt, "--data", data, "--out", run, .. Tiny, "--rollouts-per-prompt", "100000"]);
        AssertUsage(r, "--rollouts-per-prompt", "100000", $"[1, {TrainOptions.MaxRolloutsPerPrompt}]");
        Assert.DoesNotContain("(Parameter", r.Stderr);
        Assert.False(Directory.Exists(run));
        // Within the bound, but a step's logits would not fit one array: refused with how many fit.
        var big = Raft(["train", "--model", ckpt, "--data", data, "--out", run, "--threads", "1", "--steps", "1", "--batch-size", "4000", "--rollouts-per-prompt", "1000"]);
        AssertUsageLast(big, "--rollouts-per-prompt", "rollouts_per_prompt = 1000", "more than one array holds", "at most");
        Assert.False(Directory.Exists(run));
        var sft = Raft(["sft", "--model", ckpt, "--data", data, "--out", run, "--threads", "1", "--steps", "1", "--batch-size", "200000000"]);
        AssertUsageLast(sft, "--batch-size", "more than one array holds");
        Assert.False(Directory.Exists(run));
    }
}
