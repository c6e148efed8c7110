namespace Raft.Teacher;

/// <summary>Receives a forward's logits [batch·seq, vocab] in the runtime's own buffer, valid only during the call.</summary>
public delegate void LogitsConsumer(ReadOnlySpan<float> logits);
