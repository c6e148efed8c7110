namespace Raft.Cli.Commands;

/// <summary>
/// The output folders a command created itself (<see cref="CliChecks.CheckOutputDirectory"/>), so that a command that fails
/// removes them again when they are still empty: a failed <c>raft export-onnx --out new/x</c> leaves neither <c>new/x</c>
/// nor <c>new</c> behind. A folder that existed before the command is never removed, and neither is one that holds
/// anything (a run that failed after writing its record or a checkpoint keeps it, for <c>--resume</c> or a look).
/// One scope per <see cref="Program.Run"/> (an <see cref="AsyncLocal{T}"/>, so in-process runs in parallel do not share it).
/// </summary>
internal static class CreatedFolders
{
    private static readonly AsyncLocal<List<string>?> Current = new();

    /// <summary>Starts recording the folders the command creates; <see cref="Scope.Dispose"/> stops.</summary>
    public static Scope Begin()
    {
        var list = new List<string>();
        Current.Value = list;
        return new Scope(list);
    }

    /// <summary>
    /// Creates <paramref name="path"/> with its missing parents and records each folder that did not exist (the deepest
    /// last), for <see cref="Scope.RemoveEmpty"/>.
    /// </summary>
    public static void Create(string path)
    {
        var missing = new List<string>();
        for (string? p = Path.GetFullPath(path); !string.IsNullOrEmpty(p) && !Directory.Exists(p); p = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(p)))
            missing.Add(Path.TrimEndingDirectorySeparator(p));
        Directory.CreateDirectory(path);
        if (Current.Value is not { } list) return;
        for (int i = missing.Count - 1; i >= 0; i--) list.Add(missing[i]);
    }

    /// <summary>The recording of one command.</summary>
    public sealed class Scope(List<string> created) : IDisposable
    {
        /// <summary>The folders created so far, in creation order (parents first).</summary>
        public IReadOnlyList<string> Created => created;

        /// <summary>Removes every recorded folder that is empty now, the deepest first (so that an emptied parent goes too).</summary>
        public void RemoveEmpty()
        {
            for (int i = created.Count - 1; i >= 0; i--)
            {
                string dir = created[i];
                try
                {
                    if (Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any()) Directory.Delete(dir);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* left as it is: the failure itself was reported */ }
            }
            created.Clear();
        }

        public void Dispose()
        {
            if (ReferenceEquals(Current.Value, created)) Current.Value = null;
        }
    }
}
