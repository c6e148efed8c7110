using System.Text.Json;
using Raft.Cli;
using Raft.Kernels;

namespace Raft.Cli.Tests;

public sealed class KdCommandTests : CliHarness
{
    /// <summary>The loss and gradient [rows, vocab] the reference kernels give on the same inputs.</summary>
    private static (double Loss, float[] Gradient) Reference(float[] s, float[] t, int rows, int vocab,
        DistillSettings config, float[]? weights)
    {
        var idx = new int[rows * config.TopK];
        var p = new float[rows * config.TopK];
        ReferenceKernels.Instance.TopKSoftmax(t, rows, vocab, config.TopK, config.Temperature, idx, p);
        var grad = new float[s.Length];
        var result = ReferenceKernels.Instance.Distill(s, rows, vocab, idx, p, config, weights, grad);
        return (result.Loss, grad);
    }

    private static void AssertClose(double expected, double actual, double rel = 1e-5) =>
        Assert.True(Math.Abs(expected - actual) <= rel * Math.Abs(expected) + 1e-12,
            $"expected {expected}, got {actual}");

    /// <summary>Relative 1e-5 per element, with a floor of 1e-5 × the largest |reference| for entries near 0.</summary>
    private static void AssertGradientClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(v => Math.Abs((double)v));
        Assert.True(scale > 0);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * (Math.Abs(expected[i]) + scale * 1e-2),
                $"gradient[{i}]: expected {expected[i]}, got {actual[i]}");
    }

    public static TheoryData<string, DistillLossKind, float> Losses => new()
    {
        { "forward-kl", DistillLossKind.ForwardKL, 0.5f },
        { "reverse-kl", DistillLossKind.ReverseKL, 0.5f },
        { "jsd", DistillLossKind.Jsd, 0.5f },
        { "jsd", DistillLossKind.Jsd, 0.1f },
        { "jsd", DistillLossKind.Jsd, 0f },
        { "jsd", DistillLossKind.Jsd, 1f },
    };

    [Theory]
    [MemberData(nameof(Losses))]
    public void LossAndGradientMatchTheReference(string loss, DistillLossKind kind, float beta)
    {
        const int rows = 7, vocab = 301, k = 13;
        const float tau = 1.7f;
        var (student, teacher, s, t) = WriteLogits(rows, vocab);
        string grad = PathOf("g.npy");
        var r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "13", "--temperature", "1.7",
            "--loss-kind", loss, "--jsd-beta", beta.ToString(System.Globalization.CultureInfo.InvariantCulture), "--grad-out", grad,
            "--device", "cpu");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Empty(r.Stderr); // --device cpu is quiet; auto says where it runs


        var json = r.Json;
        var (refLoss, refGrad) = Reference(s, t, rows, vocab, new DistillSettings(k, tau, kind, beta), null);
        Assert.True(refLoss > 0);
        AssertClose(refLoss, json.GetProperty("loss").GetDouble());
        Assert.Equal(rows, json.GetProperty("rows").GetInt32());
        Assert.Equal(vocab, json.GetProperty("vocab").GetInt32());
        Assert.Equal(k, json.GetProperty("top_k").GetInt32());
        Assert.Equal(tau, json.GetProperty("temperature").GetSingle());
        Assert.Equal(loss, json.GetProperty("loss_kind").GetString());
        Assert.True(json.GetProperty("seconds").GetDouble() >= 0);

        var written = NpyFile.ReadFloat32(grad, 2, "[rows, vocab]");
        Assert.Equal([rows, vocab], written.Shape);
        AssertGradientClose(refGrad, written.Data);
        Assert.DoesNotContain(Directory.GetFiles(Dir), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void RowWeightsMatchTheReference()
    {
        const int rows = 6, vocab = 64;
        var (student, teacher, s, t) = WriteLogits(rows, vocab);
        float[] w = [1f, 0f, 2.5f, 0.25f, 1f, 3f];
        string weights = PathOf("w.npy"), grad = PathOf("g.npy");
        NpyFile.WriteFloat32(weights, w, rows);
        var r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "8", "--temperature", "2",
            "--weights", weights, "--grad-out", grad);
        Assert.True(r.Code == 0, r.ToString());
        var (refLoss, refGrad) = Reference(s, t, rows, vocab, new DistillSettings(8, 2f), w);
        AssertClose(refLoss, r.Json.GetProperty("loss").GetDouble());
        var g = NpyFile.ReadFloat32(grad, 2, "[rows, vocab]").Data;
        AssertGradientClose(refGrad, g);
        Assert.All(g.AsSpan(vocab, vocab).ToArray(), v => Assert.Equal(0f, v)); // weight 0: zero gradient
    }

    [Fact]
    public void ThreadCountDoesNotChangeTheResult()
    {
        var (student, teacher, _, _) = WriteLogits(9, 500);
        var losses = new List<double>();
        var gradients = new List<byte[]>();
        foreach (string threads in (string[])["1", "3", "16"])
        {
            string grad = PathOf($"g{threads}.npy");
            var r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "32", "--threads", threads, "--grad-out", grad);
            Assert.True(r.Code == 0, r.ToString());
            losses.Add(r.Json.GetProperty("loss").GetDouble());
            gradients.Add(File.ReadAllBytes(grad));
        }
        Assert.All(losses, l => Assert.Equal(losses[0], l));
        Assert.All(gradients, g => Assert.Equal(gradients[0], g));
    }

    [Fact]
    public void ZeroRowsGiveZeroLossAndAnEmptyGradient()
    {
        string student = PathOf("s0.npy"), teacher = PathOf("t0.npy"), grad = PathOf("g0.npy");
        NpyFile.WriteFloat32(student, [], 0, 10);
        NpyFile.WriteFloat32(teacher, [], 0, 10);
        var r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "3", "--grad-out", grad);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal(0.0, r.Json.GetProperty("loss").GetDouble());
        Assert.Equal([0, 10], NpyFile.ReadFloat32(grad, 2, "[rows, vocab]").Shape);
    }

    [Fact]
    public void OverwritesAnExistingGradientFile()
    {
        var (student, teacher, _, _) = WriteLogits(3, 20);
        string grad = PathOf("g.npy");
        File.WriteAllText(grad, "stale");
        var r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "4", "--grad-out", grad);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal([3, 20], NpyFile.ReadFloat32(grad, 2, "[rows, vocab]").Shape);
    }

    [Fact]
    public void JsonIsOneLineWithTheDocumentedFields()
    {
        var r = Raft("kd", "--example", "--rows", "3", "--vocab", "50", "--top-k", "5");
        Assert.True(r.Code == 0, r.ToString());
        Assert.EndsWith("\n", r.Stdout.Replace("\r\n", "\n"));
        var json = r.Json;
        foreach (string field in (string[])["loss", "rows", "vocab", "top_k", "temperature", "loss_kind", "seconds"])
            Assert.True(json.TryGetProperty(field, out _), $"missing {field}: {r.Stdout}");
        Assert.Equal(JsonValueKind.Number, json.GetProperty("loss").ValueKind);
        Assert.Equal("forward-kl", json.GetProperty("loss_kind").GetString());
        Assert.Equal(2.0, json.GetProperty("temperature").GetDouble());
    }

    [Fact]
    public void ExampleIsSeededAndMatchesItsWrittenInputs()
    {
        string dir = PathOf("example");
        var a = Raft("kd", "--example", "--rows", "5", "--vocab", "200", "--top-k", "16", "--seed", "3", "--write-example", dir);
        var b = Raft("kd", "--example", "--rows", "5", "--vocab", "200", "--top-k", "16", "--seed", "3");
        var c = Raft("kd", "--example", "--rows", "5", "--vocab", "200", "--top-k", "16", "--seed", "4");
        Assert.True(a.Code == 0, a.ToString());
        double loss = a.Json.GetProperty("loss").GetDouble();
        Assert.True(loss > 0);
        Assert.Equal(loss, b.Json.GetProperty("loss").GetDouble());
        Assert.NotEqual(loss, c.Json.GetProperty("loss").GetDouble());

        var fromFiles = Raft("kd", "--student", Path.Combine(dir, "student.npy"), "--teacher", Path.Combine(dir, "teacher.npy"),
            "--top-k", "16");
        Assert.True(fromFiles.Code == 0, fromFiles.ToString());
        Assert.Equal(loss, fromFiles.Json.GetProperty("loss").GetDouble());
    }

    [Fact]
    public void DefaultExampleRuns()
    {
        var r = Raft("kd", "--example");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal(64, r.Json.GetProperty("rows").GetInt32());
        Assert.Equal(32000, r.Json.GetProperty("vocab").GetInt32());
        Assert.Equal(64, r.Json.GetProperty("top_k").GetInt32());
        Assert.True(r.Json.GetProperty("loss").GetDouble() > 0);
    }

    public static TheoryData<string[], string> BadOptions => new()
    {
        { ["--top-k", "0"], "--top-k must be in 1..40" },
        { ["--top-k", "41"], "--top-k must be in 1..40" },
        { ["--temperature", "0"], "--temperature must be a finite number > 0, got 0" },
        { ["--temperature", "-1.5"], "--temperature must be a finite number > 0, got -1.5" },
        { ["--temperature", "NaN"], "--temperature must be a finite number > 0, got NaN" },
        { ["--loss-kind", "kl"], "--loss-kind must be forward-kl, reverse-kl or jsd, got 'kl'" },
        { ["--loss", "kl"], "--loss must be forward-kl, reverse-kl or jsd, got 'kl'" }, // the old spelling, named as written
        { ["--jsd-beta", "1.5"], "--jsd-beta must be in [0, 1], got 1.5" },
        { ["--beta", "1.5"], "--beta must be in [0, 1], got 1.5" },
        { ["--beta", "-0.1"], "--beta must be in [0, 1], got -0.1" },
        { ["--threads", "0"], "--threads must be ≥ 1, got 0" },
        { ["--top-k", "many"], "'many'" },
        { ["--rows", "4"], "--rows applies only with --example" },
        { ["--weights", "/nonexistent/w.npy"], "--weights /nonexistent/w.npy: file not found" },
        { ["--grad-out", "/nonexistent/dir/g.npy"], "--grad-out /nonexistent/dir/g.npy: directory /nonexistent/dir does not exist" },
        { ["--unknown"], "'--unknown'" },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void BadOptionsExitTwoNamingTheOption(string[] extra, string expected)
    {
        var (student, teacher, _, _) = WriteLogits(2, 40);
        var r = Raft(["kd", "--student", student, "--teacher", teacher, .. extra]);
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains(expected, r.Stderr);
        Assert.Empty(r.Stdout);
    }

    [Fact]
    public void MissingInputsExitTwo()
    {
        var (student, teacher, _, _) = WriteLogits(2, 40);
        var r = Raft("kd", "--teacher", teacher);
        Assert.Equal(2, r.Code);
        Assert.Contains("--student is required", r.Stderr);

        r = Raft("kd", "--student", student);
        Assert.Equal(2, r.Code);
        Assert.Contains("--teacher is required", r.Stderr);

        string missing = PathOf("nope.npy");
        r = Raft("kd", "--student", missing, "--teacher", teacher);
        Assert.Equal(2, r.Code);
        Assert.Contains($"--student {missing}: file not found", r.Stderr);

        r = Raft("kd", "--student", Dir, "--teacher", teacher);
        Assert.Equal(2, r.Code);
        Assert.Contains("is a directory", r.Stderr);

        r = Raft("kd", "--example", "--student", student);
        Assert.Equal(2, r.Code);
        Assert.Contains("--student cannot be combined with --example", r.Stderr);
    }

    [Fact]
    public void HelpDescribesTheCommands()
    {
        var root = Raft("--help");
        Assert.Equal(0, root.Code);
        Assert.Contains("kd", root.Stdout);
        var kd = Raft("kd", "--help");
        Assert.Equal(0, kd.Code);
        foreach (string option in (string[])["--student", "--teacher", "--top-k", "--temperature", "--loss-kind", "--jsd-beta",
                     "--weights", "--grad-out", "--threads", "--example", "--rows", "--vocab", "--seed", "--write-example"])
            Assert.Contains(option, kd.Stdout);
    }

    [Fact]
    public void NoCommandExitsTwo() => Assert.Equal(2, Raft().Code);

    [Fact]
    public void UnexpectedFailuresExitOneAndKnownOnesTwo()
    {
        var stderr = new StringWriter();
        Assert.Equal(1, CliErrors.Report(new IOException("disk full"), stderr));
        Assert.Contains("disk full", stderr.ToString());
        Assert.Equal(2, CliErrors.Report(new ArgumentException("bad k", "k"), stderr));
        Assert.Equal(2, CliErrors.Report(new AggregateException(new NonFiniteLogitException("studentLogits", 4, 1, float.NaN)), stderr));
        Assert.Contains("row 4", stderr.ToString());
        Assert.Equal(1, CliErrors.Report(new AggregateException(new InvalidOperationException("a"), new InvalidOperationException("b")), stderr));
    }
}

