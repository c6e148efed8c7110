using System.Text.Json;
using Raft.Cli;

namespace Raft.Cli.Tests;

/// <summary>Runs <c>raft</c> in-process and gives each test its own scratch directory.</summary>
public abstract class CliHarness : IDisposable
{
    private readonly TempDirectory _dir = new();

    /// <summary>This test's scratch directory (deleted afterwards).</summary>
    protected string Dir => _dir.Path;

    protected string PathOf(string name) => _dir.File(name);

    public void Dispose()
    {
        _dir.Dispose();
        GC.SuppressFinalize(this);
    }

    internal static CliResult Raft(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>
    /// Asserts a refusal as bad input: exit 2, nothing on stdout, and the last stderr line an <c>error: </c> naming every one of
    /// <paramref name="mentions"/> (earlier lines may report what was opened). Returns that line.
    /// </summary>
    private protected static string AssertUsageLastLine(CliResult r, params string[] mentions)
    {
        Assert.True(r.Code == 2, r.ToString());
        string last = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        Assert.StartsWith("error: ", last);
        foreach (var m in mentions) Assert.Contains(m, last);
        Assert.Equal("", r.Stdout);
        return last;
    }

    /// <summary>Random fp32 logits, never zeros: N(0, scale²) from a seeded generator.</summary>
    internal static float[] RandomLogits(int count, int seed, double scale = 2.0)
    {
        var random = new Random(seed);
        var data = new float[count];
        for (int i = 0; i < count; i++) data[i] = (float)Gauss.Next(random, scale);
        return data;
    }

    /// <summary>Writes student and teacher logits [rows, vocab] (teacher = student + noise) and returns their paths.</summary>
    protected (string Student, string Teacher, float[] S, float[] T) WriteLogits(int rows, int vocab, int seed = 7)
    {
        var s = RandomLogits(rows * vocab, seed);
        var noise = RandomLogits(rows * vocab, seed + 1000, 1.0);
        var t = new float[s.Length];
        for (int i = 0; i < t.Length; i++) t[i] = s[i] + noise[i];
        string sp = PathOf("student.npy"), tp = PathOf("teacher.npy");
        NpyFile.WriteFloat32(sp, s, rows, vocab);
        NpyFile.WriteFloat32(tp, t, rows, vocab);
        return (sp, tp, s, t);
    }
}

internal sealed record CliResult(int Code, string Stdout, string Stderr)
{
    /// <summary>The single JSON line on stdout.</summary>
    public JsonElement Json
    {
        get
        {
            var lines = Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            return JsonDocument.Parse(lines[0]).RootElement;
        }
    }

    public override string ToString() => $"exit {Code}\nstdout: {Stdout}\nstderr: {Stderr}";
}
