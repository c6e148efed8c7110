using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Raft.Pipeline.Eval;

namespace Raft.Cli.Tests;

/// <summary>
/// The faults of the commands that write their output once, at their end (#19, faults): <c>raft refine</c> (the refined
/// JSONL and its summary) and <c>raft eval</c> (answers.jsonl, report.md and report.json in --out). A full disk and a
/// refused rename give a clear error (exit 1) naming the output and leave no output, no temporary file and the inputs
/// untouched; a signal while they work stops them (128 + n) before anything is written.
/// </summary>
public class OutputFileFaultTests : CliHarness
{
    /// <summary>refine or eval on a tiny checkpoint (the teacher, or the model evaluated) and four examples.</summary>
    private sealed class OutputCommand
    {
        private readonly string _model, _data;

        public OutputCommand(string command, Func<string, string> pathOf)
        {
            Command = command;
            _model = PipelineFixtures.Checkpoint(pathOf("base"));
            _data = PipelineFixtures.Data(pathOf("data.jsonl"));
        }

        public string Command { get; }

        /// <summary>The --out of a run whose output goes into <paramref name="folder"/>.</summary>
        public string Out(string folder) => Path.Combine(folder, Command == "refine" ? "refined.jsonl" : "eval");

        public string[] Args(string outPath) => Command == "refine"
            ? ["refine", "--teacher", _model, "--data", _data, "--out", outPath, "--candidates", "1", "--max-new-tokens", "4", "--threads", "1"]
            : ["eval", "--model", _model, "--set", _data, "--out", outPath, "--max-new-tokens", "4", "--threads", "1"];

        /// <summary>The files of the output, in the order they are written.</summary>
        public string[] Outputs(string outPath) => Command == "refine"
            ? [outPath, outPath + ".summary.json"]
            : [Path.Combine(outPath, EvalAnswers.FileName), Path.Combine(outPath, EvalReport.MarkdownFile), Path.Combine(outPath, EvalReport.JsonFile)];

        /// <summary>The SHA-256 of every input file.</summary>
        public string Inputs() => string.Join(" ", Directory.GetFiles(_model).Append(_data).Order(StringComparer.Ordinal)
            .Select(f => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f)))));
    }

    private static string[] Entries(string folder) =>
        [.. Directory.GetFileSystemEntries(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)];

    /// <summary>The command failed without a trace: the folder of its output holds what it held before, the inputs are unchanged.</summary>
    private static void AssertNothingWritten(OutputCommand c, string folder, string[] entriesBefore, string inputsBefore)
    {
        Assert.Equal(entriesBefore, Entries(folder));
        Assert.Equal(inputsBefore, c.Inputs());
    }

    [TmpfsTheory]
    [InlineData("refine")]
    [InlineData("eval")]
    public void A_full_disk_names_the_output_and_leaves_neither_it_nor_a_temporary_file(string command)
    {
        var c = new OutputCommand(command, PathOf);
        using var disk = Tmpfs.Mount(PathOf("disk"), 256 * 1024);
        disk.Fill();
        string outPath = c.Out(disk.Path);
        var (before, inputs) = (Entries(disk.Path), c.Inputs());
        var r = Raft(c.Args(outPath));
        Assert.True(r.Code == 1, r.ToString());
        ResumableRun.AssertErrorLine(r.Stderr, "no space left on the device", c.Outputs(outPath)[0]);
        Assert.DoesNotContain(".tmp", r.Stderr);
        AssertNothingWritten(c, disk.Path, before, inputs);
    }

    [PreloadShimTheory]
    [InlineData("refine")]
    [InlineData("eval")]
    public void A_refused_rename_names_the_output_and_leaves_no_part_of_it(string command)
    {
        var c = new OutputCommand(command, PathOf);
        string shim = RenameFailureTests.BuildShim(Dir);
        string outPath = c.Out(Dir);
        // the second file of the output: the first one, already renamed in, is removed again
        string refused = c.Outputs(outPath)[1];
        var (before, inputs) = (Entries(Dir), c.Inputs());
        var (code, stderr) = RenameFailureTests.RunRefusing(shim, Path.GetFileName(refused), c.Args(outPath));
        Assert.True(code == 1, $"exit {code}\n{stderr}");
        ResumableRun.AssertErrorLine(stderr, "an I/O operation failed", refused);
        Assert.DoesNotContain(".tmp", stderr);
        AssertNothingWritten(c, Dir, before, inputs);
    }

    [Theory]
    [InlineData("refine", "INT", 130)]
    [InlineData("refine", "TERM", 143)]
    [InlineData("refine", "HUP", 129)]
    [InlineData("eval", "INT", 130)]
    [InlineData("eval", "TERM", 143)]
    [InlineData("eval", "HUP", 129)]
    public void A_signal_while_it_works_stops_it_before_anything_is_written(string command, string signal, int exitCode)
    {
        var c = new OutputCommand(command, PathOf);
        string outPath = c.Out(Dir);
        var (before, inputs) = (Entries(Dir), c.Inputs());
        // a pause where the command checks for a signal (test fault sleep:0:MS), so that the signal lands while it works
        using var p = ResumableRun.Start(c.Args(outPath), ("RAFT_TEST_FAULT", "sleep:0:2000"));
        var stderr = new StringBuilder();
        p.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        _ = p.StandardOutput.ReadToEndAsync();
        string Said() { lock (stderr) return stderr.ToString(); }
        var sw = Stopwatch.StartNew();
        while (!Said().Contains("chat template:", StringComparison.Ordinal)) // said once the inputs passed, before the work
        {
            Assert.False(p.HasExited, $"{command} ended before its work began: exit {(p.HasExited ? p.ExitCode : 0)}\n{Said()}");
            Assert.True(sw.Elapsed < TimeSpan.FromMinutes(2), "timed out waiting for the work to begin");
            Thread.Sleep(20);
        }
        ResumableRun.Signal(p, signal);
        Assert.True(p.WaitForExit(120_000), "it did not stop after the signal");
        p.WaitForExit(); // the stderr events drained
        Assert.True(p.ExitCode == exitCode, $"exit {p.ExitCode}, expected {exitCode}\n{Said()}");
        Assert.Contains($"stopped by SIG{signal}; nothing was written to --out {outPath}", Said());
        AssertNothingWritten(c, Dir, before, inputs);
    }
}
