namespace Raft.Kernels.Native;

/// <summary>
/// The status codes every export of <c>libraft_kernels.so</c> returns (<c>raft_status</c> in
/// <c>include/raft_kernels.h</c>); anything but <see cref="Ok"/> leaves a message for <c>raft_last_error()</c>.
/// </summary>
public enum Status
{
    /// <summary>Success.</summary>
    Ok = 0,
    /// <summary>An argument was rejected (shape, size, null pointer, out-of-range value); nothing was written.</summary>
    InvalidArgument = 1,
    /// <summary>A NaN or infinite logit was met while computing; the message names the tensor and row.</summary>
    NonFiniteLogit = 2,
    /// <summary>Memory could not be allocated.</summary>
    OutOfMemory = 3,
    /// <summary>Any other failure (a bug: the message carries the exception).</summary>
    Internal = 4,
}
