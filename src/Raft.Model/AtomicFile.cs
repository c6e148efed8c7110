using System.Runtime.InteropServices;

namespace Raft.Model;

/// <summary>
/// Writes files and directories so that readers see either the old content or the complete new content,
/// never a half-written one.
/// </summary>
internal static partial class AtomicFile
{
    /// <summary>
    /// Writes through <paramref name="write"/> into a temporary file in the destination's directory, flushes it to
    /// disk, then renames it over <paramref name="path"/>. On failure the temporary file is deleted and an existing
    /// <paramref name="path"/> is left untouched.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(full) ?? ".";
        string temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDeleteFile(temp);
            throw;
        }
    }

    /// <summary>Writes text (UTF-8, no BOM) atomically.</summary>
    public static void WriteText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true); w.Write(text); });

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

    public static void TryDeleteFile(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public static void TryDeleteDirectory(string path)
    {
        try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
