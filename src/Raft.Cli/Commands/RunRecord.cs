using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Raft.Model;

namespace Raft.Cli.Commands;

/// <summary>
/// What a run was made from: <see cref="FileName"/> in the run folder records each input (model, teacher, data) by
/// full path and content: the SHA-256 of every file (of a folder: its top-level files, dotfiles aside) and one hash over
/// them. A resume recomputes it and refuses any difference by name, unless <c>--allow-data-change</c> makes it
/// deliberate (then the new inputs are recorded, with the change). Hashing reads every byte once (about a second per
/// GB); on resume a file whose path, size and modification time are those recorded keeps its recorded hash unread.
/// </summary>
internal sealed record RunRecord
{
    /// <summary>The record's name inside the run folder (a run entry: --overwrite removes it).</summary>
    public const string FileName = "inputs.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>The inputs by name (model, teacher, data); an input the run does not have is absent.</summary>
    [JsonPropertyName("inputs")] public Dictionary<string, InputRecord> Inputs { get; init; } = [];

    /// <summary>The deliberate changes (<c>--allow-data-change</c>), oldest first.</summary>
    [JsonPropertyName("changes")] public List<ChangeRecord> Changes { get; init; } = [];

    /// <summary>One input: the option that named it, its full path, its content hash and its files.</summary>
    internal sealed record InputRecord
    {
        [JsonPropertyName("option")] public string Option { get; init; } = "";
        [JsonPropertyName("path")] public string Path { get; init; } = "";
        [JsonPropertyName("sha256")] public string Sha256 { get; init; } = "";
        [JsonPropertyName("files")] public List<FileRecord> Files { get; init; } = [];
        /// <summary>The rows of the file the run reads (<c>--rows</c>, Hugging Face's slice syntax); absent: all.</summary>
        [JsonPropertyName("rows")] public string? Rows { get; init; }
    }

    /// <summary>One file of an input.</summary>
    internal sealed record FileRecord
    {
        [JsonPropertyName("name")] public string Name { get; init; } = "";
        [JsonPropertyName("size")] public long Size { get; init; }
        [JsonPropertyName("modified_utc")] public DateTime Modified { get; init; }
        [JsonPropertyName("sha256")] public string Sha256 { get; init; } = "";
    }

    /// <summary>A deliberate change of inputs on resume.</summary>
    internal sealed record ChangeRecord
    {
        [JsonPropertyName("utc")] public DateTime Utc { get; init; }
        [JsonPropertyName("changed")] public List<string> Changed { get; init; } = [];
    }

    /// <summary>An input of the run: its name in the record, the option that gave it, its path (null: the run has none) and the rows read of it (null: all).</summary>
    internal readonly record struct Input(string Name, string Option, string? Path, string? Rows = null);

