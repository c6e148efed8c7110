namespace Raft.Pipeline.Data;

/// <summary>
/// One domain example: a user prompt and its reference answer. <see cref="Source"/> and <see cref="Line"/> say
/// where it came from (file and 1-based line), so every later message can point back at the input.
/// </summary>
public sealed record DomainExample(string Id, string Prompt, string Answer, string Source = "", int Line = 0);
