using System.Runtime.InteropServices;
using System.Text;

namespace Raft.Distributed;

/// <summary>
/// The Open MPI entry points and handles used here, resolved once from libmpi.so.40 (RAFT_MPI_LIBRARY may name an
/// explicit path). Open MPI's handles are the addresses of exported objects (MPI_COMM_WORLD is &amp;ompi_mpi_comm_world,
/// MPI_FLOAT is &amp;ompi_mpi_float, MPI_SUM is &amp;ompi_mpi_op_sum), and MPI_IN_PLACE is (void*)1. Every return code goes
/// through <see cref="Check"/>, the one place where an MPI error becomes an <see cref="MpiException"/>.
/// </summary>
internal sealed unsafe class MpiApi
{
    public const string LibraryName = "libmpi.so.40";
    public const string OverrideVariable = "RAFT_MPI_LIBRARY";
    public const string InstallHint = "install Open MPI (Debian/Ubuntu: apt-get install -y openmpi-bin libopenmpi-dev), or set RAFT_MPI_LIBRARY to the library's path";
    public static readonly IntPtr InPlace = 1;

    public const int ThreadSingle = 0, ThreadFunneled = 1, ThreadSerialized = 2, ThreadMultiple = 3;
    private const int MaxStringLength = 256; // MPI_MAX_PROCESSOR_NAME and MPI_MAX_ERROR_STRING in Open MPI

    private static readonly Lazy<(MpiApi? Api, string Reason)> s_loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    public readonly string LoadedFrom;

    public readonly IntPtr CommWorld, Float, Double, Byte, OpSum, OpMax, OpMin, ErrorsReturn;

    public readonly delegate* unmanaged<int*, byte***, int, int*, int> MPI_Init_thread;
    public readonly delegate* unmanaged<int*, int> MPI_Initialized;
    public readonly delegate* unmanaged<int*, int> MPI_Finalized;
    public readonly delegate* unmanaged<int> MPI_Finalize;
    public readonly delegate* unmanaged<IntPtr, int*, int> MPI_Comm_rank;
    public readonly delegate* unmanaged<IntPtr, int*, int> MPI_Comm_size;
    public readonly delegate* unmanaged<IntPtr, IntPtr, int> MPI_Comm_set_errhandler;
    public readonly delegate* unmanaged<IntPtr, int> MPI_Barrier;
    public readonly delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int> MPI_Bcast;
    public readonly delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int> MPI_Allreduce;
    public readonly delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int> MPI_Reduce_scatter_block;
    public readonly delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, int> MPI_Allgather;
    public readonly delegate* unmanaged<IntPtr, int, int> MPI_Abort;
    public readonly delegate* unmanaged<byte*, int*, int> MPI_Get_processor_name;
    public readonly delegate* unmanaged<int, byte*, int*, int> MPI_Error_string;

