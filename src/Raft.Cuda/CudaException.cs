namespace Raft.Cuda;

/// <summary>Common CUDA driver result codes (CUresult). Other values may occur; see the driver's cuda.h.</summary>
public enum CudaResult
{
    /// <summary>CUDA_SUCCESS.</summary>
    Success = 0,
    /// <summary>CUDA_ERROR_INVALID_VALUE.</summary>
    InvalidValue = 1,
    /// <summary>CUDA_ERROR_OUT_OF_MEMORY.</summary>
    OutOfMemory = 2,
    /// <summary>CUDA_ERROR_NOT_INITIALIZED.</summary>
    NotInitialized = 3,
    /// <summary>CUDA_ERROR_DEINITIALIZED.</summary>
    Deinitialized = 4,
    /// <summary>CUDA_ERROR_NO_DEVICE.</summary>
    NoDevice = 100,
    /// <summary>CUDA_ERROR_INVALID_DEVICE.</summary>
    InvalidDevice = 101,
    /// <summary>CUDA_ERROR_INVALID_IMAGE.</summary>
    InvalidImage = 200,
    /// <summary>CUDA_ERROR_INVALID_CONTEXT.</summary>
    InvalidContext = 201,
    /// <summary>CUDA_ERROR_NO_BINARY_FOR_GPU.</summary>
    NoBinaryForGpu = 209,
    /// <summary>CUDA_ERROR_INVALID_PTX.</summary>
    InvalidPtx = 218,
    /// <summary>CUDA_ERROR_UNSUPPORTED_PTX_VERSION: the PTX is newer than the driver (NVRTC newer than libcuda).</summary>
    UnsupportedPtxVersion = 222,
    /// <summary>CUDA_ERROR_INVALID_HANDLE.</summary>
    InvalidHandle = 400,
    /// <summary>CUDA_ERROR_NOT_FOUND (for example a kernel name missing from a module).</summary>
    NotFound = 500,
    /// <summary>CUDA_ERROR_NOT_READY.</summary>
    NotReady = 600,
    /// <summary>CUDA_ERROR_ILLEGAL_ADDRESS.</summary>
    IllegalAddress = 700,
    /// <summary>CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES.</summary>
    LaunchOutOfResources = 701,
    /// <summary>CUDA_ERROR_LAUNCH_TIMEOUT.</summary>
    LaunchTimeout = 702,
    /// <summary>CUDA_ERROR_LAUNCH_FAILED.</summary>
    LaunchFailed = 719,
    /// <summary>CUDA_ERROR_UNKNOWN.</summary>
    Unknown = 999,
}

/// <summary>
/// A CUDA driver API call failed: carries the CUresult code, the driver's name and description for it, the
/// name of the call that returned it and, for a module load, the JIT compiler's error log.
/// </summary>
public sealed class CudaException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="result">The CUresult returned.</param>
    /// <param name="resultName">The driver's name for it (cuGetErrorName), for example CUDA_ERROR_NOT_FOUND.</param>
    /// <param name="call">The driver function that returned it, for example cuModuleGetFunction.</param>
    /// <param name="description">The driver's description (cuGetErrorString), or empty.</param>
    /// <param name="log">The JIT error log of a failed module load, or empty.</param>
    public CudaException(CudaResult result, string resultName, string call, string description = "", string log = "")
        : base(Format(result, resultName, call, description, log))
    {
        Result = result;
        ResultName = resultName;
        Call = call;
        Description = description;
        Log = log;
    }

    /// <summary>The CUresult code.</summary>
    public CudaResult Result { get; }

    /// <summary>The driver's name for the code (for example CUDA_ERROR_NOT_FOUND).</summary>
    public string ResultName { get; }

    /// <summary>The driver function that failed (for example cuModuleGetFunction).</summary>
    public string Call { get; }

    /// <summary>The driver's description of the code, or empty.</summary>
    public string Description { get; }

    /// <summary>The JIT error log of a failed module load, or empty.</summary>
    public string Log { get; }

    internal static string FallbackName(int result) =>
        Enum.IsDefined((CudaResult)result) ? "CUDA_ERROR_" + ToUpperSnake(((CudaResult)result).ToString()) : $"CUDA_ERROR_{result}";

    private static string ToUpperSnake(string pascal)
    {
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < pascal.Length; i++)
        {
            if (i > 0 && char.IsUpper(pascal[i])) sb.Append('_');
            sb.Append(char.ToUpperInvariant(pascal[i]));
        }
        return sb.ToString();
    }

    private static string Format(CudaResult result, string resultName, string call, string description, string log)
    {
        var message = $"{call} failed: {resultName} ({(int)result})" + (description.Length > 0 ? $": {description}." : ".");
        return log.Trim().Length > 0 ? message + Environment.NewLine + log.TrimEnd() : message;
    }
}
