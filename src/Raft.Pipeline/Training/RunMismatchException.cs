namespace Raft.Pipeline.Training;

/// <summary>
/// A resume that does not fit its run: a different configuration, global batch or model shape than the checkpoint was
/// trained with. It is the user's input that is wrong (the command line reports it as bad input, exit 2); the message
/// names the checkpoint and what differs.
/// </summary>
public sealed class RunMismatchException(string message) : Exception(message);
