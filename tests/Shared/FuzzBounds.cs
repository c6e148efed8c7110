using System.Runtime.ExceptionServices;

namespace Raft.Tests.Shared;

/// <summary>
/// The resource bounds of the parser fuzz tests (#19): one parse of a mutant runs on a thread of its own, which must end
/// within <see cref="Timeout"/> (no hang) and allocate at most <c>factor × input bytes + slack</c> managed bytes
/// (<see cref="GC.GetAllocatedBytesForCurrentThread"/>, so a length or count field that the reader believes before it
/// checks it against the bytes left fails the test, also when the parse then throws). Whatever the parse throws is rethrown on the calling thread, so a
/// CsCheck property sees the parser's own exception (and prints the seed of the smallest failing case).
/// </summary>
internal static class FuzzBounds
{
    /// <summary>How long one parse may take (a tiny file parses in milliseconds; this only catches hangs).</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    /// <summary>The fixed allowance on top of the size multiple: stream buffers (64 KiB each), JSON readers, exception messages.</summary>
    public const long DefaultSlack = 512 << 10;

    /// <summary>
    /// Runs <paramref name="parse"/> bounded in time and allocation; <paramref name="what"/> (the mutant, briefly) is named
    /// in the failure.
    /// </summary>
    public static void Run(string what, long inputBytes, Action parse, double factor = 4, long slack = DefaultSlack)
    {
        Exception? error = null;
        long allocated = 0;
        var thread = new Thread(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { parse(); }
            catch (Exception e) { error = e; }
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        }) { IsBackground = true, Name = "fuzz parse" };
        thread.Start();
        if (!thread.Join(Timeout))
            throw new TimeoutException($"{what}: the parse of {inputBytes} bytes is still running after {Timeout.TotalSeconds} s (a hang).");
        // the bound holds for a refusal too: a reader that allocates a believed count and then fails is caught here
        long limit = (long)(factor * inputBytes) + slack;
        if (allocated > limit)
            throw new InvalidOperationException($"{what}: parsing {inputBytes} bytes allocated {allocated} bytes, more than {factor} × the input + {slack}" +
                (error != null ? $", then threw {error.GetType().Name}: {error.Message}" : "."));
        if (error != null) ExceptionDispatchInfo.Capture(error).Throw();
    }
}
