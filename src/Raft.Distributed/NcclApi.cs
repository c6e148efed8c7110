using System.Runtime.InteropServices;

namespace Raft.Distributed;

/// <summary>ncclUniqueId: 128 opaque bytes made by rank 0 and shared with the others (over MPI here).</summary>
[StructLayout(LayoutKind.Sequential, Size = Size)]
internal unsafe struct NcclUniqueId
{
    public const int Size = 128;
    public fixed byte Bytes[Size];
}

/// <summary>
/// The NCCL entry points used here, resolved once from libnccl.so.2 (RAFT_NCCL_LIBRARY may name an explicit path).
/// Every ncclResult_t goes through <see cref="Check"/>, the one place where it becomes an <see cref="NcclException"/>.
/// </summary>
internal sealed unsafe class NcclApi
{
    public const string LibraryName = "libnccl.so.2";
    public const string OverrideVariable = "RAFT_NCCL_LIBRARY";

    // ncclDataType_t and ncclRedOp_t values (nccl.h)
    public const int Uint8 = 1, Float32 = 7, Float64 = 8;
    public const int OpSum = 0, OpMax = 2, OpMin = 3, OpAvg = 4;

    private static readonly Lazy<(NcclApi? Api, string Reason)> s_loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    public readonly string LoadedFrom;
    public readonly delegate* unmanaged<NcclUniqueId*, int> ncclGetUniqueId;
    public readonly delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int> ncclCommInitRank;
    public readonly delegate* unmanaged<IntPtr, int> ncclCommDestroy;
    public readonly delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int> ncclAllReduce;
    public readonly delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int> ncclBroadcast;
    public readonly delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int> ncclReduceScatter;
    public readonly delegate* unmanaged<void*, void*, nuint, int, IntPtr, IntPtr, int> ncclAllGather;
    public readonly delegate* unmanaged<int, byte*> ncclGetErrorString;

    private NcclApi(IntPtr lib, string loadedFrom)
    {
        LoadedFrom = loadedFrom;
        IntPtr E(string symbol) => NativeLibrary.TryGetExport(lib, symbol, out var address)
            ? address
            : throw new EntryPointNotFoundException($"{loadedFrom} has no export named {symbol} (NCCL ≥ 2.10 is needed).");
        ncclGetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)E("ncclGetUniqueId");
        ncclCommInitRank = (delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)E("ncclCommInitRank");
        ncclCommDestroy = (delegate* unmanaged<IntPtr, int>)E("ncclCommDestroy");
        ncclAllReduce = (delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int>)E("ncclAllReduce");
        ncclBroadcast = (delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int>)E("ncclBroadcast");
        ncclReduceScatter = (delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int>)E("ncclReduceScatter");
        ncclAllGather = (delegate* unmanaged<void*, void*, nuint, int, IntPtr, IntPtr, int>)E("ncclAllGather");
        ncclGetErrorString = (delegate* unmanaged<int, byte*>)E("ncclGetErrorString");
    }

    public static bool IsAvailable => s_loaded.Value.Api is not null;

    public static string UnavailableReason => s_loaded.Value.Reason;

    public static NcclApi Instance => s_loaded.Value.Api ?? throw new CollectiveUnavailableException("nccl", s_loaded.Value.Reason);

    private static (NcclApi?, string) Load()
    {
        var candidates = new List<string>();
        var explicitPath = Environment.GetEnvironmentVariable(OverrideVariable);
        if (!string.IsNullOrEmpty(explicitPath)) candidates.Add(explicitPath);
        candidates.Add(LibraryName);
        foreach (var dir in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/local/cuda/lib64", "/usr/local/nccl/lib" })
            candidates.Add(Path.Combine(dir, LibraryName));
        foreach (var candidate in candidates)
        {
            if (!NativeLibrary.TryLoad(candidate, out var handle)) continue;
            try
            {
                return (new NcclApi(handle, candidate), "");
            }
            catch (EntryPointNotFoundException e)
            {
                return (null, e.Message);
            }
        }
        return (null, $"The NCCL backend needs {LibraryName}, which could not be loaded (tried {string.Join(", ", candidates.Distinct())}): " +
                      "install NVIDIA's libnccl2 package, or point RAFT_NCCL_LIBRARY at the libnccl.so.2 of a PyTorch install (nvidia/nccl/lib).");
    }

    public void Check(int result, string call)
    {
        if (result != 0) throw new NcclException(call, result, ErrorString(result));
    }

    public string ErrorString(int result)
    {
        var text = ncclGetErrorString(result);
        return text is null ? "" : Marshal.PtrToStringUTF8((IntPtr)text) ?? "";
    }
}

/// <summary>Just enough of the CUDA driver API to tell whether a GPU is present (cuInit, cuDeviceGetCount).</summary>
internal static unsafe class CudaPresence
{
    private static readonly Lazy<(int Count, string Reason)> s_probe = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    public static int DeviceCount => s_probe.Value.Count;

    public static string Reason => s_probe.Value.Reason;

    private static (int, string) Probe()
    {
        if (!NativeLibrary.TryLoad("libcuda.so.1", out var lib))
            return (0, "no CUDA driver (libcuda.so.1 does not load): NCCL needs an NVIDIA GPU and its driver");
        if (!NativeLibrary.TryGetExport(lib, "cuInit", out var init) || !NativeLibrary.TryGetExport(lib, "cuDeviceGetCount", out var count))
            return (0, "libcuda.so.1 lacks cuInit/cuDeviceGetCount");
        int rc = ((delegate* unmanaged<uint, int>)init)(0);
        if (rc != 0) return (0, $"cuInit failed with CUresult {rc} (no usable GPU)");
        int n = 0;
        rc = ((delegate* unmanaged<int*, int>)count)(&n);
        if (rc != 0) return (0, $"cuDeviceGetCount failed with CUresult {rc}");
        return n > 0 ? (n, "") : (0, "the CUDA driver reports no GPU");
    }
}
