namespace Raft.Cuda.Tests;

public sealed class PtxCacheTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "raft-ptx-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void KeyIsASha256OverEveryInput()
    {
        string[] options = ["--gpu-architecture=compute_80"];
        var key = PtxCache.ComputeKey("src", "a.cu", "compute_80", options, "12.4");
        Assert.Matches("^[0-9a-f]{64}$", key);
        Assert.Equal(key, PtxCache.ComputeKey("src", "a.cu", "compute_80", options, "12.4"));
        Assert.NotEqual(key, PtxCache.ComputeKey("src ", "a.cu", "compute_80", options, "12.4"));
        Assert.NotEqual(key, PtxCache.ComputeKey("src", "b.cu", "compute_80", options, "12.4"));
        Assert.NotEqual(key, PtxCache.ComputeKey("src", "a.cu", "compute_90", options, "12.4"));
        Assert.NotEqual(key, PtxCache.ComputeKey("src", "a.cu", "compute_80", [.. options, "-lineinfo"], "12.4"));
        Assert.NotEqual(key, PtxCache.ComputeKey("src", "a.cu", "compute_80", options, "13.0"));
        // length prefixes: moving text between fields changes the key
        Assert.NotEqual(PtxCache.ComputeKey("ab", "c", "compute_80", [], "1"), PtxCache.ComputeKey("b", "ca", "compute_80", [], "1"));
    }

    [Fact]
    public void DefaultDirectoryIsUnderTheUserCache()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(PtxCache.DirectoryVariable))) return;
        var expectedTail = Path.Combine("raft", "ptx");
        Assert.EndsWith(expectedTail, PtxCache.DefaultDirectory);
        Assert.Equal(Path.GetFullPath(PtxCache.DefaultDirectory), new PtxCache().Directory);
    }

    [NvrtcFact]
    public void SecondCallHitsTheCache()
    {
        var cache = new PtxCache(_dir);
        var first = cache.GetOrCompileKernel(KernelSources.Copy, "compute_80");
        Assert.False(first.FromCache);
        Assert.True(File.Exists(first.FilePath));
        Assert.Equal(Path.Combine(cache.Directory, first.Key + ".ptx"), first.FilePath);
        var bytes = File.ReadAllBytes(first.FilePath);
        Assert.Equal(first.Ptx, System.Text.Encoding.UTF8.GetString(bytes));

        var second = new PtxCache(_dir).GetOrCompileKernel(KernelSources.Copy, "compute_80");
        Assert.True(second.FromCache);
        Assert.Equal(first.Key, second.Key);
        Assert.Equal(first.FilePath, second.FilePath);
        Assert.Equal(first.Ptx, second.Ptx);
        Assert.Equal(bytes, File.ReadAllBytes(second.FilePath));
        // written atomically: nothing but the cache file is left behind
        Assert.Equal([first.FilePath], Directory.GetFiles(cache.Directory));
    }

    [NvrtcFact]
    public void DifferentArchitectureOrSourceGivesADifferentKey()
    {
        var cache = new PtxCache(_dir);
        var a80 = cache.GetOrCompileKernel(KernelSources.Copy, "compute_80");
        var a75 = cache.GetOrCompileKernel(KernelSources.Copy, "compute_75");
        Assert.NotEqual(a80.Key, a75.Key);
        Assert.False(a75.FromCache);
        Assert.Contains(".target sm_75", a75.Ptx);

        var source = KernelSources.Read(KernelSources.Copy) + "\n// a comment changes the key\n";
        var edited = cache.GetOrCompile(source, KernelSources.Copy, "compute_80");
        Assert.NotEqual(a80.Key, edited.Key);
        Assert.False(edited.FromCache);

        var withOption = cache.GetOrCompileKernel(KernelSources.Copy, "compute_80", ["-lineinfo"]);
        Assert.NotEqual(a80.Key, withOption.Key);
        Assert.Equal(4, Directory.GetFiles(cache.Directory, "*.ptx").Length);
    }

    [NvrtcFact]
    public void ACorruptCacheFileIsRecompiled()
    {
        var cache = new PtxCache(_dir);
        var first = cache.GetOrCompileKernel(KernelSources.Copy, "compute_80");
        File.WriteAllText(first.FilePath, "garbage");
        var again = cache.GetOrCompileKernel(KernelSources.Copy, "compute_80");
        Assert.False(again.FromCache);
        Assert.Equal(first.Ptx, again.Ptx);
        Assert.Equal(first.Ptx, File.ReadAllText(first.FilePath));
    }

    [NvrtcFact]
    public void ACompileErrorLeavesNoFile()
    {
        var cache = new PtxCache(_dir);
        Assert.Throws<NvrtcException>(() => cache.GetOrCompile("this is not CUDA", "bad.cu"));
        Assert.True(!Directory.Exists(cache.Directory) || Directory.GetFiles(cache.Directory).Length == 0);
    }
}
