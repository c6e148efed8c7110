using System.Text;
using Raft.Cli;

namespace Raft.Cli.Tests;

/// <summary>Every malformed input gives exit code 2 and a message on stderr naming the file and the problem.</summary>
public sealed class MalformedInputTests : CliHarness
{
    private const string F4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

    public static TheoryData<string, byte[], string> BadFiles => new()
    {
        { "empty", [], "empty" },
        { "wrong magic (a .npz is a zip)", [0x50, 0x4B, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0], "magic" },
        { "magic only", Convert.FromHexString("934E554D5059"), "preamble" },
        { "version 4.0", [.. NpyBytes.Raw(4, 0, F4 + "\n"), .. new byte[24]], "version 4.0" },
        { "version 1.1", [.. NpyBytes.Raw(1, 1, F4 + "\n"), .. new byte[24]], "version 1.1" },
        { "float64", [.. NpyBytes.Version1(F4.Replace("<f4", "<f8")), .. new byte[48]], "'<f8' (float64)" },
        { "big-endian", [.. NpyBytes.Version1(F4.Replace("<f4", ">f4")), .. new byte[24]], "'>f4'" },
        { "structured", [.. NpyBytes.Version1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }"), .. new byte[24]], "structured" },
        { "fortran order", [.. NpyBytes.Version1(F4.Replace("False", "True")), .. new byte[24]], "fortran_order is True" },
        { "3-D", [.. NpyBytes.Version1(F4.Replace("(2, 3)", "(1, 2, 3)")), .. new byte[24]], "shape (1, 2, 3) (3-D)" },
        { "1-D", [.. NpyBytes.Version1(F4.Replace("(2, 3)", "(6,)")), .. new byte[24]], "shape (6,) (1-D)" },
        { "unparseable header", [.. NpyBytes.Version1("{'descr': '<f4', 'fortran_order': Fals"), .. new byte[24]], "not a parseable" },
        { "not a dict", [.. NpyBytes.Version1("[1, 2, 3]"), .. new byte[24]], "not a parseable" },
        { "missing key", [.. NpyBytes.Version1("{'descr': '<f4', 'shape': (2, 3), }"), .. new byte[24]], "lacks the key 'fortran_order'" },
        { "extra key", [.. NpyBytes.Version1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}"), .. new byte[24]], "unexpected key 'x'" },
        { "negative dimension", [.. NpyBytes.Version1(F4.Replace("(2, 3)", "(2, -3)")), .. new byte[24]], "non-negative" },
        { "header truncated", NpyBytes.Version1(F4)[..40], "header is truncated" },
        { "data truncated", [.. NpyBytes.Version1(F4), .. new byte[20]], "needs 24 bytes" },
        { "trailing bytes", [.. NpyBytes.Version1(F4), .. new byte[28]], "4 bytes after the data" },
        { "v3 header not UTF-8", [.. NpyBytes.Raw(3, 0, [.. Encoding.ASCII.GetBytes(F4), 0xFF, (byte)'\n']), .. new byte[24]], "not valid UTF-8" },
        { "v2 header", [.. NpyBytes.Version2Or3(2, F4.Replace("<f4", "<i8")), .. new byte[48]], "'<i8' (int64)" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void BadStudentFileExitsTwoNamingTheFile(string what, byte[] bytes, string expected)
    {
        var (_, teacher, _, _) = WriteLogits(2, 3);
        // A neutral name, so that the expected phrase cannot match the path.
        string bad = PathOf("input.npy");
        File.WriteAllBytes(bad, bytes);
        var r = Raft("kd", "--student", bad, "--teacher", teacher, "--top-k", "2");
        Assert.True(r.Code == 2, $"{what}: {r}");
        Assert.Contains(bad, r.Stderr);
        Assert.Contains(expected, r.Stderr);
        Assert.Empty(r.Stdout);
    }

    [Fact]
    public void TruncatedDataSaysExpectedAndActualBytes()
    {
        string bad = PathOf("short.npy");
        File.WriteAllBytes(bad, [.. NpyBytes.Version1(F4), .. new byte[10]]);
        var e = Assert.Throws<NpyFormatException>(() => NpyFile.ReadFloat32(bad, 2, "[rows, vocab]"));
        Assert.Equal(bad, e.FilePath);
        Assert.Contains("needs 24 bytes", e.Problem);
        Assert.Contains("the file has 10", e.Problem);
    }

    [Fact]
    public void BadTeacherFileNamesTheTeacher()
    {
        var (student, _, _, _) = WriteLogits(2, 3);
        string bad = PathOf("teacher-f8.npy");
        File.WriteAllBytes(bad, [.. NpyBytes.Version1(F4.Replace("<f4", "<f8")), .. new byte[48]]);
        var r = Raft("kd", "--student", student, "--teacher", bad, "--top-k", "2");
        Assert.Equal(2, r.Code);
        Assert.Contains(bad, r.Stderr);
        Assert.Contains("float64", r.Stderr);
    }

    [Fact]
    public void StudentAndTeacherShapesMustAgree()
    {
        var (student, _, _, _) = WriteLogits(4, 10);
        string teacher = PathOf("t-other.npy");
        NpyFile.WriteFloat32(teacher, RandomLogits(4 * 11, 3), 4, 11);
        var r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "2");
        Assert.Equal(2, r.Code);
        Assert.Contains(teacher, r.Stderr);
        Assert.Contains("(4, 11) differs from the student's (4, 10)", r.Stderr);
    }

    [Fact]
    public void WeightsMustBeOneDimensionalWithOneValuePerRow()
    {
        var (student, teacher, _, _) = WriteLogits(4, 10);
        string w2 = PathOf("w2.npy"), w3 = PathOf("w3.npy"), wneg = PathOf("wneg.npy"), wnan = PathOf("wnan.npy");
        NpyFile.WriteFloat32(w2, [1, 1, 1, 1], 2, 2);
        NpyFile.WriteFloat32(w3, [1, 1, 1], 3);
        NpyFile.WriteFloat32(wneg, [1, 1, -0.5f, 1], 4);
        NpyFile.WriteFloat32(wnan, [1, float.NaN, 1, 1], 4);
        foreach (var (path, expected) in new[]
                 {
                     (w2, "expected a 1-D array [rows]"), (w3, "has 3 weights, the logits have 4 rows"),
                     (wneg, "row 2 must be finite and ≥ 0, got -0.5"), (wnan, "row 1 must be finite and ≥ 0, got NaN"),
                 })
        {
            var r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "3", "--weights", path);
            Assert.True(r.Code == 2, r.ToString());
            Assert.Contains(path, r.Stderr);
            Assert.Contains(expected, r.Stderr);
        }
    }

    [Fact]
    public void NonFiniteLogitsExitTwoNamingTheFileAndRow()
    {
        var (student, teacher, s, t) = WriteLogits(5, 9);
        t[2 * 9 + 4] = float.NaN;
        NpyFile.WriteFloat32(teacher, t, 5, 9);
        var r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "3");
        Assert.Equal(2, r.Code);
        Assert.Contains(teacher, r.Stderr);
        Assert.Contains("row 2", r.Stderr);

        t[2 * 9 + 4] = 0.5f;
        NpyFile.WriteFloat32(teacher, t, 5, 9);
        s[3 * 9 + 1] = float.PositiveInfinity;
        NpyFile.WriteFloat32(student, s, 5, 9);
        r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "3");
        Assert.Equal(2, r.Code);
        Assert.Contains(student, r.Stderr);
        Assert.Contains("row 3", r.Stderr);
    }

    [Fact]
    public void FailedRunLeavesAnExistingGradientFileUntouched()
    {
        var (student, teacher, _, t) = WriteLogits(5, 9);
        string grad = PathOf("g.npy");
        NpyFile.WriteFloat32(grad, [1f, 2f, 3f], 3);
        byte[] before = File.ReadAllBytes(grad);

        // Fails after both inputs were read, inside the kernels.
        t[4 * 9] = float.NegativeInfinity;
        NpyFile.WriteFloat32(teacher, t, 5, 9);
        var r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "3", "--grad-out", grad);
        Assert.Equal(2, r.Code);
        // Fails on an option checked against the vocabulary.
        r = Raft("kd", "--student", student, "--teacher", teacher, "--top-k", "10", "--grad-out", grad);
        Assert.Equal(2, r.Code);

        Assert.Equal(before, File.ReadAllBytes(grad));
        Assert.DoesNotContain(Directory.GetFiles(Dir), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }
}
