namespace Raft.Kernels.Ilgpu;

/// <summary>
/// The device-side summary of one loss call, one element in a device buffer: written by the prepare
/// kernel (weight sum, normalizer, argument errors) and the finish kernel (loss sum, first bad row), read by
/// the row kernels (normalizer, argument error) and, once per call, by the host.
/// </summary>
internal struct DeviceSummary
{
    /// <summary>Σ_r w_r·L_r (finish kernel).</summary>
    public double LossSum;
    /// <summary>Σ_r w_r, or for cross-entropy the number of rows not ignored (prepare kernel).</summary>
    public double WeightSum;
    /// <summary>N: the caller's normalizer when &gt; 0, else <see cref="WeightSum"/> (prepare kernel).</summary>
    public double Normalizer;
    /// <summary>0, or the <see cref="ArgErrors"/> code of the first invalid input found on device.</summary>
    public int ArgError;
    /// <summary>The flat element index of that invalid input (for a duplicate teacher index: the row).</summary>
    public int ArgIndex;
    /// <summary>For a duplicate teacher index: the index value that repeats.</summary>
    public int ArgValue;
    /// <summary>The first row (lowest index) with a non-finite logit, or -1.</summary>
    public int BadRow;
    /// <summary>The first non-finite column of <see cref="BadRow"/>.</summary>
    public int BadColumn;
}

/// <summary>Codes of <see cref="DeviceSummary.ArgError"/>.</summary>
internal static class ArgErrors
{
    public const int None = 0;
    public const int TeacherIndices = 1;
    public const int TeacherProbs = 2;
    public const int RowWeights = 3;
    public const int Targets = 4;
    public const int DuplicateTeacherIndex = 5;
}

/// <summary>Scalar arguments of the distillation kernels (one struct keeps the kernel signatures short).</summary>
internal struct DistillParams
{
    public int Rows;
    public int Vocab;
    public int K;
    /// <summary>The <see cref="DistillLossKind"/> actually computed (<see cref="DistillSettings.EffectiveKind"/>).</summary>
    public int Kind;
    public float Tau;
    public float InvTau;
    public float Beta;
    /// <summary>1: check teacher indices, probabilities and weights on device (device-resident inputs).</summary>
    public int Validate;
    /// <summary>The caller's normalizer (0: use the weight sum).</summary>
    public float Normalizer;
}

/// <summary>Scalar arguments of the cross-entropy kernels.</summary>
internal struct CrossEntropyParams
{
    public int Rows;
    public int Vocab;
    public int IgnoreIndex;
    public float LabelSmoothing;
    /// <summary>1: check the targets on device (device-resident inputs).</summary>
    public int Validate;
    public float Normalizer;
}

/// <summary>Scalar arguments of the top-K kernel.</summary>
internal struct TopKParams
{
    public int Rows;
    public int Vocab;
    public int K;
    public float InvTau;
}
