namespace Raft.Distributed;

/// <summary>The argument checks every backend makes at its entry points, before any communication.</summary>
internal static class CollectiveChecks
{
    public static void Root(int root, int worldSize)
    {
        if ((uint)root >= (uint)worldSize)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"root must be a rank in 0..{worldSize - 1}.");
    }

    public static void ReduceScatter(int sendLength, int receiveLength, int worldSize, bool overlap)
    {
        if ((long)receiveLength * worldSize != sendLength)
            throw new ArgumentException(
                $"send.Length ({sendLength}) must be receive.Length ({receiveLength}) × world size ({worldSize}); pad the send buffer with zeros " +
                "to chunk × world size, chunk = Collectives.ChunkLength(length, worldSize).", "send");
        if (overlap) throw new ArgumentException("send and receive must not overlap.", "receive");
    }

    public static void AllGather(int sendLength, int receiveLength, int worldSize, bool overlap)
    {
        if ((long)sendLength * worldSize != receiveLength)
            throw new ArgumentException(
                $"receive.Length ({receiveLength}) must be send.Length ({sendLength}) × world size ({worldSize}).", "receive");
        if (overlap) throw new ArgumentException("send and receive must not overlap.", "receive");
    }
}