public class KdDeviceTests : CliHarness
{
    [Fact]
    public void DeviceAutoSaysOnceWhereTheKernelsRun()
    {
        var run = Raft("kd", "--example", "--rows", "4", "--vocab", "300", "--device", "auto");
        Assert.True(run.Code == 0, run.Stderr);
        Assert.Single(run.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("raft: kernels on "));
        bool cuda = global::Raft.Kernels.Cuda.KernelBackendFactory.TryCreateCuda(out var b, out _);
        b?.Dispose();
        Assert.Contains(cuda ? "cuda: " : "(auto: no CUDA ", run.Stderr);
    }

    [Fact]
    public void DeviceCpuIsQuietAndAnUnknownDeviceIsABadOption()
    {
        var run = Raft("kd", "--example", "--rows", "4", "--vocab", "300", "--device", "cpu");
        Assert.True(run.Code == 0, run.Stderr);
        Assert.DoesNotContain("kernels on", run.Stderr);
        var bad = Raft("kd", "--example", "--device", "tpu");
        Assert.Equal(2, bad.Code);
        Assert.Contains("--device must be auto, cpu, cuda or cuda-c, got 'tpu'", bad.Stderr);
    }

    [Fact]
    public void DeviceCudaWithoutAGpuIsABadInputWithTheReason()
    {
        bool cuda = global::Raft.Kernels.Cuda.KernelBackendFactory.TryCreateCuda(out var b, out _);
        b?.Dispose();
        var run = Raft("kd", "--example", "--rows", "4", "--vocab", "300", "--device", "cuda");
        if (cuda) Assert.True(run.Code == 0, run.Stderr);
        else
        {
            Assert.Equal(2, run.Code);
            Assert.Contains("no usable CUDA device", run.Stderr);
        }
    }
}
