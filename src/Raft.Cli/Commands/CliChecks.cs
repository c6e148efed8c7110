using System.CommandLine;

namespace Raft.Cli.Commands;

/// <summary>Checks of command-line paths and options shared by the commands; each failure is a <see cref="UsageException"/> naming the option and value.</summary>
internal static class CliChecks
{
    /// <summary>Whether the user wrote <paramref name="option"/> (not just its default).</summary>
    public static bool IsGiven(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    /// <summary>A CPU thread count must be ≥ 0 (0 = all cores).</summary>
    public static void CheckThreads(string option, int threads)
    {
        if (threads < 0) throw new UsageException($"{option} must be ≥ 0 (0 = all cores), got {threads}.");
    }

    /// <summary>An input file must exist and not be a directory.</summary>
    public static void CheckInputFile(string option, string path)
    {
        if (Directory.Exists(path)) throw new UsageException($"{option} {path}: is a directory, not a file.");
        if (!File.Exists(path)) throw new UsageException($"{option} {path}: file not found.");
    }

    /// <summary>An input directory must exist.</summary>
    public static void CheckInputDirectory(string option, string path)
    {
        if (File.Exists(path)) throw new UsageException($"{option} {path}: is a file, not a directory.");
        if (!Directory.Exists(path)) throw new UsageException($"{option} {path}: directory not found.");
    }

    /// <summary>
    /// An output file's directory must exist and be writable (a probe file is created and deleted there), and the path
    /// must not be a directory: checked before any work, so that a run does not fail after it.
    /// </summary>
    public static void CheckOutputFile(string option, string path)
    {
        if (Directory.Exists(path)) throw new UsageException($"{option} {path}: is a directory, not a file.");
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null && !Directory.Exists(directory))
            throw new UsageException($"{option} {path}: directory {directory} does not exist.");
        if (directory is not null) ProbeWritable(option, path, directory);
    }

    /// <summary>Creates and deletes a temporary file in <paramref name="directory"/>; a failure names the option and path.</summary>
    private static void ProbeWritable(string option, string path, string directory)
    {
        try
        {
            string probe = Path.Combine(directory, $".raft-write-probe-{Guid.NewGuid():N}");
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write)) { }
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option} {path}: cannot write in {directory} ({e.Message}).");
        }
    }

    /// <summary>A command-line path argument: the option that named it and its value (null when not given).</summary>
    internal readonly record struct PathArgument(string Option, string? Path);

    /// <summary>
    /// The data-safety rule, in one place: no output of a command may be, lie inside, or contain any of its inputs
    /// (compared as full paths with every symbolic link resolved). Every command that writes calls this before any work;
    /// a conflict names both options and the path. With <paramref name="mayContainInputs"/>, an output folder may hold an
    /// input (eval's, demo's and export-onnx's --out, which only add their own named files at the top: <c>raft eval
    /// --model runs/a/final --out runs/a</c>); a run folder, whose old files --overwrite removes, may not.
    /// </summary>
    public static void CheckOutputsApart(IEnumerable<PathArgument> inputs, IEnumerable<PathArgument> outputs, bool mayContainInputs = false)
    {
        var ins = inputs.Where(i => !string.IsNullOrEmpty(i.Path)).Select(i => (i, Real: RealPath(i.Path!))).ToList();
        foreach (var output in outputs)
        {
            if (string.IsNullOrEmpty(output.Path)) continue;
            string o = RealPath(output.Path);
            foreach (var (input, i) in ins)
            {
                string? how = o == i ? "is the same path as"
                    : IsInside(o, i) ? "is inside the"
                    : !mayContainInputs && IsInside(i, o) ? "contains the"
                    : null;
                if (how is null) continue;
                string where = o == i ? o : $"{o} vs {i}";
                throw new UsageException(
                    $"{output.Option} {output.Path}: {how} {input.Option} {(how == "is inside the" ? "folder " : "")}{input.Path} ({where}); " +
                    $"a command never writes into, over or inside its inputs: choose another {output.Option}.");
            }
        }
    }

    private static bool IsInside(string path, string folder) =>
        path.StartsWith(folder.EndsWith(System.IO.Path.DirectorySeparatorChar) ? folder : folder + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>The full path of <paramref name="path"/> with every existing symbolic link along it resolved (the parts that do not exist yet kept as written).</summary>
    internal static string RealPath(string path) => RealPath(path, 0);

    private static string RealPath(string path, int depth)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        string root = Path.GetPathRoot(full) ?? "/";
        string current = root;
        foreach (string part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.Exists && info.LinkTarget is not null)
            {
                try
                {
                    // The target's own folders may be links too (a relative link resolves against its folder).
                    if (info.ResolveLinkTarget(returnFinalTarget: true)?.FullName is { } target)
                        next = depth < 40 ? RealPath(target, depth + 1) : Path.TrimEndingDirectorySeparator(target);
                }
                catch (IOException) { /* a link loop: compared as written */ }
            }
            current = next;
        }
        return current;
    }

    /// <summary>
    /// An output directory must be creatable and writable: it is created (with its parents) and a probe file is written
    /// and deleted, so that a run fails before any work rather than after it. The folders it creates are recorded
    /// (<see cref="CreatedFolders"/>): a command that fails afterwards removes them again while they are empty.
    /// </summary>
    public static void CheckOutputDirectory(string option, string path)
    {
        if (File.Exists(path)) throw new UsageException($"{option} {path}: is a file, not a directory.");
        try
        {
            CreatedFolders.Create(path);
            string probe = Path.Combine(path, $".raft-write-probe-{Guid.NewGuid():N}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option} {path}: the directory is not writable ({e.Message}).");
        }
    }
}
