namespace Raft.Tests.Shared;

/// <summary>
/// A fresh directory under the system temp folder, named after the test assembly and a new GUID
/// ("raft.model.tests-…"), deleted (best effort) on dispose. Linked source, one copy for every test project.
/// </summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        string prefix = typeof(TempDirectory).Assembly.GetName().Name!.ToLowerInvariant();
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), prefix + "-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    /// <summary>The directory (it exists once constructed).</summary>
    public string Path { get; }

    /// <summary>The path of <paramref name="name"/> inside the directory.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Writes <paramref name="text"/> to <paramref name="name"/> inside the directory and returns its path.</summary>
    public string Write(string name, string text)
    {
        string p = File(name);
        System.IO.File.WriteAllText(p, text);
        return p;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