    /// <summary>
    /// Records <paramref name="inputs"/>; a file that <paramref name="known"/> records at the same path with the same
    /// size and modification time keeps its hash without being read.
    /// </summary>
    public static RunRecord Of(IEnumerable<Input> inputs, RunRecord? known = null)
    {
        var record = new RunRecord();
        foreach (var input in inputs)
        {
            if (input.Path is null) continue;
            string full = System.IO.Path.GetFullPath(input.Path);
            var cached = known?.Inputs.GetValueOrDefault(input.Name) is { } k && k.Path == full ? k.Files.ToDictionary(f => f.Name) : null;
            var files = Files(full).Select(f => Describe(f, cached)).ToList();
            var all = new StringBuilder();
            foreach (var f in files) all.Append(f.Name).Append('\0').Append(f.Sha256).Append('\n');
            record.Inputs[input.Name] = new InputRecord
            {
                Option = input.Option, Path = full, Files = files, Rows = input.Rows,
                Sha256 = files.Count == 1 && File.Exists(full) ? files[0].Sha256 : Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(all.ToString()))),
            };
        }
        return record;
    }

    private static IEnumerable<string> Files(string path) =>
        File.Exists(path) ? [path]
            : Directory.GetFiles(path).Where(f => !System.IO.Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal);

    private static FileRecord Describe(string file, Dictionary<string, FileRecord>? cached)
    {
        var info = new FileInfo(file);
        if (cached?.GetValueOrDefault(info.Name) is { } c && c.Size == info.Length && c.Modified == info.LastWriteTimeUtc) return c;
        return new FileRecord { Name = info.Name, Size = info.Length, Modified = info.LastWriteTimeUtc, Sha256 = Sha256(file) };
    }

    /// <summary>The SHA-256 of a file, read once in 1 MiB blocks.</summary>
    public static string Sha256(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The record in <paramref name="runFolder"/>, or null when there is none (a run from before it existed).</summary>
    /// <exception cref="UsageException">The file is there but does not read.</exception>
    public static RunRecord? Read(string runFolder)
    {
        string path = System.IO.Path.Combine(runFolder, FileName);
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize<RunRecord>(File.ReadAllText(path), Json) ?? throw new JsonException("null"); }
        catch (JsonException e) { throw new UsageException($"--resume: {path} is damaged ({e.Message}); delete it to resume without the input check."); }
    }

    /// <summary>Writes the record into <paramref name="runFolder"/> (atomically).</summary>
    public void Write(string runFolder) => AtomicFile.WriteText(System.IO.Path.Combine(runFolder, FileName), JsonSerializer.Serialize(this, Json));

    /// <summary>
    /// The resume check: every input of <paramref name="saved"/> and of this record must have the same content (a moved
    /// input with the same content is only said). Differences are refused naming the option, both paths and both hashes,
    /// unless <paramref name="allowChange"/>; returns the record to write (with the change listed).
    /// </summary>
    /// <exception cref="UsageException">An input differs and <paramref name="allowChange"/> is false.</exception>
    public RunRecord CheckResume(RunRecord saved, bool allowChange, string runFolder, TextWriter log)
    {
        var differences = new List<(string Name, string Text)>();
        foreach (string name in saved.Inputs.Keys.Union(Inputs.Keys))
        {
            var was = saved.Inputs.GetValueOrDefault(name);
            var now = Inputs.GetValueOrDefault(name);
            string option = (now ?? was)!.Option;
            if (was is null || now is null)
                differences.Add((name, $"{option}: the run was made {(was is null ? "without one" : $"with {was.Path}")}, now {(now is null ? "none" : now.Path)}"));
            else if (was.Sha256 != now.Sha256)
            {
                var changed = now.Files.Where(f => was.Files.FirstOrDefault(w => w.Name == f.Name)?.Sha256 != f.Sha256).Select(f => f.Name)
                    .Concat(was.Files.Where(w => now.Files.All(f => f.Name != w.Name)).Select(w => w.Name + " (gone)")).ToList();
                differences.Add((name, $"{option} {now.Path}: its content differs from the run's ({(was.Path == now.Path ? "" : $"recorded at {was.Path}; ")}" +
                                       $"sha256 {Short(was.Sha256)}… then, {Short(now.Sha256)}… now; changed: {string.Join(", ", changed)})"));
            }
            else if (was.Path != now.Path)
                log.WriteLine($"raft: {option} {now.Path}: the run's input was at {was.Path}; same content (sha256 {Short(now.Sha256)}…)");
        }
        if (differences.Count == 0) return this with { Changes = saved.Changes };
        if (!allowChange)
            throw new UsageException($"--resume {runFolder}: the run was made from other inputs: {string.Join("; ", differences.Select(d => d.Text))}. " +
                                     "Resume with the inputs it was made from, or give --allow-data-change to continue with these deliberately.");
        foreach (var d in differences) log.WriteLine($"raft: --allow-data-change: {d.Text}");
        return this with { Changes = [.. saved.Changes, new ChangeRecord { Utc = DateTime.UtcNow, Changed = differences.Select(d => d.Name).ToList() }] };
    }

    private static string Short(string sha) => sha.Length > 12 ? sha[..12] : sha;
}
