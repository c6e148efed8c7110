using System.Runtime.InteropServices;

namespace Raft.Model;

/// <summary>
/// Writes files and directories so that readers see either the old content or the complete new content,
/// never a half-written one.
/// </summary>
public static partial class AtomicFile
{
    /// <summary>
    /// Writes through <paramref name="write"/> into a temporary file in the destination's directory, flushes it to
    /// disk, then renames it over <paramref name="path"/>. On failure the temporary file is deleted and an existing
    /// <paramref name="path"/> is left untouched; a failure of the file system on the temporary file (a full disk, a
    /// refused rename) is an <see cref="OutputWriteException"/> naming <paramref name="path"/>.
    /// </summary>
    public static void Write(string path, Action<Stream> write) => WriteAll([(path, write)]);

    /// <summary>
    /// Writes several files as one output: each through its writer into a temporary file beside it (flushed to disk),
    /// then, once all are written, renames them over their destinations in order. A failure while writing deletes every
    /// temporary file and leaves every destination untouched; a refused rename deletes the temporary files left and the
    /// destinations this call created (ones it replaced keep their new content), so a new output is whole or absent.
    /// A failure of the file system on a temporary file is an <see cref="OutputWriteException"/> naming its destination.
    /// </summary>
    public static void WriteAll(IReadOnlyList<(string Path, Action<Stream> Write)> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var staged = new List<(string Temp, string Full, bool Existed)>();
        try
        {
            foreach (var (path, write) in files)
            {
                string full = Path.GetFullPath(path);
                string temp = Path.Combine(Path.GetDirectoryName(full) ?? ".", $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
                staged.Add((temp, full, File.Exists(full)));
                using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
                write(stream);
                stream.Flush(flushToDisk: true);
            }
        }
        catch (Exception e)
        {
            foreach (var f in staged) TryDeleteFile(f.Temp);
            if (e is IOException io && staged.Count > 0 && Named(io, staged[^1].Temp, staged[^1].Full) is { } named) throw named;
            throw;
        }
        for (int i = 0; i < staged.Count; i++)
        {
            try { File.Move(staged[i].Temp, staged[i].Full, overwrite: true); }
            catch (IOException e)
            {
                for (int j = i; j < staged.Count; j++) TryDeleteFile(staged[j].Temp);
                for (int j = 0; j < i; j++) if (!staged[j].Existed) TryDeleteFile(staged[j].Full);
                if (Named(e, staged[i].Temp, staged[i].Full) is { } named) throw named;
                throw;
            }
        }
    }

    /// <summary>The file system's failure <paramref name="e"/> on <paramref name="temp"/> said of <paramref name="full"/>; null when it is not about that file.</summary>
    private static OutputWriteException? Named(IOException e, string temp, string full) =>
        e.Message.Contains(temp, StringComparison.Ordinal)
            ? new OutputWriteException(full, e.Message.Replace($" : '{temp}'", "", StringComparison.Ordinal).Replace(temp, full, StringComparison.Ordinal), e)
            : null;

    /// <summary>Writes texts (UTF-8, no BOM) as one output (<see cref="WriteAll"/>).</summary>
    public static void WriteTexts(IReadOnlyList<(string Path, string Text)> files) =>
        WriteAll([.. files.Select(f => (f.Path, (Action<Stream>)(s => WriteUtf8(s, f.Text))))]);

    /// <summary>Writes text (UTF-8, no BOM) atomically.</summary>
    public static void WriteText(string path, string text) => Write(path, s => WriteUtf8(s, text));

    private static void WriteUtf8(Stream s, string text)
    {
        using var w = new StreamWriter(s, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true);
        w.Write(text);
    }

    /// <summary>
    /// Builds a directory: <paramref name="fill"/> writes into a fresh staging directory beside
    /// <paramref name="directory"/>, which then replaces <paramref name="directory"/>. On Linux an existing directory
    /// is swapped in one step (renameat2 with RENAME_EXCHANGE); elsewhere, or where the file system refuses that, the old
    /// directory is renamed aside, the new one renamed in, and the old one deleted (a reader can then meet a moment
    /// with no directory, never a half-written one). On failure the staging directory is deleted and the previous
    /// <paramref name="directory"/> is left as it was.
    /// </summary>
    public static void WriteDirectory(string directory, Action<string> fill)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        string parent = Path.GetDirectoryName(full) ?? throw new ArgumentException($"{directory} has no parent directory.", nameof(directory));
        string name = Path.GetFileName(full);
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, $".{name}.staging-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            fill(staging);
            Replace(staging, full, parent, name);
        }
        catch
        {
            TryDeleteDirectory(staging);
            throw;
        }
    }

    /// <summary>Test hook: forces the portable rename-aside path even where an atomic exchange exists.</summary>
    internal static bool DisableExchange { get; set; }

    private static void Replace(string staging, string target, string parent, string name)
    {
        if (!Directory.Exists(target))
        {
            if (File.Exists(target)) throw new IOException($"{target} exists and is a file, not a checkpoint directory.");
            Directory.Move(staging, target);
            return;
        }
        if (!DisableExchange && TryExchange(staging, target))
        {
            TryDeleteDirectory(staging); // now holds the previous content
            return;
        }
        string aside = Path.Combine(parent, $".{name}.old-{Guid.NewGuid():N}");
        Directory.Move(target, aside);
        try
        {
            Directory.Move(staging, target);
        }
        catch
        {
            Directory.Move(aside, target);
            throw;
        }
        TryDeleteDirectory(aside);
    }

    private const int AtFdCwd = -100;
    private const uint RenameExchange = 2;

    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RenameAt2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);

    /// <summary>Swaps two existing directories in one step (Linux renameat2 RENAME_EXCHANGE); false where unsupported.</summary>
    internal static bool TryExchange(string a, string b)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            return RenameAt2(AtFdCwd, a, AtFdCwd, b, RenameExchange) == 0;
        }
        catch (EntryPointNotFoundException) { return false; }
        catch (DllNotFoundException) { return false; }
    }

    internal static void TryDeleteFile(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    internal static void TryDeleteDirectory(string path)
    {
        try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>
/// Writing an output failed in the file system (a full disk, a read-only file system, a refused rename): an
/// <see cref="IOException"/> naming the output, not the temporary file it was written to, with the original error's
/// <see cref="Exception.HResult"/> (the errno on Unix).
/// </summary>
public sealed class OutputWriteException : IOException
{
    /// <summary>The failure <paramref name="inner"/> of writing <paramref name="path"/>, said as <paramref name="reason"/>.</summary>
    public OutputWriteException(string path, string reason, IOException inner) : base($"{path}: {reason}", inner)
    {
        Path = path;
        HResult = inner.HResult;
    }

    /// <summary>The output that could not be written (its earlier content, if any, is whole).</summary>
    public string Path { get; }
}
