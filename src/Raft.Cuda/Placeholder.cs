namespace Raft.Cuda;
internal static class Placeholder { }
