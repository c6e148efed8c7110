namespace Raft.Teacher;

/// <summary>Receives a forward's logits [batch·seq, vocab] in the runtime's own buffer (the caller may write to it), valid only during the call.</summary>
public delegate void LogitsConsumer(Span<float> logits);
