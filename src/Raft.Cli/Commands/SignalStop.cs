using System.Runtime.InteropServices;

namespace Raft.Cli.Commands;

/// <summary>
/// SIGINT, SIGTERM and SIGHUP stop a run between steps: the first one cancels <see cref="Token"/> (the run finishes its
/// current step, keeps every checkpoint written so far, releases its lock and exits 128 + the signal's number); a second
/// one ends the process at once, as the signal's default does.
/// </summary>
internal sealed class SignalStop : IDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly PosixSignalRegistration[] _registrations;
    private readonly TextWriter _log;
    private readonly string _stops;
    private int _stopping;

    /// <summary>A signal by name and number.</summary>
    internal sealed record Caught(string Name, int Number);

    /// <summary>Registers the handlers; <paramref name="log"/> gets one line when a signal arrives, saying <paramref name="stops"/>.</summary>
    public SignalStop(TextWriter log, string stops = "stopping after the current step")
    {
        _log = log;
        _stops = stops;
        _registrations = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP }.Select(s => PosixSignalRegistration.Create(s, Handle))];
    }

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>The signal that stopped the run, or null.</summary>
    public Caught? Signal { get; private set; }

    private void Handle(PosixSignalContext context)
    {
        if (Interlocked.Exchange(ref _stopping, 1) == 1) return; // the second one: the default action (terminate)
        Signal = context.Signal switch
        {
            PosixSignal.SIGINT => new Caught("SIGINT", 2),
            PosixSignal.SIGHUP => new Caught("SIGHUP", 1),
            _ => new Caught("SIGTERM", 15),
        };
        context.Cancel = true;
        _log.WriteLine($"raft: {Signal.Name}: {_stops} (send it again to stop at once)");
        _log.Flush();
        _cancel.Cancel();
    }

    /// <summary>
    /// Says on <paramref name="info"/> that <paramref name="signal"/> stopped the run and where it can continue from
    /// (<paramref name="newest"/>, its newest checkpoint, or none yet); returns the exit code, 128 + the signal's number.
    /// </summary>
    public static int Stopped(Caught signal, string? newest, TextWriter info)
    {
        info.WriteLine($"raft: stopped by {signal.Name}; " + (newest is null
            ? "no checkpoint was written yet (--checkpoint-every N writes one every N steps)"
            : $"the newest checkpoint is {newest}; continue with --resume"));
        return ExitCodes.Signalled(signal.Number);
    }

    /// <summary>
    /// Runs <paramref name="work"/>, a command that writes its <paramref name="output"/> only at its end (refine, eval),
    /// with the handlers registered: it calls the check it is given between units of work (where the test fault
    /// <c>sleep:0:MS</c> pauses, <see cref="FaultInjection.Pause"/>), and a signal caught before the next check stops it
    /// there, before anything is written, with 128 + the signal's number. Once the output is being written, it is finished.
    /// </summary>
    public static int BeforeOutput(TextWriter log, string output, Func<Action, int> work)
    {
        using var signals = new SignalStop(log, $"stopping before {output} is written");
        try
        {
            return work(() =>
            {
                FaultInjection.Pause();
                signals.Token.ThrowIfCancellationRequested();
            });
        }
        catch (OperationCanceledException) when (signals.Signal is { } signal)
        {
            log.WriteLine($"raft: stopped by {signal.Name}; nothing was written to {output}");
            return ExitCodes.Signalled(signal.Number);
        }
    }

    /// <summary>Unregisters the handlers.</summary>
    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cancel.Dispose();
    }
}
