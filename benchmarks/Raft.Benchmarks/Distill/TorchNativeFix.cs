using System.Buffers.Binary;
using System.Text;

namespace Raft.Benchmarks.Distill;

/// <summary>
/// Makes TorchSharp 0.107's native glue loadable on distributions with GCC 12's libstdc++ (Debian 12).
/// <para>
/// libLibTorchSharp.so was built with GCC 13, whose &lt;iostream&gt; emits a bare
/// <c>.globl std::ios_base_library_init()</c> reference (no relocation, never called) only to pull in the
/// symbol version GLIBCXX_3.4.32; GCC 12's libstdc++ does not define that version, so the dynamic loader
/// refuses the whole library ("version `GLIBCXX_3.4.32' not found"). The streams it exists to initialise
/// are initialised anyway by libtorch_cpu.so, which is loaded first. This class marks that one version
/// requirement weak (VER_FLG_WEAK in the .gnu.version_r entry) in the copy of the library in this
/// program's own build output, only when the process's libstdc++ lacks the version. Nothing else changes:
/// two bytes of a build artifact; the NuGet cache is never touched.
/// </para>
/// </summary>
public static class TorchNativeFix
{
    private const string Version = "GLIBCXX_3.4.32";
    private static readonly object Gate = new();
    private static bool _done;

    /// <summary>What was done, for logs.</summary>
    public static string Status { get; private set; } = "not run";

    /// <summary>Call before the first use of TorchSharp's <c>torch</c> class.</summary>
    public static void Apply()
    {
        lock (Gate)
        {
            if (_done) return;
            _done = true;
            try { Status = ApplyCore(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                Status = $"not applied: {e.Message}";
            }
            if (Status != "not needed") Console.WriteLine($"// TorchSharp native fix: {Status}");
        }
    }

    private static string ApplyCore()
    {
        if (!OperatingSystem.IsLinux()) return "not needed";
        string? libstdcxx = File.ReadLines("/proc/self/maps")
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && Path.GetFileName(f[5]).StartsWith("libstdc++.so", StringComparison.Ordinal))
            .Select(f => f[5]).FirstOrDefault();
        if (libstdcxx is null || Contains(File.ReadAllBytes(libstdcxx), Encoding.ASCII.GetBytes(Version + "\0")))
            return "not needed";
        var patched = new List<string>();
        foreach (string dir in new[] { "runtimes/linux-x64/native", "cpu" })
        {
            string path = Path.Combine(AppContext.BaseDirectory, dir, "libLibTorchSharp.so");
            if (File.Exists(path) && MarkVersionWeak(path, Version)) patched.Add(path);
        }
        return patched.Count > 0
            ? $"{libstdcxx} lacks {Version}; marked that requirement weak in {string.Join(", ", patched)}"
            : $"{libstdcxx} lacks {Version}; nothing to patch (already weak or library not found)";
    }

    /// <summary>Sets VER_FLG_WEAK on the .gnu.version_r entry named <paramref name="version"/>; true if the file changed.</summary>
    public static bool MarkVersionWeak(string path, string version)
    {
        byte[] elf = File.ReadAllBytes(path);
        var s = elf.AsSpan();
        if (elf.Length < 64 || BinaryPrimitives.ReadUInt32LittleEndian(s) != 0x464C457F || elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException($"{path} is not a little-endian ELF64 file.");
        long shoff = BinaryPrimitives.ReadInt64LittleEndian(s[0x28..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(s[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(s[0x3C..]);
        for (int i = 0; i < shnum; i++)
        {
            var sh = s.Slice((int)(shoff + (long)i * shentsize), 64);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != 0x6ffffffe) continue; // SHT_GNU_verneed
            int off = (int)BinaryPrimitives.ReadInt64LittleEndian(sh[24..]);
            int link = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[40..]);
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[44..]);
            int strOff = (int)BinaryPrimitives.ReadInt64LittleEndian(s[(int)(shoff + (long)link * shentsize + 24)..]);
            bool changed = false;
            for (int n = 0, vn = off; n < count; n++)
            {
                int cnt = BinaryPrimitives.ReadUInt16LittleEndian(s[(vn + 2)..]);
                int aux = vn + (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(vn + 8)..]);
                for (int a = 0; a < cnt; a++)
                {
                    int name = strOff + (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(aux + 8)..]);
                    int end = s[name..].IndexOf((byte)0);
                    ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(s[(aux + 4)..]);
                    if (Encoding.ASCII.GetString(s.Slice(name, end)) == version && (flags & 2) == 0)
                    {
                        BinaryPrimitives.WriteUInt16LittleEndian(s[(aux + 4)..], (ushort)(flags | 2)); // VER_FLG_WEAK
                        changed = true;
                    }
                    aux += (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(aux + 12)..]);
                }
                vn += (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(vn + 12)..]);
            }
            if (changed) File.WriteAllBytes(path, elf);
            return changed;
        }
        return false;
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
