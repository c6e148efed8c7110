using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Raft.Cuda;

/// <summary>
/// Run-time compilation of CUDA C source to PTX with NVRTC. The library is probed on first use:
/// libnvrtc.so.13, libnvrtc.so.12, libnvrtc.so.11.2 (CUDA 11.2–11.8 ship under that name), then libnvrtc.so;
/// the environment variable RAFT_NVRTC_LIBRARY may name an explicit path, tried first. Compilation is
/// serialized by a lock (older NVRTC releases are not reentrant).
/// </summary>
public static class NvrtcCompiler
{
    private static readonly object s_compileLock = new();

    /// <summary>The architecture <see cref="CompileToPtx"/> targets unless told otherwise (Ampere; every NVRTC from 11.0 to 13 knows it).</summary>
    public const string DefaultArchitecture = "compute_80";

    /// <summary>Whether an NVRTC library was found and loaded.</summary>
    public static bool IsAvailable => NvrtcApi.TryGet(out _) is not null;

    /// <summary>Why NVRTC cannot be used, or null when it can.</summary>
    public static string? UnavailableReason => NvrtcApi.TryGet(out var reason) is null ? reason : null;

    /// <summary>The library that was loaded (a name or a path).</summary>
    /// <exception cref="InvalidOperationException">NVRTC is not available.</exception>
    public static string LibraryName => Api.LibraryName;

    /// <summary>NVRTC's version (nvrtcVersion), for example 11.8 or 13.0.</summary>
    /// <exception cref="InvalidOperationException">NVRTC is not available.</exception>
    public static Version Version => new(Api.Major, Api.Minor);

    /// <summary>
    /// The virtual architectures this NVRTC can target, as numbers (75 for compute_75), ascending
    /// (nvrtcGetSupportedArchs; CUDA 11.8 lists 35…90, CUDA 13 starts at 75).
    /// </summary>
    /// <exception cref="InvalidOperationException">NVRTC is not available.</exception>
    public static IReadOnlyList<int> SupportedArchitectures => Api.SupportedArchitectures;

    internal static NvrtcApi Api =>
        NvrtcApi.TryGet(out var reason) ?? throw new InvalidOperationException(reason);

    /// <summary>
    /// The architecture to compile for a device of compute capability <paramref name="major"/>.<paramref name="minor"/>:
    /// the newest one the loaded NVRTC supports that does not exceed the device (PTX runs on its own and newer
    /// devices), as "compute_XY".
    /// </summary>
    /// <exception cref="InvalidOperationException">NVRTC is not available.</exception>
    /// <exception cref="NotSupportedException">The device is older than every architecture NVRTC supports.</exception>
    public static string ChooseArchitecture(int major, int minor) => ChooseArchitecture(major, minor, SupportedArchitectures);

