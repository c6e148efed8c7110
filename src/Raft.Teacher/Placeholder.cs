namespace Raft.Teacher;
internal static class Placeholder { }
