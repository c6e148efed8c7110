namespace Raft.Pipeline.Training;

/// <summary>
/// One step's batch on this rank, packed for a single student forward: <see cref="KdSequences"/> rollout sequences
/// (prompt ++ rollout; RAFT only) then <see cref="SftSequences"/> answer sequences (prompt ++ answer), each right-padded
/// to <see cref="SeqLen"/> positions. A sequence's inputs are its tokens but the last. The first KdRows = KdSequences·T
/// rows of the logits are distilled, the next SftRows = SftSequences·T rows trained by cross-entropy. A plain data
/// structure: <see cref="StepBuilder"/> fills it, the loss and the student backend read it.
/// </summary>
internal sealed class PackedBatch
{
    /// <summary>Token ids [(KdSequences + SftSequences)·SeqLen], pad-filled.</summary>
    public required int[] Inputs { get; init; }
    /// <summary>T, positions per sequence.</summary>
    public required int SeqLen { get; init; }
    /// <summary>Rollout sequences (0 for SFT).</summary>
    public required int KdSequences { get; init; }
    /// <summary>Answer sequences.</summary>
    public required int SftSequences { get; init; }
    /// <summary>Cross-entropy targets [SftRows]: the next answer token where the assistant mask is set, −100 elsewhere.</summary>
    public required int[] Targets { get; init; }
    /// <summary>RAFT: the teacher's top-K token ids [KdRows, K] (written by the teacher through its row map).</summary>
    public int[] TeacherIndices { get; init; } = [];
    /// <summary>RAFT: the teacher's top-K probabilities [KdRows, K].</summary>
    public float[] TeacherProbs { get; init; } = [];
    /// <summary>RAFT: [KdRows], 1 at every scored rollout position, 0 at prompt and pad positions (whose teacher rows are never written, read or validated).</summary>
    public float[] RowWeights { get; init; } = [];
    /// <summary>Tokens through the student's forward and backward (every sequence's length − 1).</summary>
    public required long Tokens { get; init; }
    /// <summary>RAFT: the sum of this rank's rollout lengths.</summary>
    public double RolloutTokens { get; init; }
    /// <summary>RAFT: false when the teacher produced a non-finite logit (the step is skipped).</summary>
    public bool TeacherFinite { get; init; } = true;
    /// <summary>Seconds spent sampling rollouts.</summary>
    public double RolloutSeconds { get; init; }
    /// <summary>Seconds spent in the teacher.</summary>
    public double TeacherSeconds { get; init; }

    /// <summary>Sequences in the forward.</summary>
    public int Sequences => KdSequences + SftSequences;
    /// <summary>Distilled rows.</summary>
    public int KdRows => KdSequences * SeqLen;
    /// <summary>Cross-entropy rows.</summary>
    public int SftRows => SftSequences * SeqLen;

    /// <summary>Rows the distillation loss averages over (weighted rows).</summary>
    public double KdCount()
    {
        double n = 0;
        foreach (float w in RowWeights) n += w;
        return n;
    }

    /// <summary>Rows the cross-entropy averages over (targets that are not ignored).</summary>
    public double CeCount()
    {
        double n = 0;
        foreach (int t in Targets) if (t != -100) n++;
        return n;
    }
}
