using System.CommandLine;

namespace Raft.Cli.Commands;

/// <summary>Checks of command-line paths and options shared by the commands; each failure is a <see cref="UsageException"/> naming the option and value.</summary>
internal static class CliChecks
{
    /// <summary>Whether the user wrote <paramref name="option"/> (not just its default).</summary>
    public static bool IsGiven(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

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

    /// <summary>An output file's directory must exist, and the path must not be a directory.</summary>
    public static void CheckOutputFile(string option, string path)
    {
        if (Directory.Exists(path)) throw new UsageException($"{option} {path}: is a directory, not a file.");
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null && !Directory.Exists(directory))
            throw new UsageException($"{option} {path}: directory {directory} does not exist.");
    }

    /// <summary>
    /// An output directory must be creatable and writable: it is created (with its parents) and a probe file is written
    /// and deleted, so that a run fails before any work rather than after it.
    /// </summary>
    public static void CheckOutputDirectory(string option, string path)
    {
        if (File.Exists(path)) throw new UsageException($"{option} {path}: is a file, not a directory.");
        try
        {
            Directory.CreateDirectory(path);
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
