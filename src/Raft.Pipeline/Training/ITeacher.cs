using Raft.Model;
using Raft.Teacher;

namespace Raft.Pipeline.Training;

/// <summary>
/// The frozen original model as RAFT uses it: it scores student rollouts (stage 2) and writes rewrites (stage 1).
/// Two implementations: <see cref="OnnxTeacher"/> (ONNX Runtime, the product path) and <see cref="EngineTeacher"/>
/// (the engine's own forward over a frozen checkpoint, for tests and for machines without an exported model).
/// </summary>
public interface ITeacher : IDisposable
{
    /// <summary>A short description for logs (e.g. "onnx:cpu /path/model.onnx").</summary>
    string Description { get; }

    /// <summary>The teacher's vocabulary size (must equal the student's).</summary>
    int VocabSize { get; }

    /// <summary>
    /// For each (context, rollout) pair, the teacher's top-K at temperature τ at every rollout position (the row that
    /// predicts rollout[j] from context ++ rollout[..j]): one [rollout.Length, k] result per pair.
    /// </summary>
    IReadOnlyList<TeacherTopK> Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, int k, float temperature);

    /// <summary>Samples a continuation of each prompt (same options and reproducibility as <see cref="Generator"/>).</summary>
    IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex);
}
