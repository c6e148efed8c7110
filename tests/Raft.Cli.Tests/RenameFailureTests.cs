using System.Diagnostics;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>A test that builds an LD_PRELOAD shim with a C compiler; skipped, saying so, without one (or off Linux).</summary>
public sealed class PreloadShimFactAttribute : FactAttribute
{
    public PreloadShimFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !(File.Exists("/usr/bin/cc") || File.Exists("/usr/bin/gcc")))
            Skip = "The rename-failure shim (LD_PRELOAD) needs Linux and a C compiler (cc).";
    }
}

/// <summary>
/// A rename that the file system refuses (#19, faults: as NFS can, with EIO or ESTALE): an LD_PRELOAD shim makes every
/// rename(2) into the step-3 checkpoint fail. The run stops with a clear error (exit 1, no .NET type name), the earlier
/// checkpoints load, nothing half-renamed is left, and <c>--resume</c> ends where an uninterrupted run ends.
/// </summary>
public class RenameFailureTests : CliHarness
{
    private const string Shim = """
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <errno.h>
        #include <stdlib.h>
        #include <string.h>
        #include <stdio.h>
        static int refused(const char *a, const char *b) {
            const char *m = getenv("RAFT_TEST_RENAME_FAIL");
            return m && *m && ((a && strstr(a, m)) || (b && strstr(b, m)));
        }
        int rename(const char *a, const char *b) {
            if (refused(a, b)) { errno = EIO; return -1; }
            int (*real)(const char *, const char *) = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
            return real(a, b);
        }
        int renameat(int fa, const char *a, int fb, const char *b) {
            if (refused(a, b)) { errno = EIO; return -1; }
            int (*real)(int, const char *, int, const char *) = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
            return real(fa, a, fb, b);
        }
        int renameat2(int fa, const char *a, int fb, const char *b, unsigned int flags) {
            if (refused(a, b)) { errno = EIO; return -1; }
            int (*real)(int, const char *, int, const char *, unsigned int) = (int (*)(int, const char *, int, const char *, unsigned int))dlsym(RTLD_NEXT, "renameat2");
            return real(fa, a, fb, b, flags);
        }
        """;

    private static readonly string[] Tiny = ["--threads", "1", "--batch-size", "2", "--warmup-steps", "1", "--device", "cpu"];

    private static string[] Sft(string model, string data, string run, params string[] more) =>
        ["sft", "--model", model, "--data", data, "--out", run, "--steps", "6", "--checkpoint-every", "1", .. Tiny, .. more];

    [PreloadShimFact]
    public void A_refused_rename_stops_the_run_clearly_keeps_its_checkpoints_and_resume_finishes_it()
    {
        string source = PathOf("shim.c"), shim = PathOf("shim.so");
        File.WriteAllText(source, Shim);
        using (var cc = Process.Start(new ProcessStartInfo("cc", ["-shared", "-fPIC", "-O1", "-o", shim, source, "-ldl"]) { UseShellExecute = false, RedirectStandardError = true })!)
        {
            string err = cc.StandardError.ReadToEnd();
            cc.WaitForExit();
            Assert.True(cc.ExitCode == 0, "cc: " + err);
        }
        string model = PipelineFixtures.Checkpoint(PathOf("base")), data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string whole = PathOf("whole"), run = PathOf("run");
        var uninterrupted = Raft(Sft(model, data, whole));
        Assert.True(uninterrupted.Code == 0, uninterrupted.ToString());

        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "raft.dll"));
        foreach (var a in Sft(model, data, run)) psi.ArgumentList.Add(a);
        psi.Environment["LD_PRELOAD"] = shim;
        psi.Environment["RAFT_TEST_RENAME_FAIL"] = "step-0000003";
        using var p = Process.Start(psi)!;
        var stderrTask = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        Assert.True(p.WaitForExit(180_000), "the run did not end");
        string stderr = stderrTask.GetAwaiter().GetResult();
        Assert.True(p.ExitCode == 1, $"exit {p.ExitCode}\n{stderr}");
        string last = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        Assert.StartsWith("error: ", last);
        Assert.Contains("step-0000003", last);
        Assert.Contains("--resume", last);
        Assert.DoesNotContain("System.IO", last);

        var kept = Directory.GetDirectories(Path.Combine(run, Trainer.CheckpointsDir)).Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(new[] { "step-0000001", "step-0000002" }, kept);
        foreach (var ckpt in kept) Assert.NotEmpty(Checkpoint.Load(Path.Combine(run, Trainer.CheckpointsDir, ckpt!)).Weights.Tensors);
        var staging = Directory.GetFileSystemEntries(run, "*staging*", SearchOption.AllDirectories);
        Assert.True(staging.Length == 0, "staging left behind: " + string.Join(", ", staging));

        var resumed = Raft(Sft(model, data, run, "--resume")); // in this process: renames work again
        Assert.True(resumed.Code == 0, resumed.ToString());
        Assert.Equal(PipelineFixtures.Weights(Path.Combine(whole, Trainer.FinalDir)), PipelineFixtures.Weights(Path.Combine(run, Trainer.FinalDir)));
        Assert.Equal(6, File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Length);
    }
}
