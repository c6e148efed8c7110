using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Security.Cryptography;

namespace Raft.Pipeline.Filtering;

/// <summary>One file to take out of an assembly's embedded resources: its resource name, the file name it gets, its size and SHA-256 (lower-case hex).</summary>
public sealed record EmbeddedFile(string ResourceName, string FileName, long Size, string Sha256);

/// <summary>
/// Extracts embedded resources of a .NET assembly file into a cache folder, once. The assembly is read as a PE file
/// (System.Reflection.Metadata), never loaded, so none of its dependencies is needed. The folder
/// <c>cacheRoot/folderName</c> is complete or absent: the files are written into a temporary sibling folder, checked
/// against their expected size and SHA-256, then the folder is renamed into place. An existing folder is used when every
/// file has its expected size and hash, and replaced otherwise (a half-written or damaged cache heals itself).
/// </summary>
public static class EmbeddedResourceCache
{
    private const string TempMarker = ".tmp-";

    /// <summary>
    /// The folder <c>cacheRoot/folderName</c> holding <paramref name="files"/>, extracted from <paramref name="assemblyPath"/>
    /// unless a verified copy is there already (<paramref name="extracted"/> is then false). A missing assembly throws
    /// <see cref="FileNotFoundException"/>; a missing resource or one whose size or SHA-256 differs from the expected
    /// one throws <see cref="InvalidDataException"/> naming the assembly, the resource and both values.
    /// </summary>
    public static string Ensure(string assemblyPath, IReadOnlyList<EmbeddedFile> files, string cacheRoot, string folderName, out bool extracted)
    {
        ArgumentNullException.ThrowIfNull(assemblyPath);
        ArgumentNullException.ThrowIfNull(files);
        ArgumentException.ThrowIfNullOrEmpty(cacheRoot);
        ArgumentException.ThrowIfNullOrEmpty(folderName);
        if (folderName.IndexOfAny(['/', '\\']) >= 0 || folderName.StartsWith('.'))
            throw new ArgumentException($"folderName '{folderName}' must be a plain folder name.", nameof(folderName));
        string final = Path.Combine(Path.GetFullPath(cacheRoot), folderName);
        extracted = false;
        if (IsComplete(final, files)) return final;
        if (!File.Exists(assemblyPath))
            throw new FileNotFoundException($"assembly with the embedded model not found: {Path.GetFullPath(assemblyPath)}", assemblyPath);

        Directory.CreateDirectory(Path.GetDirectoryName(final)!);
        RemoveAbandonedTemps(final);
        string temp = $"{final}{TempMarker}{Environment.ProcessId}-{Guid.NewGuid():N}";
        Directory.CreateDirectory(temp);
        try
        {
            WriteResources(assemblyPath, files, temp);
            if (Directory.Exists(final))
            {
                // another process may have finished meanwhile: its copy is as good as ours
                if (IsComplete(final, files)) { Directory.Delete(temp, recursive: true); return final; }
                // a damaged or foreign folder: move it aside first (a rename, so a reader never sees it half-deleted)
                string stale = $"{final}{TempMarker}stale-{Guid.NewGuid():N}";
                try { Directory.Move(final, stale); Directory.Delete(stale, recursive: true); }
                catch (IOException) { /* another process replaced it meanwhile: checked below */ }
            }
            try { Directory.Move(temp, final); }
            catch (IOException) when (IsComplete(final, files))
            {
                // another process finished the same extraction first: use its copy
                Directory.Delete(temp, recursive: true);
                return final;
            }
            extracted = true;
            return final;
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    /// <summary>Whether <paramref name="folder"/> holds every file with its expected size and SHA-256 (and nothing is checked but those files).</summary>
    public static bool IsComplete(string folder, IReadOnlyList<EmbeddedFile> files)
    {
        if (!Directory.Exists(folder)) return false;
        foreach (var f in files)
        {
            var info = new FileInfo(Path.Combine(folder, f.FileName));
            if (!info.Exists || info.Length != f.Size) return false;
        }
        foreach (var f in files)
        {
            using var s = File.OpenRead(Path.Combine(folder, f.FileName));
            if (!string.Equals(Convert.ToHexStringLower(SHA256.HashData(s)), f.Sha256, StringComparison.OrdinalIgnoreCase)) return false;
        }
        return true;
    }

    /// <summary>The names and sizes of the embedded (not linked) manifest resources of <paramref name="assemblyPath"/>.</summary>
    public static IReadOnlyDictionary<string, long> ListResources(string assemblyPath)
    {
        using var fs = File.OpenRead(assemblyPath);
        var table = ResourceTable(assemblyPath, fs);
        var result = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, offset) in table) result[name] = ReadLength(assemblyPath, fs, name, offset);
        return result;
    }

