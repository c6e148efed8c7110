namespace Raft.Pipeline.Training;

/// <summary>
/// One training example: the user prompt and the answer trained on (the fused answer after refinement, or the raw
/// reference). For RAFT the same answer is the one placed in the teacher's context.
/// </summary>
public sealed record TrainExample(string Prompt, string Answer);