    private MpiApi(IntPtr lib, string loadedFrom)
    {
        LoadedFrom = loadedFrom;
        IntPtr E(string symbol) => NativeLibrary.TryGetExport(lib, symbol, out var address)
            ? address
            : throw new EntryPointNotFoundException($"{loadedFrom} has no export named {symbol}: is it Open MPI 4.x (libmpi.so.40)?");

        CommWorld = E("ompi_mpi_comm_world");
        Float = E("ompi_mpi_float");
        Double = E("ompi_mpi_double");
        Byte = E("ompi_mpi_byte");
        OpSum = E("ompi_mpi_op_sum");
        OpMax = E("ompi_mpi_op_max");
        OpMin = E("ompi_mpi_op_min");
        ErrorsReturn = E("ompi_mpi_errors_return");

        MPI_Init_thread = (delegate* unmanaged<int*, byte***, int, int*, int>)E("MPI_Init_thread");
        MPI_Initialized = (delegate* unmanaged<int*, int>)E("MPI_Initialized");
        MPI_Finalized = (delegate* unmanaged<int*, int>)E("MPI_Finalized");
        MPI_Finalize = (delegate* unmanaged<int>)E("MPI_Finalize");
        MPI_Comm_rank = (delegate* unmanaged<IntPtr, int*, int>)E("MPI_Comm_rank");
        MPI_Comm_size = (delegate* unmanaged<IntPtr, int*, int>)E("MPI_Comm_size");
        MPI_Comm_set_errhandler = (delegate* unmanaged<IntPtr, IntPtr, int>)E("MPI_Comm_set_errhandler");
        MPI_Barrier = (delegate* unmanaged<IntPtr, int>)E("MPI_Barrier");
        MPI_Bcast = (delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int>)E("MPI_Bcast");
        MPI_Allreduce = (delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int>)E("MPI_Allreduce");
        MPI_Reduce_scatter_block = (delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int>)E("MPI_Reduce_scatter_block");
        MPI_Allgather = (delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, int>)E("MPI_Allgather");
        MPI_Abort = (delegate* unmanaged<IntPtr, int, int>)E("MPI_Abort");
        MPI_Get_processor_name = (delegate* unmanaged<byte*, int*, int>)E("MPI_Get_processor_name");
        MPI_Error_string = (delegate* unmanaged<int, byte*, int*, int>)E("MPI_Error_string");
    }

    /// <summary>Whether libmpi.so.40 loads and has every symbol used here.</summary>
    public static bool IsAvailable => s_loaded.Value.Api is not null;

    /// <summary>Why it does not (empty when it does).</summary>
    public static string UnavailableReason => s_loaded.Value.Reason;

    /// <summary>The loaded API; throws <see cref="CollectiveUnavailableException"/> naming the library and the packages when absent.</summary>
    public static MpiApi Instance => s_loaded.Value.Api ?? throw new CollectiveUnavailableException("mpi", s_loaded.Value.Reason);

    private static (MpiApi?, string) Load()
    {
        var candidates = new List<string>();
        var explicitPath = Environment.GetEnvironmentVariable(OverrideVariable);
        if (!string.IsNullOrEmpty(explicitPath)) candidates.Add(explicitPath);
        candidates.Add(LibraryName);
        foreach (var dir in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64/openmpi/lib", "/usr/local/lib" })
            candidates.Add(Path.Combine(dir, LibraryName));
        foreach (var candidate in candidates)
        {
            if (!NativeLibrary.TryLoad(candidate, out var handle)) continue;
            try
            {
                return (new MpiApi(handle, candidate), "");
            }
            catch (EntryPointNotFoundException e)
            {
                return (null, e.Message);
            }
        }
        return (null, $"The MPI backend needs {LibraryName} (Open MPI 4.x), which could not be loaded (tried {string.Join(", ", candidates.Distinct())}): {InstallHint}.");
    }

    /// <summary>The error chokepoint: a non-zero MPI return code becomes an <see cref="MpiException"/> naming the call.</summary>
    public void Check(int code, string call)
    {
        if (code != 0) throw new MpiException(call, code, ErrorString(code));
    }

    public string ErrorString(int code)
    {
        byte* buffer = stackalloc byte[MaxStringLength + 1];
        int length = 0;
        if (MPI_Error_string(code, buffer, &length) != 0 || length <= 0) return "";
        return Encoding.UTF8.GetString(buffer, Math.Min(length, MaxStringLength));
    }

    public string ProcessorName()
    {
        byte* buffer = stackalloc byte[MaxStringLength + 1];
        int length = 0;
        Check(MPI_Get_processor_name(buffer, &length), "MPI_Get_processor_name");
        return Encoding.UTF8.GetString(buffer, Math.Clamp(length, 0, MaxStringLength));
    }

    public IntPtr Op(ReduceOp op) => op switch
    {
        ReduceOp.Sum => OpSum,
        ReduceOp.Max => OpMax,
        ReduceOp.Min => OpMin,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown reduction."),
    };
}
