using System.Security.Cryptography;
using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Tests;

/// <summary>
/// <see cref="EmbeddedResourceCache"/> on two small resources of this test assembly, read back by the runtime's own
/// resource loader as the oracle: extraction, idempotence, a half-written or damaged cache, and refusals.
/// </summary>
public sealed class EmbeddedResourceCacheTests : IDisposable
{
    private readonly TempDir _dir = new();
    private static readonly string Assembly = typeof(EmbeddedResourceCacheTests).Assembly.Location;

    private static byte[] RuntimeBytes(string name)
    {
        using var s = typeof(EmbeddedResourceCacheTests).Assembly.GetManifestResourceStream(name)!;
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    private static EmbeddedFile File(string resource, string fileName)
    {
        byte[] b = RuntimeBytes(resource);
        return new EmbeddedFile(resource, fileName, b.Length, Convert.ToHexStringLower(SHA256.HashData(b)));
    }

    private static readonly EmbeddedFile[] Files = [File("Raft.Tests.CacheA", "a.txt"), File("Raft.Tests.CacheB", "b.txt")];

    public void Dispose() => _dir.Dispose();

    private void AssertExtracted(string folder)
    {
        Assert.Equal(Path.Combine(_dir.Path, "m-1"), folder);
        Assert.Equal(RuntimeBytes("Raft.Tests.CacheA"), System.IO.File.ReadAllBytes(Path.Combine(folder, "a.txt")));
        Assert.Equal(RuntimeBytes("Raft.Tests.CacheB"), System.IO.File.ReadAllBytes(Path.Combine(folder, "b.txt")));
        // nothing but the folder itself is left in the cache root (no temporary folders)
        Assert.Equal([folder], Directory.GetFileSystemEntries(_dir.Path));
    }

    [Fact]
    public void Lists_the_embedded_resources_with_the_runtimes_sizes()
    {
        var list = EmbeddedResourceCache.ListResources(Assembly);
        Assert.Equal(RuntimeBytes("Raft.Tests.CacheA").Length, list["Raft.Tests.CacheA"]);
        Assert.Equal(3000, list["Raft.Tests.CacheB"]);
    }

    [Fact]
    public void Extracts_once_then_reuses_the_verified_folder()
    {
        string folder = EmbeddedResourceCache.Ensure(Assembly, Files, _dir.Path, "m-1", out bool first);
        Assert.True(first);
        AssertExtracted(folder);
        var stamp = System.IO.File.GetLastWriteTimeUtc(Path.Combine(folder, "b.txt"));
        Thread.Sleep(20);
        string again = EmbeddedResourceCache.Ensure(Assembly, Files, _dir.Path, "m-1", out bool second);
        Assert.False(second);
        Assert.Equal(folder, again);
        Assert.Equal(stamp, System.IO.File.GetLastWriteTimeUtc(Path.Combine(folder, "b.txt")));
        // a verified cache needs no assembly at all
        Assert.Equal(folder, EmbeddedResourceCache.Ensure(Path.Combine(_dir.Path, "gone.dll"), Files, _dir.Path, "m-1", out bool third));
        Assert.False(third);
    }

    [Fact]
    public void A_half_written_or_damaged_folder_is_replaced()
    {
        // a crash mid-copy: the final folder with a truncated file and the other one missing
        string folder = Path.Combine(_dir.Path, "m-1");
        Directory.CreateDirectory(folder);
        System.IO.File.WriteAllBytes(Path.Combine(folder, "b.txt"), RuntimeBytes("Raft.Tests.CacheB")[..1000]);
        Assert.False(EmbeddedResourceCache.IsComplete(folder, Files));
        EmbeddedResourceCache.Ensure(Assembly, Files, _dir.Path, "m-1", out bool extracted);
        Assert.True(extracted);
        AssertExtracted(folder);

        // the right sizes but a flipped byte: the SHA-256 catches it
        byte[] b = RuntimeBytes("Raft.Tests.CacheB");
        b[1234] ^= 1;
        System.IO.File.WriteAllBytes(Path.Combine(folder, "b.txt"), b);
        Assert.False(EmbeddedResourceCache.IsComplete(folder, Files));
        EmbeddedResourceCache.Ensure(Assembly, Files, _dir.Path, "m-1", out extracted);
        Assert.True(extracted);
        AssertExtracted(folder);
    }

    [Fact]
    public void Concurrent_extractions_end_with_one_complete_folder()
    {
        var results = new string[6];
        var extracted = new bool[6];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 6 }, i =>
            results[i] = EmbeddedResourceCache.Ensure(Assembly, Files, _dir.Path, "m-1", out extracted[i]));
        Assert.All(results, r => Assert.Equal(results[0], r));
        Assert.Contains(true, extracted);
        AssertExtracted(results[0]);
    }

    [Fact]
    public void An_abandoned_temporary_folder_is_ignored_and_removed_when_old()
    {
        string stale = Path.Combine(_dir.Path, "m-1.tmp-99-abc");
        Directory.CreateDirectory(stale);
        System.IO.File.WriteAllText(Path.Combine(stale, "a.txt"), "half");
        Directory.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddHours(-2));
        string fresh = Path.Combine(_dir.Path, "m-1.tmp-98-def"); // another process still at work: left alone
        Directory.CreateDirectory(fresh);
        string folder = EmbeddedResourceCache.Ensure(Assembly, Files, _dir.Path, "m-1", out bool extracted);
        Assert.True(extracted);
        Assert.False(Directory.Exists(stale));
        Assert.True(Directory.Exists(fresh));
        Directory.Delete(fresh);
        AssertExtracted(folder);
    }

    [Fact]
    public void A_wrong_hash_or_size_or_name_is_refused_and_leaves_nothing()
    {
        var badHash = new[] { Files[0], Files[1] with { Sha256 = new string('0', 64) } };
        var e = Assert.Throws<InvalidDataException>(() => EmbeddedResourceCache.Ensure(Assembly, badHash, _dir.Path, "m-1", out _));
        Assert.Contains("Raft.Tests.CacheB", e.Message);
        Assert.Contains(Files[1].Sha256, e.Message);
        Assert.Contains(Assembly, e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));

        var badSize = new[] { Files[0] with { Size = 5 } };
        e = Assert.Throws<InvalidDataException>(() => EmbeddedResourceCache.Ensure(Assembly, badSize, _dir.Path, "m-1", out _));
        Assert.Contains($"has {Files[0].Size} bytes, expected 5", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));

        var missing = new[] { new EmbeddedFile("No.Such.Resource", "x", 1, new string('0', 64)) };
        e = Assert.Throws<InvalidDataException>(() => EmbeddedResourceCache.Ensure(Assembly, missing, _dir.Path, "m-1", out _));
        Assert.Contains("No.Such.Resource", e.Message);
        Assert.Contains("Raft.Tests.CacheA", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));

        var f = Assert.Throws<FileNotFoundException>(() => EmbeddedResourceCache.Ensure(Path.Combine(_dir.Path, "none.dll"), Files, _dir.Path, "m-1", out _));
        Assert.Contains("none.dll", f.Message);
    }
}
