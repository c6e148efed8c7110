namespace Raft.Model;
internal static class Placeholder { }
