using System.Diagnostics;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>A test that mounts a small tmpfs (root and mount(8) needed); skipped, saying so, elsewhere.</summary>
public sealed class TmpfsTheoryAttribute : TheoryAttribute
{
    public TmpfsTheoryAttribute()
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

/// <summary>A small tmpfs mounted for a test (unmounted, lazily, on <see cref="Dispose"/>).</summary>
internal sealed class Tmpfs : IDisposable
{
    private Tmpfs(string path) => Path = path;

    /// <summary>The mount point.</summary>
    public string Path { get; }

    /// <summary>Mounts a tmpfs of <paramref name="bytes"/> bytes at <paramref name="path"/> (created).</summary>
    public static Tmpfs Mount(string path, long bytes)
    {
        Directory.CreateDirectory(path);
        Sh($"mount -t tmpfs -o size={bytes} raft-test-disk '{path}'");
        return new Tmpfs(path);
    }

    /// <summary>Remounts with <paramref name="options"/> (e.g. size=N, ro, rw).</summary>
    public void Remount(string options) => Sh($"mount -o remount,{options} '{Path}'");

    /// <summary>Fills the file system with <paramref name="name"/> until no byte is left.</summary>
    public void Fill(string name = "filler") =>
        Sh($"dd if=/dev/zero of='{System.IO.Path.Combine(Path, name)}' bs=4096 2>/dev/null; test -f '{System.IO.Path.Combine(Path, name)}'");

    public void Dispose() => Sh($"umount -l '{Path}'");

    internal static void Sh(string command)
    {
        using var p = Process.Start(new ProcessStartInfo("sh", ["-c", command]) { UseShellExecute = false, RedirectStandardError = true })!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{command}: exit {p.ExitCode}: {err}");
    }
}

/// <summary>
/// A disk that fills up during a run (#19, faults): a small tmpfs as the run folder's file system, for each command that
/// writes a resumable run (sft, train, pretrain). The run stops with a clear error naming the full disk and what to do
/// (exit 1: an I/O failure, not bad input), every checkpoint written before stays loadable, no staging folder is left,
/// and once space is freed <c>--resume</c> ends where an uninterrupted run ends, bit for bit.
/// </summary>
public class FullDiskTests : CliHarness
{
    private static long Size(string dir) => Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => (new FileInfo(f).Length + 4095) / 4096 * 4096);

    [TmpfsTheory]
    [InlineData("sft")]
    [InlineData("train")]
    [InlineData("pretrain")]
    public void A_full_disk_stops_the_run_clearly_keeps_its_checkpoints_and_resume_finishes_it(string command)
    {
        var runs = new ResumableRun(command, PathOf);
        const int steps = 8;
        string whole = PathOf("whole");
        var uninterrupted = Raft(runs.Args(whole, steps));
        Assert.True(uninterrupted.Code == 0, uninterrupted.ToString());
        long checkpoint = Size(Path.Combine(runs.Checkpoints(whole), "step-0000001"));
        long total = runs.Written(whole).Sum(Size);

        // room for about 3 of the 8 checkpoints (plus a staging copy being written)
        using var disk = Tmpfs.Mount(PathOf("disk"), 4 * checkpoint + 64 * 1024);
        string run = Path.Combine(disk.Path, "run");
        var full = Raft(runs.Args(run, steps));
        Assert.True(full.Code == 1, full.ToString());
        ResumableRun.AssertErrorLine(full.Stderr, "no space left on the device", "--resume");
        runs.AssertStoppedCleanly(run);

        disk.Remount($"size={4 * total + 1024 * 1024}"); // space freed
        runs.AssertResumesTo(whole, run, steps);
    }

    [TmpfsTheory]
    [InlineData("sft")]
    [InlineData("train")]
    [InlineData("pretrain")]
    public async Task A_file_system_that_turns_read_only_mid_run_stops_it_clearly_and_resume_finishes_it(string command)
    {
        var runs = new ResumableRun(command, PathOf);
        const int steps = 8;
        string whole = PathOf("whole");
        var uninterrupted = Raft(runs.Args(whole, steps));
        Assert.True(uninterrupted.Code == 0, uninterrupted.ToString());

        using var disk = Tmpfs.Mount(PathOf("disk"), 256L << 20);
        string run = Path.Combine(disk.Path, "run");
        // a slow run, so the remount lands between steps
        using var p = ResumableRun.Start(runs.Args(run, steps), ("RAFT_TEST_FAULT", "sleep:0:400"));
        var stderrTask = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        ResumableRun.WaitFor(() => File.Exists(Path.Combine(runs.Checkpoints(run), "step-0000002", Trainer.StateFile)), p, stderrTask, "the step-2 checkpoint");
        // remount read-only (busy while a file is open for writing: retried)
        for (int attempt = 0; ; attempt++)
        {
            using var ro = Process.Start(new ProcessStartInfo("sh", ["-c", $"mount -o remount,ro '{disk.Path}'"]) { UseShellExecute = false, RedirectStandardError = true })!;
            ro.StandardError.ReadToEnd();
            ro.WaitForExit();
            if (ro.ExitCode == 0) break;
            Assert.True(attempt < 100 && !p.HasExited, "could not remount the run's file system read-only");
            Thread.Sleep(20);
        }
        Assert.True(p.WaitForExit(120_000), "the run did not stop on the read-only file system");
        string stderr = await stderrTask;
        Assert.True(p.ExitCode == 1, $"exit {p.ExitCode}\n{stderr}");
        ResumableRun.AssertErrorLine(stderr, "read-only", "--resume");
        // a read-only folder keeps the lock and any staging folder: the resume takes over and removes them
        runs.AssertStoppedCleanly(run, exitedCleanly: false);

        disk.Remount("rw");
        runs.AssertResumesTo(whole, run, steps);
    }
}
