using System.Diagnostics;

namespace Raft.Cli.Tests;

/// <summary>A test that builds an LD_PRELOAD shim with a C compiler; skipped, saying so, without one (or off Linux).</summary>
public sealed class PreloadShimTheoryAttribute : TheoryAttribute
{
    public PreloadShimTheoryAttribute()
    {
        if (!OperatingSystem.IsLinux() || !(File.Exists("/usr/bin/cc") || File.Exists("/usr/bin/gcc")))
            Skip = "The rename-failure shim (LD_PRELOAD) needs Linux and a C compiler (cc).";
    }
}

/// <summary>
/// A rename that the file system refuses (#19, faults: as NFS can, with EIO or ESTALE): an LD_PRELOAD shim makes every
/// rename(2) whose path holds <c>RAFT_TEST_RENAME_FAIL</c> fail. Here: the step-3 checkpoint of sft, train and pretrain.
/// The run stops with a clear error (exit 1, no .NET type name), the earlier checkpoints load, nothing half-renamed is
/// left, and <c>--resume</c> ends where an uninterrupted run ends.
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

    /// <summary>Compiles the shim into <paramref name="dir"/> and returns the library's path.</summary>
    internal static string BuildShim(string dir)
    {
        string source = Path.Combine(dir, "shim.c"), shim = Path.Combine(dir, "shim.so");
        File.WriteAllText(source, Shim);
        using var cc = Process.Start(new ProcessStartInfo("cc", ["-shared", "-fPIC", "-O1", "-o", shim, source, "-ldl"]) { UseShellExecute = false, RedirectStandardError = true })!;
        string err = cc.StandardError.ReadToEnd();
        cc.WaitForExit();
        Assert.True(cc.ExitCode == 0, "cc: " + err);
        return shim;
    }

    /// <summary>Runs <c>raft</c> in a process of its own whose renames of paths holding <paramref name="refused"/> fail; returns its exit code and stderr.</summary>
    internal static (int Code, string Stderr) RunRefusing(string shim, string refused, IEnumerable<string> args)
    {
        using var p = ResumableRun.Start(args, ("LD_PRELOAD", shim), ("RAFT_TEST_RENAME_FAIL", refused));
        var stderrTask = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        Assert.True(p.WaitForExit(180_000), "the run did not end");
        return (p.ExitCode, stderrTask.GetAwaiter().GetResult());
    }

    [PreloadShimTheory]
    [InlineData("sft")]
    [InlineData("train")]
    [InlineData("pretrain")]
    public void A_refused_rename_stops_the_run_clearly_keeps_its_checkpoints_and_resume_finishes_it(string command)
    {
        string shim = BuildShim(Dir);
        var runs = new ResumableRun(command, PathOf);
        const int steps = 6;
        string whole = PathOf("whole"), run = PathOf("run");
        var uninterrupted = Raft(runs.Args(whole, steps));
        Assert.True(uninterrupted.Code == 0, uninterrupted.ToString());

        var (code, stderr) = RunRefusing(shim, "step-0000003", runs.Args(run, steps));
        Assert.True(code == 1, $"exit {code}\n{stderr}");
        ResumableRun.AssertErrorLine(stderr, "step-0000003", "--resume");
        Assert.Equal(new[] { "step-0000001", "step-0000002" }, runs.AssertStoppedCleanly(run));

        runs.AssertResumesTo(whole, run, steps); // in this process: renames work again
    }
}
