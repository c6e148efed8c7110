using System.Runtime.InteropServices;

namespace Raft.Cuda;

/// <summary>
/// The CUDA driver API entry points used here, resolved once from libcuda.so.1 (or libcuda.so; nvcuda.dll on
/// Windows; the environment variable RAFT_CUDA_LIBRARY may name an explicit path). Every call's result goes
/// through <see cref="Check"/>, the one place where a CUresult becomes a <see cref="CudaException"/>.
/// </summary>
internal sealed unsafe class CudaDriverApi
{
    public static readonly IReadOnlyList<string> LibraryNames = OperatingSystem.IsWindows()
        ? ["nvcuda.dll"]
        : ["libcuda.so.1", "libcuda.so"];

    public const string OverrideVariable = "RAFT_CUDA_LIBRARY";

    // CUdevice_attribute values
    public const int AttributeMaxThreadsPerBlock = 1;
    public const int AttributeMaxSharedMemoryPerBlock = 8;
    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;
    public const int AttributeMaxSharedMemoryPerBlockOptin = 97;

    // CUfunction_attribute values
    public const int FunctionAttributeNumRegisters = 4;
    public const int FunctionAttributeMaxDynamicSharedSizeBytes = 8;

    // CUjit_option values
    public const int JitErrorLogBuffer = 5;
    public const int JitErrorLogBufferSizeBytes = 6;

    private static readonly Lazy<(CudaDriverApi? Api, string Reason)> s_loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    public readonly string LibraryName;
    public readonly int DriverVersion;

    public readonly delegate* unmanaged<uint, int> cuInit;
    public readonly delegate* unmanaged<int*, int> cuDriverGetVersion;
    public readonly delegate* unmanaged<int*, int> cuDeviceGetCount;
    public readonly delegate* unmanaged<int*, int, int> cuDeviceGet;
    public readonly delegate* unmanaged<int*, int, int, int> cuDeviceGetAttribute;
    public readonly delegate* unmanaged<byte*, int, int, int> cuDeviceGetName;
    public readonly delegate* unmanaged<nuint*, int, int> cuDeviceTotalMem;
    public readonly delegate* unmanaged<IntPtr*, int, int> cuDevicePrimaryCtxRetain;
    public readonly delegate* unmanaged<int, int> cuDevicePrimaryCtxRelease;
    public readonly delegate* unmanaged<IntPtr, int> cuCtxSetCurrent;
    public readonly delegate* unmanaged<IntPtr*, int> cuCtxGetCurrent;
    public readonly delegate* unmanaged<int*, int> cuCtxGetDevice;
    public readonly delegate* unmanaged<int> cuCtxSynchronize;
    public readonly delegate* unmanaged<IntPtr*, void*, int> cuModuleLoadData;
    public readonly delegate* unmanaged<IntPtr*, void*, uint, int*, void**, int> cuModuleLoadDataEx;
    public readonly delegate* unmanaged<IntPtr, int> cuModuleUnload;
    public readonly delegate* unmanaged<IntPtr*, IntPtr, byte*, int> cuModuleGetFunction;
    public readonly delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> cuLaunchKernel;
    public readonly delegate* unmanaged<IntPtr, int, int, int> cuFuncSetAttribute;
    public readonly delegate* unmanaged<int*, int, IntPtr, int> cuFuncGetAttribute;
    public readonly delegate* unmanaged<int*, IntPtr, int, nuint, int> cuOccupancyMaxActiveBlocksPerMultiprocessor;
    /// <summary>CUDA 12+; null on older drivers.</summary>
    public readonly delegate* unmanaged<int*, IntPtr, LaunchConfig*, int> cuOccupancyMaxActiveClusters;

