namespace Raft.Distributed;

/// <summary>
/// The default backend: rank 0 of a world of 1, no native dependency. Every collective is the identity (a sum or a
/// mean over one rank is the rank's own data), with the same argument checks as the other backends, so that code
/// written for N processes runs unchanged in one.
/// </summary>
public sealed class SingleProcessCollective : ICollective
{
    /// <inheritdoc/>
    public int Rank => 0;

    /// <inheritdoc/>
    public int WorldSize => 1;

    /// <inheritdoc/>
    public string Backend => "none";

    /// <inheritdoc/>
    public string HostName { get; } = Environment.MachineName;

    /// <inheritdoc/>
    public void Barrier() { }

    /// <inheritdoc/>
    public void Broadcast(Span<float> data, int root) => CollectiveChecks.Root(root, 1);

    /// <inheritdoc/>
    public void Broadcast(Span<byte> data, int root) => CollectiveChecks.Root(root, 1);

    /// <inheritdoc/>
    public void AllReduceSum(Span<float> data) { }

    /// <inheritdoc/>
    public void AllReduceMean(Span<float> data) { }

    /// <inheritdoc/>
    public void AllReduce(Span<double> data, ReduceOp op = ReduceOp.Sum)
    {
        if (!Enum.IsDefined(op)) throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown reduction.");
    }

    /// <inheritdoc/>
    public void ReduceScatterSum(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.ReduceScatter(send.Length, receive.Length, 1, send.Overlaps(receive));
        send.CopyTo(receive);
    }

    /// <inheritdoc/>
    public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.AllGather(send.Length, receive.Length, 1, send.Overlaps(receive));
        send.CopyTo(receive);
    }

    /// <inheritdoc/>
    public void Abort(string reason, int errorCode = 1)
    {
        Console.Error.WriteLine($"raft: rank 0 of 1 on {HostName}: aborting: {reason}");
        Console.Error.Flush();
        Environment.Exit(errorCode == 0 ? 1 : errorCode);
    }

    /// <inheritdoc/>
    public void Dispose() { }
}
