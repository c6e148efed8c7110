using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

public class TeacherCacheFileTests
{
    private static TeacherTopK RandomEntry(int rows, int k, int vocab, int seed)
    {
        var rng = new Random(seed);
        var idx = new int[rows * k];
        var probs = new float[rows * k];
        for (int i = 0; i < idx.Length; i++) { idx[i] = rng.Next(vocab); probs[i] = (float)rng.NextDouble(); }
        return new TeacherTopK(rows, k, idx, probs);
    }

    private static (TeacherCacheHeader, TeacherTopK[]) Sample() =>
        (new TeacherCacheHeader(1000, 4, 1.5f), [RandomEntry(7, 4, 1000, 1), RandomEntry(0, 4, 1000, 2), RandomEntry(3, 4, 1000, 3)]);

    [Fact]
    public void RoundTrip()
    {
        using var dir = new TempDirectory();
        string path = Path.Combine(dir.Path, "teacher.cache");
        var (header, entries) = Sample();
        TeacherCacheFile.Write(path, header, entries);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
        var (h, read) = TeacherCacheFile.Read(path, expected: header);
        Assert.Equal(header, h);
        Assert.Equal(entries.Length, read.Count);
        for (int e = 0; e < entries.Length; e++)
        {
            Assert.Equal(entries[e].Rows, read[e].Rows);
            Assert.Equal(entries[e].Indices, read[e].Indices);
            Assert.Equal(entries[e].Probs, read[e].Probs);
        }
        // rewriting replaces the file whole
        TeacherCacheFile.Write(path, header, entries[..1]);
        Assert.Single(TeacherCacheFile.Read(path).Entries);
    }

    [Fact]
    public void TruncatedFilesAreRejectedAtEveryLength()
    {
        using var dir = new TempDirectory();
        string path = Path.Combine(dir.Path, "teacher.cache"), cut = Path.Combine(dir.Path, "cut.cache");
        var (header, entries) = Sample();
        TeacherCacheFile.Write(path, header, entries);
        byte[] bytes = File.ReadAllBytes(path);
        foreach (int n in new[] { 0, 5, 8, 20, 35, 36, 40, 100, bytes.Length - 1 })
        {
            File.WriteAllBytes(cut, bytes[..n]);
            var e = Assert.Throws<InvalidDataException>(() => TeacherCacheFile.Read(cut));
            Assert.Contains(cut, e.Message);
            Assert.True(n < 8 || e.Message.Contains("truncated"), $"length {n}: {e.Message}");
        }
        File.WriteAllBytes(cut, [.. bytes, 0]);
        Assert.Contains("after the last", Assert.Throws<InvalidDataException>(() => TeacherCacheFile.Read(cut)).Message);
    }

    [Fact]
    public void ForeignFilesAndOtherHeadersAreRejected()
    {
        using var dir = new TempDirectory();
        string path = Path.Combine(dir.Path, "teacher.cache");
        File.WriteAllText(path, "{\"this\": \"is a json file, not a teacher cache at all\"}");
        Assert.Contains("bad magic", Assert.Throws<InvalidDataException>(() => TeacherCacheFile.Read(path)).Message);

        var (header, entries) = Sample();
        TeacherCacheFile.Write(path, header, entries);
        var e = Assert.Throws<InvalidDataException>(() => TeacherCacheFile.Read(path, expected: header with { K = 8 }));
        Assert.Contains("K = 4", e.Message);
        Assert.Contains("K = 8", e.Message);

        byte[] bytes = File.ReadAllBytes(path);
        bytes[8] = 9; // format version 9
        File.WriteAllBytes(path, bytes);
        Assert.Contains("version 9", Assert.Throws<InvalidDataException>(() => TeacherCacheFile.Read(path)).Message);
    }

    [Fact]
    public void WriteChecksEntries()
    {
        using var dir = new TempDirectory();
        string path = Path.Combine(dir.Path, "teacher.cache");
        var header = new TeacherCacheHeader(10, 2, 1f);
        Assert.Contains("outside 0..9", Assert.Throws<ArgumentException>(() =>
            TeacherCacheFile.Write(path, header, [new TeacherTopK(1, 2, [3, 10], [0.5f, 0.5f])])).Message);
        Assert.Contains("K = 3", Assert.Throws<ArgumentException>(() =>
            TeacherCacheFile.Write(path, header, [new TeacherTopK(1, 3, [1, 2, 3], [0.2f, 0.3f, 0.5f])])).Message);
        Assert.Throws<ArgumentException>(() => TeacherCacheFile.Write(path, header with { Temperature = 0 }, []));
        Assert.False(File.Exists(path));
    }
}
