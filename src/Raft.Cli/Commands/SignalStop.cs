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
    private int _stopping;

    /// <summary>A signal by name and number.</summary>
    internal sealed record Caught(string Name, int Number);

    /// <summary>Registers the handlers; <paramref name="log"/> gets one line when a signal arrives.</summary>
    public SignalStop(TextWriter log)
    {
        _log = log;
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
        _log.WriteLine($"raft: {Signal.Name}: stopping after the current step (send it again to stop at once)");
        _log.Flush();
        _cancel.Cancel();
    }

    /// <summary>Unregisters the handlers.</summary>
    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cancel.Dispose();
    }
}
