using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Raft.Cli.Commands;

/// <summary>
/// One run per run folder at a time: <see cref="FileName"/> in the folder records the process that holds it (pid, host,
/// the process's start time, the command). A second process is refused (exit 2) naming the holder; a lock whose process
/// is gone (a crash, SIGKILL, a reboot: its pid no longer runs, or runs another program started at another time) is
/// taken over and said so, so a crashed run never leaves its folder stuck. A lock from another host cannot be checked
/// and is refused with the command that clears it. Released (the file deleted) on <see cref="Dispose"/>.
/// </summary>
internal sealed class RunLock : IDisposable
{
    /// <summary>The lock file's name inside the run folder (not a run entry: --overwrite keeps it, an emptiness check ignores it).</summary>
    public const string FileName = ".raft.lock";

    // A lock file younger than this that does not parse is being written by its holder (created, not yet filled).
    private static readonly TimeSpan BeingWritten = TimeSpan.FromSeconds(5);

    private readonly string _path;
    private readonly Holder _me;

    private RunLock(string path, Holder me) { _path = path; _me = me; }

    /// <summary>What a lock file holds.</summary>
    internal sealed record Holder
    {
        [JsonPropertyName("pid")] public int Pid { get; init; }
        [JsonPropertyName("host")] public string Host { get; init; } = "";
        [JsonPropertyName("process_started_utc")] public DateTime ProcessStarted { get; init; }
        [JsonPropertyName("command")] public string Command { get; init; } = "";
        [JsonPropertyName("token")] public string Token { get; init; } = "";
    }

    /// <summary>
    /// Takes the lock of <paramref name="folder"/> (created if needed) for <paramref name="command"/>. A stale lock is
    /// taken over with a line on <paramref name="log"/>.
    /// </summary>
    /// <exception cref="UsageException">Another live process holds it, or a process on another host does: names it and the lock file.</exception>
    public static RunLock Acquire(string option, string folder, string command, TextWriter log)
    {
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, FileName);
        var me = Current(command);
        // A lock file that does not parse may be one being written: waited for while it is young (at most twice
        // BeingWritten), then taken over. Only take-overs lost to another process count as attempts (before, the wait
        // used them up, so a just-damaged lock ended in "it keeps changing" instead of being taken over).
        var waited = Stopwatch.StartNew();
        for (int attempt = 0; ; )
        {
            if (TryCreate(path, me)) return new RunLock(path, me);
            var (holder, age) = Read(path);
            if (holder is null)
            {
                if (age is null) continue;                 // gone meanwhile: try again
                if (age < BeingWritten && waited.Elapsed < 2 * BeingWritten) { Thread.Sleep(100); continue; }
            }
            else if (holder.Host != me.Host)
                throw new UsageException($"{option} {folder}: the run folder is locked by pid {holder.Pid} on host {holder.Host} ({holder.Command}, since {holder.ProcessStarted:u}); " +
                                         $"this host cannot tell whether it still runs: if it does not, delete {path}.");
            else if (IsAlive(holder))
                throw new UsageException($"{option} {folder}: another run is using this folder (pid {holder.Pid}, {holder.Command}, started {holder.ProcessStarted:u}); " +
                                         "wait for it to end or stop it: one run per folder at a time.");
            if (attempt++ >= 50) throw new UsageException($"{option} {folder}: could not take the lock {path} (it keeps changing).");
            if (TakeOver(path, holder))
                log.WriteLine(holder is null
                    ? $"raft: {option} {folder}: took over a damaged lock file {FileName} (no run holds it)"
                    : $"raft: {option} {folder}: took over the lock of pid {holder.Pid} ({holder.Command}, started {holder.ProcessStarted:u}), which no longer runs");
        }
    }

    /// <summary>Deletes the lock file if it is still this process's.</summary>
    public void Dispose()
    {
        if (Read(_path).Holder is { } h && h.Token == _me.Token)
        {
            try { File.Delete(_path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static Holder Current(string command)
    {
        using var self = Process.GetCurrentProcess();
        return new Holder
        {
            Pid = Environment.ProcessId, Host = Environment.MachineName, ProcessStarted = self.StartTime.ToUniversalTime(),
            Command = command, Token = Guid.NewGuid().ToString("N"),
        };
    }

    /// <summary>Creates the lock file with <paramref name="me"/> in it; false when it exists.</summary>
    private static bool TryCreate(string path, Holder me)
    {
        FileStream stream;
        try { stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read); }
        catch (IOException) when (File.Exists(path)) { return false; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--out {Path.GetDirectoryName(path)}: cannot create the lock file {FileName} ({e.Message}).");
        }
        using (stream)
        {
            JsonSerializer.Serialize(stream, me);
            stream.Flush(flushToDisk: true);
        }
        return true;
    }

    /// <summary>The holder in the lock file (null when it does not parse) and the file's age (null when it is gone).</summary>
    internal static (Holder? Holder, TimeSpan? Age) Read(string path)
    {
        try
        {
            var age = DateTime.UtcNow - File.GetLastWriteTimeUtc(path);
            if (!File.Exists(path)) return (null, null);
            var text = File.ReadAllText(path);
            try { return (JsonSerializer.Deserialize<Holder>(text), age); }
            catch (JsonException) { return (null, age); }
        }
        catch (FileNotFoundException) { return (null, null); }
        catch (IOException) { return (null, TimeSpan.Zero); }
    }

    /// <summary>Whether the holder's process still runs: its pid exists and was started when the lock says (a reused pid is another process).</summary>
    internal static bool IsAlive(Holder holder)
    {
        if (holder.Pid == Environment.ProcessId) return true;
        if (HasEnded(holder.Pid)) return false;
        try
        {
            using var p = Process.GetProcessById(holder.Pid);
            if (p.HasExited) return false;
            return Math.Abs((p.StartTime.ToUniversalTime() - holder.ProcessStarted).TotalSeconds) < 2;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception) { return false; }
    }

    /// <summary>
    /// Whether Linux says the process has ended although its pid is still listed: a zombie (state Z, or X while it is
    /// being reaped) has run its last instruction and holds nothing, but its pid stays until its parent reaps it, and
    /// a rank that mpirun killed is re-parented to PID 1, which in some containers never reaps. False elsewhere and
    /// when /proc cannot be read (then the pid and start time decide).
    /// </summary>
    internal static bool HasEnded(int pid)
    {
        if (!OperatingSystem.IsLinux()) return false;
        string stat;
        try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
        int close = stat.LastIndexOf(')');          // "pid (comm) S ...": comm may itself hold ')' or spaces
        if (close < 0 || close + 2 >= stat.Length) return false;
        char state = stat[close + 2];
        return state is 'Z' or 'X' or 'x';
    }

    /// <summary>
    /// Moves the stale lock aside and deletes it, unless what was moved is not the lock judged stale (another process
    /// took it over first and wrote its own): then that one is put back. True when the stale lock is gone.
    /// </summary>
    private static bool TakeOver(string path, Holder? stale)
    {
        string aside = $"{path}.stale-{Guid.NewGuid():N}";
        try { File.Move(path, aside); }
        catch (FileNotFoundException) { return false; }
        var (moved, _) = Read(aside);
        if (moved is not null && (stale is null || moved.Token != stale.Token))
        {
            try { File.Move(aside, path, overwrite: false); } catch (IOException) { File.Delete(aside); }
            return false;
        }
        File.Delete(aside);
        return true;
    }
}
