using System.Diagnostics;
using System.Globalization;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// A command that writes a resumable run, for the fault tests (#19): <c>raft sft</c>, <c>raft train</c> (RAFT with a
/// teacher of its own) or <c>raft pretrain</c> (v1; its general phase is the one checkpointed, the base goes to
/// <c>RUN.base</c>), each as a tiny run with a checkpoint after every step; and where its checkpoints, metrics, lock and
/// finished weights go.
/// </summary>
internal sealed class ResumableRun
{
    private readonly string? _model, _teacher, _data;

    /// <summary>Writes the inputs <paramref name="command"/> reads (a tiny model, a teacher, data) with <paramref name="pathOf"/>.</summary>
    public ResumableRun(string command, Func<string, string> pathOf)
    {
        Command = command;
        if (IsPretrain) return;
        _model = PipelineFixtures.Checkpoint(pathOf("base"));
        _data = PipelineFixtures.Data(pathOf("data.jsonl"));
        if (command == "train") _teacher = PipelineFixtures.Checkpoint(pathOf("teacher"), seed: 2);
    }

    public string Command { get; }

    private bool IsPretrain => Command == "pretrain";

    /// <summary>The arguments of a run of <paramref name="steps"/> steps into <paramref name="run"/>, then <paramref name="more"/>.</summary>
    public string[] Args(string run, int steps, params string[] more)
    {
        string n = steps.ToString(CultureInfo.InvariantCulture);
        string[] common = ["--steps", n, "--checkpoint-every", "1", "--threads", "1"];
        return Command switch
        {
            "pretrain" => ["pretrain", "--out", run + ".base", "--run-dir", run, "--copy-steps", "1", .. common, .. more],
            "train" => ["train", "--model", _model!, "--teacher", _teacher!, "--data", _data!, "--out", run, .. common, "--batch-size", "2",
                        "--warmup-steps", "1", "--device", "cpu", "--rollout-max-tokens", "4", .. more],
            _ => [Command, "--model", _model!, "--data", _data!, "--out", run, .. common, "--batch-size", "2", "--warmup-steps", "1", "--device", "cpu", .. more],
        };
    }

    /// <summary>The folder of the checkpointed phase: the run folder, or pretrain's general phase.</summary>
    public string Phase(string run) => IsPretrain ? Path.Combine(run, "general") : run;

    /// <summary>The step checkpoints (<c>checkpoints/</c>) of the checkpointed phase.</summary>
    public string Checkpoints(string run) => Path.Combine(Phase(run), Trainer.CheckpointsDir);

    /// <summary>The metrics file of the checkpointed phase (one line per step).</summary>
    public string Metrics(string run) => Path.Combine(Phase(run), Trainer.MetricsFile);

    /// <summary>Where the finished model goes: the run's final/, or pretrain's --out.</summary>
    public string Final(string run) => IsPretrain ? run + ".base" : Path.Combine(run, Trainer.FinalDir);

    /// <summary>The folders the run writes (its run folder, and pretrain's --out).</summary>
    public string[] Written(string run) => IsPretrain ? [run, run + ".base"] : [run];

    /// <summary>Removes what a finished run wrote after its last step checkpoint: final/ (and pretrain's copy phase and --out).</summary>
    public void Unfinish(string run)
    {
        Directory.Delete(Path.Combine(Phase(run), Trainer.FinalDir), recursive: true);
        if (!IsPretrain) return;
        Directory.Delete(Path.Combine(run, "copy"), recursive: true);
        Directory.Delete(Final(run), recursive: true);
    }

    /// <summary>The run lock's file.</summary>
    public static string Lock(string run) => Path.Combine(run, ".raft.lock");

    /// <summary>The finished model's weights, flattened.</summary>
    public float[] FinalWeights(string run) => PipelineFixtures.Weights(Final(run));

    /// <summary>
    /// What every fault leaves: the run was not finished and every step checkpoint written loads; when the process could
    /// clean up (<paramref name="exitedCleanly"/>: not SIGKILL, not a read-only folder) no staging folder and no lock are
    /// left either. Returns the checkpoints' names, in order.
    /// </summary>
    public string[] AssertStoppedCleanly(string run, bool exitedCleanly = true)
    {
        Assert.False(Directory.Exists(Final(run)), "the run was stopped before its end");
        var kept = Directory.GetDirectories(Checkpoints(run), "step-*");
        Assert.NotEmpty(kept);
        foreach (var ckpt in kept) Assert.NotEmpty(Checkpoint.Load(ckpt).Weights.Tensors);
        if (!exitedCleanly) return Names(kept);
        var staging = Directory.GetFileSystemEntries(run, "*staging*", SearchOption.AllDirectories);
        Assert.True(staging.Length == 0, "staging left behind: " + string.Join(", ", staging));
        Assert.False(File.Exists(Lock(run)), "a failed run releases its lock");
        return Names(kept);
    }

    private static string[] Names(string[] dirs) => [.. dirs.Select(k => Path.GetFileName(k)!).Order(StringComparer.Ordinal)];

    /// <summary>Resumes <paramref name="run"/> in-process and asserts it ends with <paramref name="whole"/>'s weights and a metrics line per step.</summary>
    public CliResult AssertResumesTo(string whole, string run, int steps)
    {
        var resumed = CliHarness.Raft(Args(run, steps, "--resume"));
        Assert.True(resumed.Code == 0, resumed.ToString());
        Assert.Equal(FinalWeights(whole), FinalWeights(run));
        Assert.Equal(steps, File.ReadAllLines(Metrics(run)).Length);
        return resumed;
    }

    /// <summary>Starts <c>dotnet raft.dll</c> as a process of its own with <paramref name="environment"/> added.</summary>
    public static Process Start(IEnumerable<string> args, params (string Name, string Value)[] environment)
    {
        // A child inherits ignored signals: under nohup (SIGHUP) or as a shell's background job (SIGINT) raft would
        // rightly ignore them too, and the test would see exit 0. env(1) resets the three to their defaults first
        // (coreutils ≥ 8.31), so the test sees raft's own handling wherever the test runner was started.
        var psi = new ProcessStartInfo("env") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("--default-signal=HUP,INT,TERM");
        psi.ArgumentList.Add("dotnet");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "raft.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (name, value) in environment) psi.Environment[name] = value;
        return Process.Start(psi)!;
    }

    /// <summary>Sends the signal <paramref name="name"/> (TERM, INT, HUP, KILL) to <paramref name="p"/> with kill(1).</summary>
    public static void Signal(Process p, string name)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", $"-{name} {p.Id}") { UseShellExecute = false })!;
        kill.WaitForExit();
    }

    /// <summary>Waits (at most 3 minutes) until <paramref name="condition"/> holds while <paramref name="p"/> runs.</summary>
    public static void WaitFor(Func<bool> condition, Process p, Task<string> stderr, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (p.HasExited) Assert.Fail($"the run ended before {what}: exit {p.ExitCode}\n{stderr.GetAwaiter().GetResult()}");
            Assert.True(sw.Elapsed < TimeSpan.FromMinutes(3), $"timed out waiting for {what}");
            Thread.Sleep(50);
        }
    }

    /// <summary>The last stderr line of a failed run, asserted to be an <c>error: </c> naming <paramref name="mentions"/> without .NET type names.</summary>
    public static string AssertErrorLine(string stderr, params string[] mentions)
    {
        string last = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        Assert.StartsWith("error: ", last);
        foreach (var m in mentions) Assert.Contains(m, last);
        Assert.DoesNotContain("System.", last);
        return last;
    }
}
