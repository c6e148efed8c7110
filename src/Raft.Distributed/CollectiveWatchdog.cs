using System.Diagnostics;

namespace Raft.Distributed;

/// <summary>
/// The collective timeout: a background thread that watches the collective in progress and, when one has not
/// completed within the timeout, writes an error naming the rank, the host and the call to standard error and
/// aborts the job through the given action (MPI_Abort for MPI). A stuck or lost peer never becomes a silent hang.
/// </summary>
internal sealed class CollectiveWatchdog : IDisposable
{
    private readonly long _timeoutTicks;
    private readonly double _timeoutSeconds;
    private readonly Func<string> _who;
    private readonly Action<string> _abort;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _stop = new(false);
    private readonly TimeSpan _poll;
    private volatile string? _call;
    private long _startedAt;
    private int _fired;

    private readonly TextWriter _log;

    /// <param name="timeoutSeconds">The timeout (&gt; 0).</param>
    /// <param name="who">Describes this rank and host, for the message.</param>
    /// <param name="abort">Ends the job with the message; it should not return (MPI_Abort, then FailFast).</param>
    /// <param name="log">Where the message is written first; standard error when null.</param>
    public CollectiveWatchdog(double timeoutSeconds, Func<string> who, Action<string> abort, TextWriter? log = null)
    {
        _log = log ?? Console.Error;
        _timeoutSeconds = timeoutSeconds;
        _timeoutTicks = (long)(timeoutSeconds * Stopwatch.Frequency);
        _who = who;
        _abort = abort;
        _poll = TimeSpan.FromSeconds(Math.Clamp(timeoutSeconds / 10, 0.02, 1.0));
        _thread = new Thread(Run) { IsBackground = true, Name = "raft collective watchdog" };
        _thread.Start();
    }

    /// <summary>Marks <paramref name="call"/> as in progress until the returned scope is disposed.</summary>
    public Scope Enter(string call)
    {
        Interlocked.Exchange(ref _startedAt, Stopwatch.GetTimestamp());
        _call = call;
        return new Scope(this);
    }

    private void Leave() => _call = null;

    private void Run()
    {
        while (!_stop.Wait(_poll))
        {
            var call = _call;
            if (call is null) continue;
            long elapsed = Stopwatch.GetTimestamp() - Interlocked.Read(ref _startedAt);
            if (elapsed < _timeoutTicks || _call is null) continue;
            if (Interlocked.Exchange(ref _fired, 1) != 0) return;
            var message = $"{_who()}: collective {call} did not complete within {_timeoutSeconds:0.###} s " +
                          $"(collective timeout, {CollectiveOptions.TimeoutVariable}); a peer rank is stuck, dead or calling a different collective. Aborting the job.";
            _log.WriteLine("raft: " + message);
            _log.Flush();
            _abort(message);
            return;
        }
    }

    public void Dispose()
    {
        _stop.Set();
        if (Thread.CurrentThread != _thread) _thread.Join(TimeSpan.FromSeconds(2));
        _stop.Dispose();
    }

    /// <summary>Ends the watched call.</summary>
    internal readonly struct Scope(CollectiveWatchdog? owner) : IDisposable
    {
        public void Dispose() => owner?.Leave();
    }
}
