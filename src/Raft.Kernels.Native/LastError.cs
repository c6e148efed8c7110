using System.Runtime.InteropServices;

namespace Raft.Kernels.Native;

/// <summary>
/// The thread-local last-error message behind <c>raft_last_error()</c>: a NUL-terminated UTF-8 string owned by the
/// library, valid until the next call of an export on the same thread. Every export clears it on entry.
/// </summary>
internal static unsafe class LastError
{
    private static readonly byte* Empty = (byte*)NativeMemory.AllocZeroed(1);

    [ThreadStatic] private static byte* t_message;

    /// <summary>The current thread's message ("" when the last call succeeded).</summary>
    public static byte* Pointer => t_message == null ? Empty : t_message;

    public static void Clear() => Set(null);

    public static void Set(string? message)
    {
        if (t_message != null) NativeMemory.Free(t_message);
        t_message = null;
        if (string.IsNullOrEmpty(message)) return;
        int n = System.Text.Encoding.UTF8.GetByteCount(message);
        byte* p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        System.Text.Encoding.UTF8.GetBytes(message, new Span<byte>(p, n));
        p[n] = 0;
        t_message = p;
    }

    /// <summary>Runs <paramref name="body"/>, mapping its exception to a status code and message.</summary>
    public static int Guarded(Action body)
    {
        Clear();
        try
        {
            body();
            return (int)Status.Ok;
        }
        catch (Exception e)
        {
            var (status, message) = e switch
            {
                NonFiniteLogitException => (Status.NonFiniteLogit, e.Message),
                ArgumentException => (Status.InvalidArgument, e.Message),
                OutOfMemoryException => (Status.OutOfMemory, e.Message),
                _ => (Status.Internal, e.ToString()),
            };
            Set(message);
            return (int)status;
        }
    }
}
