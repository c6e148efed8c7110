using System.Diagnostics;

namespace Raft.Tests.Shared;

/// <summary>
/// Runs only where Debian's python3-torch and python3-numpy are installed (CI installs them); set
/// RAFT_REQUIRE_TORCH_REFERENCE=1 to make their absence a failure instead of a skip.
/// </summary>
public sealed class TorchReferenceFactAttribute : FactAttribute
{
    public const string Python = "/usr/bin/python3";

    public TorchReferenceFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("RAFT_REQUIRE_TORCH_REFERENCE") == "1") return;
        if (!Available.Value)
            Skip = $"{Python} cannot import torch and numpy (Debian: apt-get install python3-torch python3-numpy); " +
                   "set RAFT_REQUIRE_TORCH_REFERENCE=1 to fail instead";
    }

    public static readonly Lazy<bool> Available = new(() =>
    {
        if (!File.Exists(Python)) return false;
        try
        {
            using var p = Process.Start(new ProcessStartInfo(Python, "-c \"import torch, numpy\"") { RedirectStandardError = true, RedirectStandardOutput = true })!;
            p.WaitForExit(120_000);
            return p.HasExited && p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    });
}
