using System.Diagnostics;
using System.Text.Json;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// The run folder under faults, through the real binary: one run per folder (a lock a crashed run does not leave stuck),
/// signals that stop a run between steps with its checkpoints loadable and resumable (sft, train and pretrain, whose
/// second process is refused by the lock while the first runs), runs that record what they were
/// made from (model, teacher, data by SHA-256) and refuse a resume from anything else, and a damaged newest checkpoint
/// that is named and passed over for the previous one.
/// </summary>
public class RunFolderTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--batch-size", "2", "--warmup-steps", "1"];

    private (string Model, string Data) Inputs() =>
        (PipelineFixtures.Checkpoint(PathOf("base")), PipelineFixtures.Data(PathOf("data.jsonl")));

    private static string[] Sft(string model, string data, string run, int steps, params string[] more) =>
        ["sft", "--model", model, "--data", data, "--out", run, "--steps", steps.ToString(System.Globalization.CultureInfo.InvariantCulture), .. Tiny, .. more];

    private static void AssertOk(CliResult r) => Assert.True(r.Code == 0, r.ToString());

    private static void WriteLock(string run, int pid, DateTime started, string host)
    {
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, ".raft.lock"),
            JsonSerializer.Serialize(new { pid, host, process_started_utc = started, command = "raft sft", token = "t" }));
    }

    [Fact]
    public void A_folder_locked_by_a_live_process_is_refused_and_a_dead_holders_lock_is_taken_over()
    {
        var (model, data) = Inputs();
        string run = PathOf("run");
        using (var sleeper = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!)
        {
            try
            {
                WriteLock(run, sleeper.Id, sleeper.StartTime.ToUniversalTime(), Environment.MachineName);
                AssertUsageLastLine(Raft(Sft(model, data, run, 2)), "--out", run, "another run is using this folder", $"pid {sleeper.Id}");
                Assert.False(File.Exists(Path.Combine(run, Trainer.ConfigFile)));
                // a lock from another host cannot be checked: refused, with the file to delete
                WriteLock(run, sleeper.Id, sleeper.StartTime.ToUniversalTime(), "elsewhere-host");
                AssertUsageLastLine(Raft(Sft(model, data, run, 2)), "host elsewhere-host", "delete", ".raft.lock");
                // the same pid with another start time is a reused pid: another process, so the lock is stale
                WriteLock(run, sleeper.Id, sleeper.StartTime.ToUniversalTime().AddHours(-1), Environment.MachineName);
                var reused = Raft(Sft(model, data, run, 2));
                AssertOk(reused);
                Assert.Contains($"took over the lock of pid {sleeper.Id}", reused.Stderr);
            }
            finally { sleeper.Kill(); }
        }
        Assert.False(File.Exists(Path.Combine(run, ".raft.lock")), "a finished run releases its lock");

        // a holder that exited (a crash): taken over, said so, and a lock file alone does not make the folder "not empty"
        string run2 = PathOf("run2");
        using var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        gone.WaitForExit();
        WriteLock(run2, gone.Id, DateTime.UtcNow.AddMinutes(-1), Environment.MachineName);
        var r = Raft(Sft(model, data, run2, 2));
        AssertOk(r);
        Assert.Contains($"took over the lock of pid {gone.Id}", r.Stderr);
        Assert.Contains("which no longer runs", r.Stderr);
        Assert.False(File.Exists(Path.Combine(run2, ".raft.lock")));
    }

    [Fact]
    public void A_lock_held_by_a_zombie_is_taken_over()
    {
        if (!OperatingSystem.IsLinux()) return; // zombies and /proc are Linux's; elsewhere the pid check decides
        // sh starts a child that exits a second later, then becomes `sleep`, which never reaps it: the child stays a
        // zombie (state Z) with its pid listed, like an mpirun rank re-parented to a PID 1 that does not reap. (A child
        // that exits at once can be reaped by sh itself before the exec: the test was flaky with `true &`.)
        using var parent = Process.Start(new ProcessStartInfo("sh", ["-c", "sleep 1 & echo $!; exec sleep 30"]) { UseShellExecute = false, RedirectStandardOutput = true })!;
        try
        {
            int zombie = int.Parse(parent.StandardOutput.ReadLine()!, System.Globalization.CultureInfo.InvariantCulture);
            var deadline = DateTime.UtcNow.AddSeconds(20);
            string stat = $"/proc/{zombie}/stat";
            while (!File.ReadAllText(stat).Contains(") Z ", StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline, $"pid {zombie} did not become a zombie");
                Thread.Sleep(20);
            }
            var started = Process.GetProcessById(zombie).StartTime.ToUniversalTime();
            var holder = new global::Raft.Cli.Commands.RunLock.Holder { Pid = zombie, Host = Environment.MachineName, ProcessStarted = started, Command = "raft train", Token = "t" };
            Assert.True(global::Raft.Cli.Commands.RunLock.HasEnded(zombie));
            Assert.False(global::Raft.Cli.Commands.RunLock.IsAlive(holder), "a zombie's lock is stale");
            // the living parent is alive by the same test
            var living = holder with { Pid = parent.Id, ProcessStarted = parent.StartTime.ToUniversalTime() };
            Assert.False(global::Raft.Cli.Commands.RunLock.HasEnded(parent.Id));
            Assert.True(global::Raft.Cli.Commands.RunLock.IsAlive(living));

            var (model, data) = Inputs();
            string run = PathOf("run-zombie");
            WriteLock(run, zombie, started, Environment.MachineName);
            var r = Raft(Sft(model, data, run, 2));
            AssertOk(r);
            Assert.Contains($"took over the lock of pid {zombie}", r.Stderr);
        }
        finally { parent.Kill(); parent.WaitForExit(); }
    }

    [Theory]
    [InlineData("sft", "TERM", 143)]
    [InlineData("sft", "INT", 130)]
    [InlineData("sft", "HUP", 129)]
    [InlineData("sft", "KILL", 137)]
    [InlineData("train", "TERM", 143)]
    [InlineData("train", "INT", 130)]
    [InlineData("train", "HUP", 129)]
    [InlineData("train", "KILL", 137)]
    [InlineData("pretrain", "TERM", 143)]
    [InlineData("pretrain", "KILL", 137)]
    public async Task A_signalled_run_keeps_its_checkpoints_loadable_and_resume_ends_where_an_uninterrupted_run_ends(string command, string signal, int exitCode)
    {
        var runs = new ResumableRun(command, PathOf);
        const int steps = 8;
        string whole = PathOf("whole"), run = PathOf("run");
        AssertOk(Raft(runs.Args(whole, steps)));

        // a slow step (test fault sleep:0:MS), so that the test can race and signal the run
        using var p = ResumableRun.Start(runs.Args(run, steps), ("RAFT_TEST_FAULT", "sleep:0:400"));
        var stderrTask = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        string second = Path.Combine(runs.Checkpoints(run), "step-0000002");
        ResumableRun.WaitFor(() => File.Exists(Path.Combine(second, Trainer.StateFile)), p, stderrTask, "the step-2 checkpoint");
        // a second process on the same folder, while the first runs: refused by the lock
        AssertUsageLastLine(Raft(runs.Args(run, steps, "--resume")), "another run is using this folder", $"pid {p.Id}");

        ResumableRun.Signal(p, signal);
        Assert.True(p.WaitForExit(120_000), "the run did not stop after the signal");
        string stderr = await stderrTask;
        Assert.True(p.ExitCode == exitCode, $"exit {p.ExitCode}, expected {exitCode}\n{stderr}");
        if (signal != "KILL")
        {
            Assert.Contains($"stopped by SIG{signal}", stderr);
            Assert.Contains("continue with --resume", stderr);
        }
        runs.AssertStoppedCleanly(run, exitedCleanly: signal != "KILL");

        var resumed = runs.AssertResumesTo(whole, run, steps);
        if (signal == "KILL") Assert.Contains($"took over the lock of pid {p.Id}", resumed.Stderr);
    }

    [Fact]
    public void A_run_records_its_inputs_and_resume_refuses_other_ones_by_name_unless_allowed()
    {
        var (model, data) = Inputs();
        string run = PathOf("run");
        AssertOk(Raft(Sft(model, data, run, 2, "--checkpoint-every", "1")));
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "inputs.json"))))
        {
            var inputs = doc.RootElement.GetProperty("inputs");
            Assert.Equal(Path.GetFullPath(data), inputs.GetProperty("data").GetProperty("path").GetString());
            Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(data))), inputs.GetProperty("data").GetProperty("sha256").GetString());
            Assert.Contains(inputs.GetProperty("model").GetProperty("files").EnumerateArray(), f => f.GetProperty("name").GetString() == "model.safetensors");
        }

        // other data: refused by name, before anything is loaded
        string other = PipelineFixtures.Data(PathOf("other.jsonl"), count: 5);
        AssertUsageLastLine(Raft(Sft(model, other, run, 2, "--resume")), "--data", other, "differs from the run's", "--allow-data-change");
        // the same file edited in place
        File.AppendAllText(data, "{\"prompt\": \"x\", \"answer\": \"y\"}\n");
        AssertUsageLastLine(Raft(Sft(model, data, run, 2, "--resume")), "--data", "differs", data);
        var allowed = Raft(Sft(model, data, run, 2, "--resume", "--allow-data-change"));
        AssertOk(allowed);
        Assert.Contains("--allow-data-change: --data", allowed.Stderr);
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "inputs.json"))))
            Assert.Equal("data", doc.RootElement.GetProperty("changes")[0].GetProperty("changed")[0].GetString());
        // recorded now: the edited file resumes without the flag
        AssertOk(Raft(Sft(model, data, run, 2, "--resume")));

        // a different model (one weight file rewritten) is refused; a moved copy with the same content is only said
        string retrained = PipelineFixtures.Checkpoint(PathOf("other-base"), seed: 9);
        AssertUsageLastLine(Raft(Sft(retrained, data, run, 2, "--resume")), "--model", "differs", "model.safetensors");
        string moved = PathOf("moved-base");
        Directory.CreateDirectory(moved);
        foreach (var f in Directory.GetFiles(model)) File.Copy(f, Path.Combine(moved, Path.GetFileName(f)));
        var r = Raft(Sft(moved, data, run, 2, "--resume"));
        AssertOk(r);
        Assert.Contains("same content", r.Stderr);
        Assert.False(Raft(["sft", "--model", model, "--data", data, "--out", PathOf("x"), "--allow-data-change", .. Tiny]).Code == 0);
    }

    [Fact]
    public void Resume_with_a_differently_shaped_model_or_other_options_exits_2_naming_what_differs()
    {
        var (model, data) = Inputs();
        string run = PathOf("run");
        AssertOk(Raft(Sft(model, data, run, 2)));
        // a wider vocabulary: its embedding has another shape (was: "Destination is too short", exit 1)
        string wide = PipelineFixtures.Checkpoint(PathOf("wide"), vocab: 300);
        var r = Raft(Sft(wide, data, run, 2, "--resume", "--allow-data-change"));
        AssertUsageLastLine(r, "cannot resume from", "differently shaped model", "model.embed_tokens.weight");
        // a changed option: exit 2 (was 1) naming the key
        AssertUsageLastLine(Raft(Sft(model, data, run, 2, "--resume", "--learning-rate", "0.005")), "learning_rate");
    }

    [Fact]
    public void A_damaged_newest_checkpoint_is_named_and_the_previous_one_is_used()
    {
        var (model, data) = Inputs();
        string whole = PathOf("whole"), run = PathOf("run");
        AssertOk(Raft(Sft(model, data, whole, 4, "--checkpoint-every", "1")));
        AssertOk(Raft(Sft(model, data, run, 4, "--checkpoint-every", "1")));
        // final/ half-written (truncated weights), step 3's optimizer state gone, step 2's trainer state not JSON
        string weights = Path.Combine(run, Trainer.FinalDir, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..(bytes.Length / 2)]);
        foreach (var f in Directory.GetFiles(Path.Combine(run, Trainer.CheckpointsDir, "step-0000003"), "optimizer*")) File.Delete(f);
        File.WriteAllText(Path.Combine(run, Trainer.CheckpointsDir, "step-0000002", Trainer.StateFile), "{\"step\": 2, ");

        var r = Raft(Sft(model, data, run, 4, "--checkpoint-every", "1", "--resume"));
        AssertOk(r);
        Assert.Contains($"checkpoint {Path.Combine(run, Trainer.FinalDir)} is damaged", r.Stderr);
        Assert.Contains("step-0000003 is damaged", r.Stderr);
        Assert.Contains("step-0000002 is damaged", r.Stderr);
        Assert.Contains("resuming from the previous checkpoint", r.Stderr);
        Assert.Contains("at step 1", r.Stderr);
        Assert.Equal(PipelineFixtures.Weights(Path.Combine(whole, Trainer.FinalDir)), PipelineFixtures.Weights(Path.Combine(run, Trainer.FinalDir)));
    }
}
