using System.Globalization;

namespace Raft.Distributed;

/// <summary>Settings shared by the collective backends.</summary>
public sealed record CollectiveOptions
{
    /// <summary>Environment variable read by <see cref="FromEnvironment"/> for <see cref="TimeoutSeconds"/>.</summary>
    public const string TimeoutVariable = "RAFT_COLLECTIVE_TIMEOUT";

    /// <summary>
    /// When positive, a collective that has not completed after this many seconds makes the watchdog write an error
    /// naming the rank, the host and the call to standard error and abort the whole job (MPI_Abort): a lost or stuck
    /// rank never becomes a silent hang. 0 (the default) disables the watchdog. Choose it well above the longest
    /// legitimate wait, which includes the slowest rank's compute between two collectives.
    /// </summary>
    public double TimeoutSeconds { get; init; }

    /// <summary>
    /// The largest element count given to one MPI call; longer buffers are split into several calls. MPI counts are
    /// C ints, so the default is <see cref="int.MaxValue"/>; a smaller value bounds the size of one message.
    /// </summary>
    public int MaxElementsPerCall { get; init; } = int.MaxValue;

    /// <summary>The defaults, with <see cref="TimeoutSeconds"/> taken from RAFT_COLLECTIVE_TIMEOUT when it is set.</summary>
    /// <exception cref="ArgumentException">RAFT_COLLECTIVE_TIMEOUT is not a non-negative number.</exception>
    public static CollectiveOptions FromEnvironment()
    {
        var text = Environment.GetEnvironmentVariable(TimeoutVariable);
        if (string.IsNullOrWhiteSpace(text)) return new CollectiveOptions();
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) || !(seconds >= 0) || double.IsInfinity(seconds))
            throw new ArgumentException($"{TimeoutVariable} must be a number of seconds ≥ 0 (0 disables the watchdog), not '{text}'.", TimeoutVariable);
        return new CollectiveOptions { TimeoutSeconds = seconds };
    }

    internal void Validate()
    {
        if (!(TimeoutSeconds >= 0) || double.IsInfinity(TimeoutSeconds))
            throw new ArgumentOutOfRangeException(nameof(TimeoutSeconds), TimeoutSeconds, "TimeoutSeconds must be finite and ≥ 0 (0 disables the watchdog).");
        if (MaxElementsPerCall < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxElementsPerCall), MaxElementsPerCall, "MaxElementsPerCall must be ≥ 1.");
    }
}
