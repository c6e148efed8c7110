using System.Diagnostics;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>A test that mounts a small tmpfs (root and mount(8) needed); skipped, saying so, elsewhere.</summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root" || !(File.Exists("/bin/mount") || File.Exists("/usr/bin/mount")))
            Skip = "Mounting a small tmpfs (the full disk) needs root and mount(8) on Linux.";
        else if (!CanMount(out string why))
            Skip = $"Mounting a small tmpfs (the full disk) is not allowed here (an unprivileged container?): {why}";
    }

    /// <summary>Whether a tmpfs mounts here (a probe, unmounted at once).</summary>
    private static bool CanMount(out string why)
    {
        string dir = Path.Combine(Path.GetTempPath(), "raft-tmpfs-probe-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            using var p = Process.Start(new ProcessStartInfo("sh", ["-c", $"mount -t tmpfs -o size=64k raft-probe '{dir}' && umount '{dir}'"])
                { UseShellExecute = false, RedirectStandardError = true })!;
            why = p.StandardError.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        finally { try { Directory.Delete(dir); } catch (IOException) { } }
    }
}

/// <summary>
/// A disk that fills up during a run (#19, faults): a small tmpfs as the run folder's file system. The run stops with a
/// clear error naming the full disk and what to do (exit 1: an I/O failure, not bad input), every checkpoint written
/// before stays loadable, no staging folder is left, and once space is freed <c>--resume</c> ends where an uninterrupted
/// run ends, bit for bit.
/// </summary>
public class FullDiskTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--batch-size", "2", "--warmup-steps", "1", "--device", "cpu"];

    private static string[] Sft(string model, string data, string run, params string[] more) =>
        ["sft", "--model", model, "--data", data, "--out", run, "--steps", "8", "--checkpoint-every", "1", .. Tiny, .. more];

    private static void Sh(string command)
    {
        using var p = Process.Start(new ProcessStartInfo("sh", ["-c", command]) { UseShellExecute = false, RedirectStandardError = true })!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{command}: exit {p.ExitCode}: {err}");
    }

    private static long Size(string dir) => Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => (new FileInfo(f).Length + 4095) / 4096 * 4096);

    [TmpfsFact]
    public void A_full_disk_stops_the_run_clearly_keeps_its_checkpoints_and_resume_finishes_it()
    {
        string model = PipelineFixtures.Checkpoint(PathOf("base")), data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string whole = PathOf("whole");
        var uninterrupted = Raft(Sft(model, data, whole));
        Assert.True(uninterrupted.Code == 0, uninterrupted.ToString());
        long checkpoint = Size(Path.Combine(whole, Trainer.CheckpointsDir, "step-0000001"));
        long total = Size(whole);

        string mount = PathOf("disk");
        Directory.CreateDirectory(mount);
        // room for about 3 of the 8 checkpoints (plus a staging copy being written)
        long bytes = 4 * checkpoint + 64 * 1024;
        Sh($"mount -t tmpfs -o size={bytes} raft-test-full '{mount}'");
        try
        {
            string run = Path.Combine(mount, "run");
            var full = Raft(Sft(model, data, run));
            Assert.True(full.Code == 1, full.ToString());
            string last = full.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
            Assert.StartsWith("error: ", last);
            Assert.Contains("no space left on the device", last);
            Assert.Contains("--resume", last);
            Assert.DoesNotContain("System.IO", last);
            Assert.False(Directory.Exists(Path.Combine(run, Trainer.FinalDir)));
            var kept = Directory.GetDirectories(Path.Combine(run, Trainer.CheckpointsDir));
            Assert.NotEmpty(kept);
            foreach (var ckpt in kept) Assert.NotEmpty(Checkpoint.Load(ckpt).Weights.Tensors);
            var staging = Directory.GetFileSystemEntries(run, "*staging*", SearchOption.AllDirectories);
            Assert.True(staging.Length == 0, "staging left behind: " + string.Join(", ", staging));
            Assert.False(File.Exists(Path.Combine(run, ".raft.lock")), "a failed run releases its lock");

            Sh($"mount -o remount,size={4 * total + 1024 * 1024} '{mount}'"); // space freed
            var resumed = Raft(Sft(model, data, run, "--resume"));
            Assert.True(resumed.Code == 0, resumed.ToString());
            Assert.Equal(PipelineFixtures.Weights(Path.Combine(whole, Trainer.FinalDir)), PipelineFixtures.Weights(Path.Combine(run, Trainer.FinalDir)));
            Assert.Equal(8, File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length);
        }
        finally { Sh($"umount -l '{mount}'"); }
    }

    [TmpfsFact]
    public void A_file_system_that_turns_read_only_mid_run_stops_it_clearly_and_resume_finishes_it()
    {
        string model = PipelineFixtures.Checkpoint(PathOf("base")), data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string whole = PathOf("whole");
        var uninterrupted = Raft(Sft(model, data, whole));
        Assert.True(uninterrupted.Code == 0, uninterrupted.ToString());

        string mount = PathOf("disk");
        Directory.CreateDirectory(mount);
        Sh($"mount -t tmpfs -o size=64m raft-test-ro '{mount}'");
        try
        {
            string run = Path.Combine(mount, "run");
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "raft.dll"));
            foreach (var a in Sft(model, data, run)) psi.ArgumentList.Add(a);
            psi.Environment["RAFT_TEST_FAULT"] = "sleep:0:400"; // a slow run, so the remount lands between steps
            using var p = Process.Start(psi)!;
            var stderrTask = p.StandardError.ReadToEndAsync();
            _ = p.StandardOutput.ReadToEndAsync();
            var sw = Stopwatch.StartNew();
            while (!File.Exists(Path.Combine(run, Trainer.CheckpointsDir, "step-0000002", Trainer.StateFile)))
            {
                Assert.False(p.HasExited, "the run ended before its step-2 checkpoint");
                Assert.True(sw.Elapsed < TimeSpan.FromMinutes(3), "timed out waiting for the step-2 checkpoint");
                Thread.Sleep(50);
            }
            // remount read-only (busy while a file is open for writing: retried)
            for (int attempt = 0; ; attempt++)
            {
                using var ro = Process.Start(new ProcessStartInfo("sh", ["-c", $"mount -o remount,ro '{mount}'"]) { UseShellExecute = false, RedirectStandardError = true })!;
                ro.StandardError.ReadToEnd();
                ro.WaitForExit();
                if (ro.ExitCode == 0) break;
                Assert.True(attempt < 100 && !p.HasExited, "could not remount the run's file system read-only");
                Thread.Sleep(20);
            }
            Assert.True(p.WaitForExit(120_000), "the run did not stop on the read-only file system");
            string stderr = stderrTask.GetAwaiter().GetResult();
            Assert.True(p.ExitCode == 1, $"exit {p.ExitCode}\n{stderr}");
            string last = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
            Assert.StartsWith("error: ", last);
            Assert.Contains("read-only", last);
            Assert.Contains("--resume", last);
            Assert.DoesNotContain("System.IO", last);
            foreach (var ckpt in Directory.GetDirectories(Path.Combine(run, Trainer.CheckpointsDir)))
                Assert.NotEmpty(Checkpoint.Load(ckpt).Weights.Tensors);

            Sh($"mount -o remount,rw '{mount}'");
            var resumed = Raft(Sft(model, data, run, "--resume"));
            Assert.True(resumed.Code == 0, resumed.ToString());
            Assert.Equal(PipelineFixtures.Weights(Path.Combine(whole, Trainer.FinalDir)), PipelineFixtures.Weights(Path.Combine(run, Trainer.FinalDir)));
            Assert.Equal(8, File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length);
        }
        finally { Sh($"umount -l '{mount}'"); }
    }
}