    /// <summary>
    /// <see cref="ChooseArchitecture(int, int)"/> against an explicit list of supported architectures
    /// (numbers such as 75, 80, 90).
    /// </summary>
    /// <exception cref="NotSupportedException">The device is older than every architecture in the list.</exception>
    public static string ChooseArchitecture(int major, int minor, IReadOnlyList<int> supported)
    {
        ArgumentNullException.ThrowIfNull(supported);
        int device = major * 10 + minor;
        int best = -1;
        foreach (int a in supported)
            if (a <= device && a > best) best = a;
        if (best < 0)
            throw new NotSupportedException(
                $"A device of compute capability {major}.{minor} is older than every architecture this NVRTC supports ({string.Join(", ", supported)}).");
        return "compute_" + best.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Compiles CUDA C <paramref name="source"/> to PTX for the virtual architecture <paramref name="arch"/>
    /// ("compute_XY"). <paramref name="name"/> is the file name NVRTC uses in its log. Extra NVRTC options
    /// (for example "-lineinfo", "-DNAME=1") are passed after the architecture.
    /// </summary>
    /// <returns>The PTX text.</returns>
    /// <exception cref="NvrtcException">A call failed; for a compile error <see cref="NvrtcException.Log"/> holds the full log.</exception>
    /// <exception cref="InvalidOperationException">NVRTC is not available.</exception>
    /// <exception cref="ArgumentException"><paramref name="arch"/> is not of the form compute_XY.</exception>
    public static unsafe string CompileToPtx(string source, string name, string arch = DefaultArchitecture, IEnumerable<string>? extraOptions = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ValidateArchitecture(arch);
        var options = BuildOptions(arch, extraOptions);
        var api = Api;

        var sourceBytes = Utf8Z(source);
        var nameBytes = Utf8Z(name);
        var optionBytes = options.Select(Utf8Z).ToArray();
        var handles = new GCHandle[optionBytes.Length];
        var optionPointers = new IntPtr[optionBytes.Length];
        try
        {
            for (int i = 0; i < optionBytes.Length; i++)
            {
                handles[i] = GCHandle.Alloc(optionBytes[i], GCHandleType.Pinned);
                optionPointers[i] = handles[i].AddrOfPinnedObject();
            }
            lock (s_compileLock)
            {
                IntPtr program = IntPtr.Zero;
                fixed (byte* src = sourceBytes)
                fixed (byte* nm = nameBytes)
                    api.Check(api.nvrtcCreateProgram(&program, src, nm, 0, null, null), "nvrtcCreateProgram", programName: name);
                try
                {
                    int result;
                    fixed (IntPtr* opts = optionPointers)
                        result = api.nvrtcCompileProgram(program, optionPointers.Length, (byte**)opts);
                    if (result != 0) api.Check(result, "nvrtcCompileProgram", ReadLog(api, program), name);

                    nuint size;
                    api.Check(api.nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize", programName: name);
                    var ptx = new byte[(int)size];
                    fixed (byte* p = ptx) api.Check(api.nvrtcGetPTX(program, p), "nvrtcGetPTX", programName: name);
                    int length = Array.IndexOf(ptx, (byte)0);
                    return Encoding.UTF8.GetString(ptx, 0, length < 0 ? ptx.Length : length);
                }
                finally
                {
                    api.nvrtcDestroyProgram(&program); // nothing useful to do if releasing fails
                }
            }
        }
        finally
        {
            foreach (var h in handles)
                if (h.IsAllocated) h.Free();
        }
    }

    /// <summary>The full option list passed to NVRTC for an architecture and extra options (also what the PTX cache keys on).</summary>
    public static IReadOnlyList<string> BuildOptions(string arch, IEnumerable<string>? extraOptions)
    {
        ValidateArchitecture(arch);
        var options = new List<string> { "--gpu-architecture=" + arch };
        if (extraOptions is not null)
            foreach (var o in extraOptions)
            {
                ArgumentException.ThrowIfNullOrEmpty(o, nameof(extraOptions));
                options.Add(o);
            }
        return options;
    }

    private static void ValidateArchitecture(string arch)
    {
        ArgumentNullException.ThrowIfNull(arch);
        const string prefix = "compute_";
        bool ok = arch.StartsWith(prefix, StringComparison.Ordinal);
        if (ok)
        {
            // two or more digits, optionally followed by one feature suffix letter (compute_90a, compute_100f)
            var rest = arch.AsSpan(prefix.Length);
            int i = 0;
            while (i < rest.Length && char.IsAsciiDigit(rest[i])) i++;
            ok = i >= 2 && (i == rest.Length || (i == rest.Length - 1 && rest[i] is 'a' or 'f'));
        }
        if (!ok)
            throw new ArgumentException($"arch must be a virtual architecture such as compute_80, got '{arch}'.", nameof(arch));
    }

    private static unsafe string ReadLog(NvrtcApi api, IntPtr program)
    {
        nuint size;
        if (api.nvrtcGetProgramLogSize(program, &size) != 0 || size <= 1) return "";
        var log = new byte[(int)size];
        fixed (byte* p = log)
            if (api.nvrtcGetProgramLog(program, p) != 0) return "";
        int length = Array.IndexOf(log, (byte)0);
        return Encoding.UTF8.GetString(log, 0, length < 0 ? log.Length : length);
    }

    private static byte[] Utf8Z(string s)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }
}
