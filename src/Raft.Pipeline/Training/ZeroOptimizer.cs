using Raft.Distributed;
using Raft.Model;

namespace Raft.Pipeline.Training;

/// <summary>
/// The optimizer side of a ZeRO-1 step (<see cref="TrainOptions.ShardOptimizer"/>): this rank holds AdamW's moments
/// for its chunk of the parameters' concatenation only (<see cref="FlatShards"/>, <see cref="AdamWShard"/>). A step
/// reduce-scatters the gradients (this rank gets its chunk of the sum), takes the global gradient norm from the
/// chunks' sums of squares, clips the chunk, updates its parameters and all-gathers the parameters, so every rank
/// ends the step with the same weights. For a checkpoint, <see cref="GatherFull"/> assembles the full optimizer on rank 0.
/// </summary>
internal sealed class ZeroOptimizer
{
    private readonly ICollective _world;
    private readonly TensorSet _parameters;
    private readonly float[][] _parameterBuffers, _gradientBuffers;
    private readonly FlatShards _layout;
    private readonly AdamWShard _shard;
    private readonly float[] _gradient;

    /// <summary>Plans the chunks and creates this rank's slice: zero moments, or the slice of <paramref name="loaded"/> (a resumed run's full state).</summary>
    public ZeroOptimizer(ICollective world, TensorSet parameters, TensorSet gradients, AdamWOptions options, LearningRateSchedule schedule, AdamW? loaded)
    {
        _world = world;
        _parameters = parameters;
        _parameterBuffers = parameters.Tensors.Select(t => t.Data).ToArray();
        _gradientBuffers = gradients.Tensors.Select(t => t.Data).ToArray();
        _layout = new FlatShards(world, _parameterBuffers.Select(b => b.Length).ToArray());
        _shard = loaded is null
            ? new AdamWShard(parameters, options, schedule, _layout.Start, _layout.Length)
            : AdamWShard.FromFull(loaded, _layout.Start, _layout.Length);
        _gradient = new float[_layout.Length];
    }

    /// <summary>Freezes tensors (<see cref="AdamWShard.SetTrainable"/>); the caller zeroes their gradients before <see cref="Step"/>.</summary>
    public void SetTrainable(Func<string, bool> isTrainable) => _shard.SetTrainable(isTrainable);

    /// <summary>The learning rate of the next update.</summary>
    public double CurrentLearningRate => _shard.CurrentLearningRate;

    /// <summary>This rank's share of the parameters' elements (for the log).</summary>
    public long ChunkLength => _layout.Length;

    /// <summary>
    /// Sums the ranks' gradients (this rank keeps its chunk), clips by the global norm when <paramref name="clipNorm"/> &gt; 0
    /// and, when the norm is finite, updates and all-gathers the parameters. Returns the norm before clipping (the same on
    /// every rank, so every rank takes the same decision); a NaN or infinite norm leaves the weights and moments untouched.
    /// </summary>
    public double Step(double clipNorm)
    {
        _layout.ReduceScatterSum(_gradientBuffers, _gradient);
        // The chunk's Σg² in the blocks of GradientClipping.GlobalNorm, summed over the ranks.
        Span<double> sum = [0];
        for (int s = 0; s < _gradient.Length; s += GradientClipping.Block)
            sum[0] += GradientClipping.SumOfSquares(_gradient.AsSpan(s, Math.Min(GradientClipping.Block, _gradient.Length - s)));
        _world.AllReduce(sum, ReduceOp.Sum);
        double norm = Math.Sqrt(sum[0]);
        if (!double.IsFinite(norm)) return norm;
        if (clipNorm > 0)
        {
            // GradientClipping.ClipByGlobalNorm's factor and fp32 multiply.
            double factor = Math.Min(1.0, clipNorm / (norm + 1e-6));
            if (factor < 1.0) System.Numerics.Tensors.TensorPrimitives.Multiply(_gradient, (float)factor, _gradient);
        }
        _shard.Update(_gradient);
        _layout.AllGather(_parameterBuffers);
        return norm;
    }

    /// <summary>
    /// Every rank calls it: rank 0 returns the full optimizer (every rank's moments, the step, options and schedule),
    /// to be saved as an unsharded run would save it; the other ranks return null. Rank 0 holds the full moments only
    /// until the caller drops them.
    /// </summary>
    public AdamW? GatherFull()
    {
        AdamW? full = _world.Rank == 0 ? AdamW.AtStep(_parameters, _shard.Options, _shard.Schedule, _shard.StepCount) : null;
        _layout.GatherToRoot(_shard.FirstMoment, full?.FirstMoment.Tensors.Select(t => t.Data).ToArray());
        _layout.GatherToRoot(_shard.SecondMoment, full?.SecondMoment.Tensors.Select(t => t.Data).ToArray());
        return full;
    }
}