    /// <summary>CUlaunchConfig (CUDA 12): the launch a cluster occupancy query is about.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LaunchConfig
    {
        public uint GridDimX, GridDimY, GridDimZ;
        public uint BlockDimX, BlockDimY, BlockDimZ;
        public uint SharedMemBytes;
        public IntPtr Stream;
        public IntPtr Attributes;
        public uint NumAttributes;
    }
    public readonly delegate* unmanaged<ulong*, nuint, int> cuMemAlloc;
    public readonly delegate* unmanaged<ulong, int> cuMemFree;
    public readonly delegate* unmanaged<ulong, void*, nuint, int> cuMemcpyHtoD;
    public readonly delegate* unmanaged<void*, ulong, nuint, int> cuMemcpyDtoH;
    public readonly delegate* unmanaged<ulong, ulong, nuint, int> cuMemcpyDtoD;
    public readonly delegate* unmanaged<ulong, byte, nuint, int> cuMemsetD8;
    public readonly delegate* unmanaged<IntPtr, int> cuStreamSynchronize;
    public readonly delegate* unmanaged<IntPtr*, uint, int> cuEventCreate;
    public readonly delegate* unmanaged<IntPtr, int> cuEventDestroy;
    public readonly delegate* unmanaged<IntPtr, IntPtr, int> cuEventRecord;
    public readonly delegate* unmanaged<IntPtr, int> cuEventSynchronize;
    public readonly delegate* unmanaged<float*, IntPtr, IntPtr, int> cuEventElapsedTime;
    public readonly delegate* unmanaged<int, byte**, int> cuGetErrorName;
    public readonly delegate* unmanaged<int, byte**, int> cuGetErrorString;

