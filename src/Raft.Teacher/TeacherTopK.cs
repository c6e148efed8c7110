namespace Raft.Teacher;

/// <summary>
/// The teacher's sparse distribution at each scored position: indices [rows, k] (descending logit, ties to the
/// lower index) and probabilities [rows, k] (softmax at temperature τ over the kept logits), as
/// <see cref="Raft.Kernels.ILossKernels.Distill"/> takes them.
/// </summary>
public sealed class TeacherTopK
{
    /// <summary>Wraps existing arrays; their lengths must be rows·k.</summary>
    public TeacherTopK(int rows, int k, int[] indices, float[] probs)
    {
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentNullException.ThrowIfNull(probs);
        if (rows < 0) throw new ArgumentOutOfRangeException(nameof(rows), rows, "rows must be >= 0.");
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be > 0.");
        if (indices.Length != (long)rows * k) throw new ArgumentException($"indices has {indices.Length} values, needs [rows, k] = [{rows}, {k}].", nameof(indices));
        if (probs.Length != (long)rows * k) throw new ArgumentException($"probs has {probs.Length} values, needs [rows, k] = [{rows}, {k}].", nameof(probs));
        Rows = rows; K = k; Indices = indices; Probs = probs;
    }

    /// <summary>Scored positions.</summary>
    public int Rows { get; }
    /// <summary>Kept entries per row.</summary>
    public int K { get; }
    /// <summary>Token ids [rows, k].</summary>
    public int[] Indices { get; }
    /// <summary>Probabilities [rows, k].</summary>
    public float[] Probs { get; }
}