    private static void WriteResources(string assemblyPath, IReadOnlyList<EmbeddedFile> files, string temp)
    {
        using var fs = new FileStream(assemblyPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var table = ResourceTable(assemblyPath, fs);
        var buffer = new byte[1 << 20];
        foreach (var f in files)
        {
            if (!table.TryGetValue(f.ResourceName, out long offset))
                throw new InvalidDataException($"{Path.GetFullPath(assemblyPath)}: no embedded resource '{f.ResourceName}' (it has: {string.Join(", ", table.Keys)}).");
            long length = ReadLength(assemblyPath, fs, f.ResourceName, offset);
            if (length != f.Size)
                throw new InvalidDataException($"{Path.GetFullPath(assemblyPath)}: resource '{f.ResourceName}' has {length} bytes, expected {f.Size}.");
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            using (var output = new FileStream(Path.Combine(temp, f.FileName), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                long left = length;
                while (left > 0)
                {
                    int n = fs.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                    if (n == 0) throw new InvalidDataException($"{Path.GetFullPath(assemblyPath)}: resource '{f.ResourceName}' is cut short ({length - left} of {length} bytes).");
                    hash.AppendData(buffer, 0, n);
                    output.Write(buffer, 0, n);
                    left -= n;
                }
                output.Flush(flushToDisk: true);
            }
            string sha = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (!string.Equals(sha, f.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"{Path.GetFullPath(assemblyPath)}: resource '{f.ResourceName}' has SHA-256 {sha}, expected {f.Sha256}.");
        }
    }

    /// <summary>Resource name → file offset of its 4-byte length prefix.</summary>
    private static Dictionary<string, long> ResourceTable(string assemblyPath, FileStream fs)
    {
        fs.Position = 0;
        using var pe = new PEReader(fs, PEStreamOptions.LeaveOpen);
        var cor = pe.PEHeaders.CorHeader
            ?? throw new InvalidDataException($"{Path.GetFullPath(assemblyPath)}: not a .NET assembly (no CLI header).");
        var md = pe.GetMetadataReader();
        var table = new Dictionary<string, long>(StringComparer.Ordinal);
        bool hasDir = pe.PEHeaders.TryGetDirectoryOffset(cor.ResourcesDirectory, out int dirOffset);
        foreach (var handle in md.ManifestResources)
        {
            var r = md.GetManifestResource(handle);
            if (!r.Implementation.IsNil) continue; // linked to another file, not embedded
            if (!hasDir) throw new InvalidDataException($"{Path.GetFullPath(assemblyPath)}: embedded resources listed but no resources directory.");
            table[md.GetString(r.Name)] = dirOffset + r.Offset;
        }
        return table;
    }

    private static long ReadLength(string assemblyPath, FileStream fs, string name, long offset)
    {
        fs.Position = offset;
        Span<byte> len = stackalloc byte[4];
        fs.ReadExactly(len);
        long length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(len);
        if (offset + 4 + length > fs.Length)
            throw new InvalidDataException($"{Path.GetFullPath(assemblyPath)}: resource '{name}' claims {length} bytes past the end of the file.");
        return length;
    }

    /// <summary>Deletes temporary folders of <paramref name="final"/> left by an extraction that died more than an hour ago.</summary>
    private static void RemoveAbandonedTemps(string final)
    {
        string parent = Path.GetDirectoryName(final)!, prefix = Path.GetFileName(final) + TempMarker;
        foreach (var dir in Directory.EnumerateDirectories(parent, prefix + "*"))
        {
            try
            {
                if (DateTime.UtcNow - Directory.GetLastWriteTimeUtc(dir) > TimeSpan.FromHours(1)) Directory.Delete(dir, recursive: true);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
