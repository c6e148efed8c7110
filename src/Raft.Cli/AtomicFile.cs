namespace Raft.Cli;

/// <summary>Writes a file so that readers see either the old content or the complete new content.</summary>
internal static class AtomicFile
{
    /// <summary>
    /// Writes through <paramref name="write"/> into a temporary file in the destination's directory, flushes
    /// it to disk, then renames it over <paramref name="path"/>. On failure the temporary file is deleted and
    /// an existing <paramref name="path"/> is left untouched.
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
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