    private CudaDriverApi(IntPtr lib, string name)
    {
        LibraryName = name;
        IntPtr E(string symbol) => NativeLibraryProbe.Export(lib, name, symbol);
        IntPtr EitherOf(string preferred, string fallback) =>
            NativeLibraryProbe.OptionalExport(lib, preferred) is var p && p != IntPtr.Zero ? p : E(fallback);

        cuInit = (delegate* unmanaged<uint, int>)E("cuInit");
        cuDriverGetVersion = (delegate* unmanaged<int*, int>)E("cuDriverGetVersion");
        cuDeviceGetCount = (delegate* unmanaged<int*, int>)E("cuDeviceGetCount");
        cuDeviceGet = (delegate* unmanaged<int*, int, int>)E("cuDeviceGet");
        cuDeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)E("cuDeviceGetAttribute");
        cuDeviceGetName = (delegate* unmanaged<byte*, int, int, int>)E("cuDeviceGetName");
        cuDeviceTotalMem = (delegate* unmanaged<nuint*, int, int>)E("cuDeviceTotalMem_v2");
        cuDevicePrimaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)E("cuDevicePrimaryCtxRetain");
        cuDevicePrimaryCtxRelease = (delegate* unmanaged<int, int>)EitherOf("cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease");
        cuCtxSetCurrent = (delegate* unmanaged<IntPtr, int>)E("cuCtxSetCurrent");
        cuCtxGetCurrent = (delegate* unmanaged<IntPtr*, int>)E("cuCtxGetCurrent");
        cuCtxGetDevice = (delegate* unmanaged<int*, int>)E("cuCtxGetDevice");
        cuCtxSynchronize = (delegate* unmanaged<int>)E("cuCtxSynchronize");
        cuModuleLoadData = (delegate* unmanaged<IntPtr*, void*, int>)E("cuModuleLoadData");
        cuModuleLoadDataEx = (delegate* unmanaged<IntPtr*, void*, uint, int*, void**, int>)E("cuModuleLoadDataEx");
        cuModuleUnload = (delegate* unmanaged<IntPtr, int>)E("cuModuleUnload");
        cuModuleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)E("cuModuleGetFunction");
        cuLaunchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)E("cuLaunchKernel");
        cuFuncSetAttribute = (delegate* unmanaged<IntPtr, int, int, int>)E("cuFuncSetAttribute");
        cuFuncGetAttribute = (delegate* unmanaged<int*, int, IntPtr, int>)E("cuFuncGetAttribute");
        cuOccupancyMaxActiveBlocksPerMultiprocessor = (delegate* unmanaged<int*, IntPtr, int, nuint, int>)E("cuOccupancyMaxActiveBlocksPerMultiprocessor");
        cuOccupancyMaxActiveClusters = (delegate* unmanaged<int*, IntPtr, LaunchConfig*, int>)NativeLibraryProbe.OptionalExport(lib, "cuOccupancyMaxActiveClusters");
        cuMemAlloc = (delegate* unmanaged<ulong*, nuint, int>)E("cuMemAlloc_v2");
        cuMemFree = (delegate* unmanaged<ulong, int>)E("cuMemFree_v2");
        cuMemcpyHtoD = (delegate* unmanaged<ulong, void*, nuint, int>)E("cuMemcpyHtoD_v2");
        cuMemcpyDtoH = (delegate* unmanaged<void*, ulong, nuint, int>)E("cuMemcpyDtoH_v2");
        cuMemcpyDtoD = (delegate* unmanaged<ulong, ulong, nuint, int>)E("cuMemcpyDtoD_v2");
        cuMemsetD8 = (delegate* unmanaged<ulong, byte, nuint, int>)E("cuMemsetD8_v2");
        cuStreamSynchronize = (delegate* unmanaged<IntPtr, int>)E("cuStreamSynchronize");
        cuEventCreate = (delegate* unmanaged<IntPtr*, uint, int>)E("cuEventCreate");
        cuEventDestroy = (delegate* unmanaged<IntPtr, int>)EitherOf("cuEventDestroy_v2", "cuEventDestroy");
        cuEventRecord = (delegate* unmanaged<IntPtr, IntPtr, int>)E("cuEventRecord");
        cuEventSynchronize = (delegate* unmanaged<IntPtr, int>)E("cuEventSynchronize");
        // CUDA 12.8 added cuEventElapsedTime_v2 (same signature; the unversioned one is deprecated in CUDA 13).
        cuEventElapsedTime = (delegate* unmanaged<float*, IntPtr, IntPtr, int>)EitherOf("cuEventElapsedTime_v2", "cuEventElapsedTime");
        cuGetErrorName = (delegate* unmanaged<int, byte**, int>)E("cuGetErrorName");
        cuGetErrorString = (delegate* unmanaged<int, byte**, int>)E("cuGetErrorString");

        int version;
        Check(cuDriverGetVersion(&version), "cuDriverGetVersion");
        DriverVersion = version;
    }

    /// <summary>The loaded API, or null with the reason (library missing or lacking an export).</summary>
    public static CudaDriverApi? TryGet(out string reason)
    {
        var (api, why) = s_loaded.Value;
        reason = why;
        return api;
    }

    private static (CudaDriverApi?, string) Load()
    {
        if (!NativeLibraryProbe.TryLoad(LibraryNames, OverrideVariable, out var handle, out var name, out var reason))
            return (null, "the CUDA driver is not installed: " + reason);
        try
        {
            return (new CudaDriverApi(handle, name), "");
        }
        catch (Exception e) when (e is EntryPointNotFoundException or CudaException)
        {
            return (null, $"{name} loaded but is unusable: {e.Message}");
        }
    }

    /// <summary>
    /// The error chokepoint: every driver call's CUresult passes through here, and a non-zero one throws a
    /// <see cref="CudaException"/> with the code, the driver's name and description for it, and the call's name.
    /// </summary>
    public void Check(int result, string call, string log = "")
    {
        if (result != 0) throw CreateException(result, call, log);
    }

    public CudaException CreateException(int result, string call, string log = "")
    {
        byte* name = null, text = null;
        string resultName = cuGetErrorName(result, &name) == 0 && name != null
            ? Marshal.PtrToStringUTF8((IntPtr)name) ?? ""
            : "";
        if (resultName.Length == 0) resultName = CudaException.FallbackName(result);
        string description = cuGetErrorString(result, &text) == 0 && text != null
            ? Marshal.PtrToStringUTF8((IntPtr)text) ?? ""
            : "";
        return new CudaException((CudaResult)result, resultName, call, description, log);
    }
}
