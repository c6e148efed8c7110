namespace Raft.Distributed;

/// <summary>Base of the errors raised by a collective backend.</summary>
public class CollectiveException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CollectiveException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public CollectiveException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// A backend was asked for but cannot run here: its native library does not load, no GPU is present, or the
/// process was not started by a launcher the backend needs. The message names what is missing and how to get it.
/// </summary>
public sealed class CollectiveUnavailableException : CollectiveException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="backend">The backend asked for ("mpi", "nccl").</param>
    /// <param name="message">What is missing and how to get it.</param>
    public CollectiveUnavailableException(string backend, string message) : base(message) => Backend = backend;

    /// <summary>The backend that could not be started.</summary>
    public string Backend { get; }
}

/// <summary>An MPI call returned an error code: carries the call's name, the code and MPI's error string for it.</summary>
public sealed class MpiException : CollectiveException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="call">The MPI function that failed, for example MPI_Allreduce.</param>
    /// <param name="errorCode">The code it returned.</param>
    /// <param name="errorString">MPI_Error_string's text for the code (empty when unavailable).</param>
    public MpiException(string call, int errorCode, string errorString)
        : base($"{call} failed with MPI error {errorCode}" + (errorString.Length > 0 ? $": {errorString}." : "."))
    {
        Call = call;
        ErrorCode = errorCode;
        ErrorString = errorString;
    }

    /// <summary>The MPI function that failed.</summary>
    public string Call { get; }

    /// <summary>The MPI error code it returned (never 0).</summary>
    public int ErrorCode { get; }

    /// <summary>MPI's description of the code, or empty.</summary>
    public string ErrorString { get; }
}

/// <summary>An NCCL call returned an error: carries the call's name, the ncclResult_t and ncclGetErrorString's text.</summary>
public sealed class NcclException : CollectiveException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="call">The NCCL function that failed, for example ncclAllReduce.</param>
    /// <param name="result">The ncclResult_t it returned.</param>
    /// <param name="errorString">ncclGetErrorString's text (empty when unavailable).</param>
    public NcclException(string call, int result, string errorString)
        : base($"{call} failed with ncclResult {result}" + (errorString.Length > 0 ? $": {errorString}." : "."))
    {
        Call = call;
        Result = result;
        ErrorString = errorString;
    }

    /// <summary>The NCCL function that failed.</summary>
    public string Call { get; }

    /// <summary>The ncclResult_t code (never 0).</summary>
    public int Result { get; }

    /// <summary>NCCL's description of the code, or empty.</summary>
    public string ErrorString { get; }
}
