namespace Raft.Cuda;

/// <summary>An NVRTC result code (nvrtcResult).</summary>
public enum NvrtcResult
{
    /// <summary>NVRTC_SUCCESS.</summary>
    Success = 0,
    /// <summary>NVRTC_ERROR_OUT_OF_MEMORY.</summary>
    OutOfMemory = 1,
    /// <summary>NVRTC_ERROR_PROGRAM_CREATION_FAILURE.</summary>
    ProgramCreationFailure = 2,
    /// <summary>NVRTC_ERROR_INVALID_INPUT.</summary>
    InvalidInput = 3,
    /// <summary>NVRTC_ERROR_INVALID_PROGRAM.</summary>
    InvalidProgram = 4,
    /// <summary>NVRTC_ERROR_INVALID_OPTION (for example an architecture this NVRTC does not know).</summary>
    InvalidOption = 5,
    /// <summary>NVRTC_ERROR_COMPILATION: the source did not compile; the log says why.</summary>
    Compilation = 6,
    /// <summary>NVRTC_ERROR_BUILTIN_OPERATION_FAILURE.</summary>
    BuiltinOperationFailure = 7,
    /// <summary>NVRTC_ERROR_INTERNAL_ERROR.</summary>
    InternalError = 11,
}

/// <summary>
/// An NVRTC call failed: carries the result code, NVRTC's name for it, the call that failed and, for a compile
/// error, NVRTC's full log (which names the file and line of each error, for example "kernel.cu(3): error: …").
/// </summary>
public sealed class NvrtcException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="result">The nvrtcResult returned.</param>
    /// <param name="resultName">NVRTC's name for it (nvrtcGetErrorString).</param>
    /// <param name="call">The NVRTC function that returned it.</param>
    /// <param name="log">The program log (empty when there is none).</param>
    /// <param name="programName">The name the program was compiled under (empty when not known).</param>
    public NvrtcException(NvrtcResult result, string resultName, string call, string log = "", string programName = "")
        : base(Format(result, resultName, call, log, programName))
    {
        Result = result;
        ResultName = resultName;
        Call = call;
        Log = log;
        ProgramName = programName;
    }

    /// <summary>The result code.</summary>
    public NvrtcResult Result { get; }

    /// <summary>NVRTC's name for the result code (for example NVRTC_ERROR_COMPILATION).</summary>
    public string ResultName { get; }

    /// <summary>The NVRTC function that failed (for example nvrtcCompileProgram).</summary>
    public string Call { get; }

    /// <summary>The full compile log, or empty.</summary>
    public string Log { get; }

    /// <summary>The program's name, or empty.</summary>
    public string ProgramName { get; }

    private static string Format(NvrtcResult result, string resultName, string call, string log, string programName)
    {
        var what = programName.Length > 0 ? $" compiling {programName}" : "";
        var message = $"{call} failed{what}: {resultName} ({(int)result}).";
        return log.Trim().Length > 0 ? message + Environment.NewLine + log.TrimEnd() : message;
    }
}
