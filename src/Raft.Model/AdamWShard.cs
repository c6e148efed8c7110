namespace Raft.Model;

/// <summary>
/// One rank's slice of an <see cref="AdamW"/> optimizer (ZeRO stage 1): the moments of elements
/// [<see cref="Start"/>, <see cref="Start"/> + <see cref="Length"/>) of the parameters' concatenation (in
/// <see cref="TensorSet.Tensors"/> order) and nothing else. <see cref="Update"/> applies AdamW's element-wise update
/// to those parameter elements only, with the same kernel and the same fp32 scalars as <see cref="AdamW.Update"/>, so
/// each element gets the bits the full optimizer would give it; the caller brings the slice's gradient and shares the
/// updated parameters with the other ranks.
/// </summary>
public sealed class AdamWShard
{
    private readonly (int Tensor, int Offset, int At, int Count)[] _segments;
    private readonly bool[] _decay;
    private readonly bool[] _trainable;

    /// <summary>A slice with zero moments at step 0.</summary>
    /// <param name="parameters">The parameters (updated in place, within the slice).</param>
    /// <param name="options">AdamW's hyper-parameters.</param>
    /// <param name="schedule">The learning-rate schedule.</param>
    /// <param name="start">The slice's first element in the parameters' concatenation.</param>
    /// <param name="length">The slice's length (0 for an empty slice).</param>
    public AdamWShard(TensorSet parameters, AdamWOptions options, LearningRateSchedule schedule, long start, long length)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(schedule);
        options.Validate();
        schedule.Validate();
        long total = parameters.Tensors.Sum(t => (long)t.Length);
        if (start < 0 || length < 0 || start + length > total)
            throw new ArgumentOutOfRangeException(nameof(start), $"slice [{start}, {start + length}) is outside the parameters' {total} elements.");
        if (length > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(length), length, $"a slice holds at most {Array.MaxLength} elements.");
        Parameters = parameters; Options = options; Schedule = schedule; Start = start; Length = length;
        FirstMoment = new float[length];
        SecondMoment = new float[length];
        _decay = parameters.Tensors.Select(AdamW.IsDecayed).ToArray();
        _trainable = parameters.Tensors.Select(_ => true).ToArray();
        var segments = new List<(int, int, int, int)>();
        long offset = 0;
        for (int i = 0; i < parameters.Count; i++)
        {
            int n = parameters.Tensors[i].Length;
            long from = Math.Max(start, offset), to = Math.Min(start + length, offset + n);
            if (from < to) segments.Add((i, (int)(from - offset), (int)(from - start), (int)(to - from)));
            offset += n;
        }
        _segments = [.. segments];
    }

    /// <summary>The slice of <paramref name="full"/> (its moments, step, options, schedule and frozen tensors): a rank's share of a loaded checkpoint.</summary>
    public static AdamWShard FromFull(AdamW full, long start, long length)
    {
        ArgumentNullException.ThrowIfNull(full);
        var shard = new AdamWShard(full.Parameters, full.Options, full.Schedule, start, length) { StepCount = full.StepCount };
        for (int i = 0; i < full.Parameters.Count; i++) shard._trainable[i] = full.IsTrainable(i);
        foreach (var (tensor, offset, at, count) in shard._segments)
        {
            full.FirstMoment.Tensors[tensor].Data.AsSpan(offset, count).CopyTo(shard.FirstMoment.AsSpan(at, count));
            full.SecondMoment.Tensors[tensor].Data.AsSpan(offset, count).CopyTo(shard.SecondMoment.AsSpan(at, count));
        }
        return shard;
    }

    /// <summary>Freezes the tensors for which <paramref name="isTrainable"/> is false, as <see cref="AdamW.SetTrainable"/> does.</summary>
    public void SetTrainable(Func<string, bool> isTrainable)
    {
        ArgumentNullException.ThrowIfNull(isTrainable);
        for (int i = 0; i < Parameters.Count; i++) _trainable[i] = isTrainable(Parameters.Tensors[i].Name);
    }

    /// <summary>The parameters (this slice of them is what <see cref="Update"/> changes).</summary>
    public TensorSet Parameters { get; }
    /// <summary>The hyper-parameters.</summary>
    public AdamWOptions Options { get; }
    /// <summary>The learning-rate schedule (its position is <see cref="StepCount"/>).</summary>
    public LearningRateSchedule Schedule { get; }
    /// <summary>The slice's first element in the parameters' concatenation.</summary>
    public long Start { get; }
    /// <summary>The slice's length.</summary>
    public long Length { get; }
    /// <summary>m of the slice's elements.</summary>
    public float[] FirstMoment { get; }
    /// <summary>v of the slice's elements.</summary>
    public float[] SecondMoment { get; }
    /// <summary>Updates made so far.</summary>
    public long StepCount { get; private set; }
    /// <summary>The learning rate the next update will use.</summary>
    public double CurrentLearningRate => Schedule.At(StepCount);

    /// <summary>
    /// One update of the slice's parameter elements with <paramref name="gradient"/>, the slice of the (summed, clipped)
    /// gradient: <see cref="Length"/> elements. Returns the learning rate used.
    /// </summary>
    public double Update(ReadOnlyMemory<float> gradient)
    {
        if (gradient.Length != Length)
            throw new ArgumentException($"gradient holds {gradient.Length} elements, the slice {Length}.", nameof(gradient));
        double lr = Schedule.At(StepCount);
        long t = StepCount + 1;
        var k = AdamW.StepScalars(Options, lr, t, out float decayFactor);
        var items = new List<(int Tensor, int Offset, int At, int Count)>();
        foreach (var (tensor, offset, at, count) in _segments)
        {
            if (!_trainable[tensor]) continue;
            for (int s = 0; s < count; s += AdamW.Block)
                items.Add((tensor, offset + s, at + s, Math.Min(AdamW.Block, count - s)));
        }
        void Run(int j)
        {
            var (i, offset, at, n) = items[j];
            AdamW.Kernel(Parameters.Tensors[i].Data.AsSpan(offset, n), gradient.Span.Slice(at, n), FirstMoment.AsSpan(at, n), SecondMoment.AsSpan(at, n),
                _decay[i] ? decayFactor : 1f, k);
        }
        if (items.Count <= 2) for (int j = 0; j < items.Count; j++) Run(j);
        else Parallel.For(0, items.Count, Run);
        StepCount = t;
        return lr;
    }
}
