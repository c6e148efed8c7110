using System.Runtime.InteropServices;

namespace Raft.Cuda;

/// <summary>
/// The NVRTC entry points, resolved once from the first library that loads (libnvrtc.so.13, .so.12, .so.11.2,
/// then libnvrtc.so; the environment variable RAFT_NVRTC_LIBRARY may name an explicit path, tried first).
/// Function pointers over <see cref="NativeLibrary"/>: the library name is only known at run time.
/// </summary>
internal sealed unsafe class NvrtcApi
{
    /// <summary>Candidate names, newest first.</summary>
    public static readonly IReadOnlyList<string> LibraryNames = OperatingSystem.IsWindows()
        ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"]
        : ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];

    /// <summary>The environment variable that may hold an explicit path to the NVRTC library.</summary>
    public const string OverrideVariable = "RAFT_NVRTC_LIBRARY";

    private static readonly Lazy<(NvrtcApi? Api, string Reason)> s_loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    public readonly string LibraryName;
    public readonly int Major, Minor;
    public readonly IReadOnlyList<int> SupportedArchitectures;

    public readonly delegate* unmanaged<int*, int*, int> nvrtcVersion;
    public readonly delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> nvrtcCreateProgram;
    public readonly delegate* unmanaged<IntPtr, int, byte**, int> nvrtcCompileProgram;
    public readonly delegate* unmanaged<IntPtr, nuint*, int> nvrtcGetProgramLogSize;
    public readonly delegate* unmanaged<IntPtr, byte*, int> nvrtcGetProgramLog;
    public readonly delegate* unmanaged<IntPtr, nuint*, int> nvrtcGetPTXSize;
    public readonly delegate* unmanaged<IntPtr, byte*, int> nvrtcGetPTX;
    public readonly delegate* unmanaged<IntPtr*, int> nvrtcDestroyProgram;
    public readonly delegate* unmanaged<int, byte*> nvrtcGetErrorString;

    private NvrtcApi(IntPtr lib, string name)
    {
        LibraryName = name;
        nvrtcVersion = (delegate* unmanaged<int*, int*, int>)NativeLibraryProbe.Export(lib, name, "nvrtcVersion");
        nvrtcCreateProgram = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)NativeLibraryProbe.Export(lib, name, "nvrtcCreateProgram");
        nvrtcCompileProgram = (delegate* unmanaged<IntPtr, int, byte**, int>)NativeLibraryProbe.Export(lib, name, "nvrtcCompileProgram");
        nvrtcGetProgramLogSize = (delegate* unmanaged<IntPtr, nuint*, int>)NativeLibraryProbe.Export(lib, name, "nvrtcGetProgramLogSize");
        nvrtcGetProgramLog = (delegate* unmanaged<IntPtr, byte*, int>)NativeLibraryProbe.Export(lib, name, "nvrtcGetProgramLog");
        nvrtcGetPTXSize = (delegate* unmanaged<IntPtr, nuint*, int>)NativeLibraryProbe.Export(lib, name, "nvrtcGetPTXSize");
        nvrtcGetPTX = (delegate* unmanaged<IntPtr, byte*, int>)NativeLibraryProbe.Export(lib, name, "nvrtcGetPTX");
        nvrtcDestroyProgram = (delegate* unmanaged<IntPtr*, int>)NativeLibraryProbe.Export(lib, name, "nvrtcDestroyProgram");
        nvrtcGetErrorString = (delegate* unmanaged<int, byte*>)NativeLibraryProbe.Export(lib, name, "nvrtcGetErrorString");

        int major, minor;
        Check(nvrtcVersion(&major, &minor), "nvrtcVersion");
        Major = major;
        Minor = minor;

        // nvrtcGetSupportedArchs exists from CUDA 11.2 on; without it, assume the range of that era.
        var getNum = (delegate* unmanaged<int*, int>)NativeLibraryProbe.OptionalExport(lib, "nvrtcGetNumSupportedArchs");
        var getArchs = (delegate* unmanaged<int*, int>)NativeLibraryProbe.OptionalExport(lib, "nvrtcGetSupportedArchs");
        if (getNum != null && getArchs != null)
        {
            int count;
            Check(getNum(&count), "nvrtcGetNumSupportedArchs");
            var archs = new int[count];
            fixed (int* p = archs) Check(getArchs(p), "nvrtcGetSupportedArchs");
            Array.Sort(archs);
            SupportedArchitectures = archs;
        }
        else SupportedArchitectures = [35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75, 80];
    }

    /// <summary>The loaded API, or null with the reason.</summary>
    public static NvrtcApi? TryGet(out string reason)
    {
        var (api, why) = s_loaded.Value;
        reason = why;
        return api;
    }

    private static (NvrtcApi?, string) Load()
    {
        if (!NativeLibraryProbe.TryLoad(LibraryNames, OverrideVariable, out var handle, out var name, out var reason))
            return (null, "NVRTC is not installed: " + reason);
        try
        {
            return (new NvrtcApi(handle, name), "");
        }
        catch (Exception e) when (e is EntryPointNotFoundException or NvrtcException)
        {
            return (null, $"{name} loaded but is unusable: {e.Message}");
        }
    }

    /// <summary>The name NVRTC gives a result code (for example NVRTC_ERROR_COMPILATION).</summary>
    public string ErrorName(int result)
    {
        var p = nvrtcGetErrorString(result);
        return p == null ? $"NVRTC_RESULT_{result}" : Marshal.PtrToStringUTF8((IntPtr)p) ?? $"NVRTC_RESULT_{result}";
    }

    /// <summary>The error chokepoint of the NVRTC calls: a non-zero result throws <see cref="NvrtcException"/>.</summary>
    public void Check(int result, string call, string log = "", string programName = "")
    {
        if (result != 0) throw new NvrtcException((NvrtcResult)result, ErrorName(result), call, log, programName);
    }
}
