using Raft.Distributed;
using Raft.Model;

namespace Raft.Pipeline.Training;

/// <summary>
/// The student on the host: <see cref="LlamaModel"/>'s forward up to lm_head's input, lm_head and the loss kernels a
/// chunk of rows at a time (<see cref="ChunkedLossHead"/>, <see cref="TrainOptions.LogitsChunkRows"/>), the backward into
/// host gradients (with <see cref="TrainOptions.GradientCheckpointing"/>, the layers recomputed from their inputs);
/// frozen tensors' gradients are zeroed after the backward, so they take no part in the clipping norm nor the update.
/// Subclasses reduce and update.
/// </summary>
internal abstract class HostStudent(StudentSetup setup) : IStudentBackend
{
    protected readonly StudentSetup Setup = setup;
    // Under LoRA the adapters' gradients only: the base gets none computed (frozen), and only these are reduced and clipped.
    protected readonly TensorSet Grads = (setup.Model.Lora?.Parameters ?? setup.Model.Parameters).ZerosLike();
    private readonly ModelActivations _acts = new() { GradientCheckpointing = setup.Options.GradientCheckpointing };
    private readonly ChunkedLossHead _head = new(LogitsChunk.Rows(setup.Options.LogitsChunkRows, setup.Model.Config.VocabSize));

    protected LlamaModel Model => Setup.Model;

    // precision bf16 / fp16: the model's 16-bit compute copies, made from the (resumed, broadcast) weights at the start
    private readonly bool _mixed = EnableComputeCopies(setup);

    private static bool EnableComputeCopies(StudentSetup s)
    {
        s.Model.SetComputeDType(s.Options.ComputeDType);
        return s.Options.ComputeDType is not null;
    }

    /// <summary>After an update: the trained matrices' compute copies re-rounded (a LoRA base is frozen: none).</summary>
    protected void RefreshComputeCopies()
    {
        if (_mixed && Model.Lora is null) Model.RefreshComputeCopies(Setup.Frozen is null ? null : Setup.IsTrainable);
    }

    public abstract double CurrentLearningRate { get; }
    public abstract string Describe();
    public abstract (double Norm, bool Applied) BackwardAndUpdate(double clipNorm);
    public abstract AdamW? CheckpointOptimizer();

    public StepLosses ForwardAndLoss(PackedBatch batch, StepLoss loss, float kdNormalizer, float ceNormalizer)
    {
        Model.ForwardHidden(batch.Inputs, batch.Sequences, batch.SeqLen, _acts);
        return _head.Forward(Model, _acts, batch, loss, Setup.Kernels, kdNormalizer, ceNormalizer);
    }

    public void Weigh(PackedBatch batch, double wKd, double wSft) => _head.Weigh(Model, wKd, wSft);

    // true while the gradients hold earlier micro-batches of this step (AccumulateBackward): the next backward adds to them
    private bool _accumulating;

    public void AccumulateBackward()
    {
        Backward();
        _accumulating = true;
    }

    public void DiscardGradients() => _accumulating = false;

    /// <summary>
    /// Runs the backward from the (weighted) loss: lm_head by chunks, then the layers, into gradients zeroed first unless
    /// they hold this step's earlier micro-batches (<see cref="AccumulateBackward"/>), which it adds to.
    /// </summary>
    protected void Backward(Action<int>? layerDone = null)
    {
        if (!_accumulating) foreach (var g in Grads.Tensors) Array.Clear(g.Data);
        _accumulating = false;
        var dHidden = _head.Backward(Model, _acts, Grads);
        Model.BackwardFromHidden(_acts, dHidden, Grads, layerDone);
    }

    protected void ZeroFrozenGradients()
    {
        if (Setup.Frozen is null) return;
        foreach (var g in Grads.Tensors) if (Setup.Frozen.Contains(g.Name)) Array.Clear(g.Data);
    }

    public void SyncHostWeights() { } // the host model is the student

    public void Dispose()
    {
        if (_mixed) Model.SetComputeDType(null);
    }
}

/// <summary>
/// The CPU student with data parallelism: the ranks' gradients are summed bucket by bucket (<see cref="GradientBucketer"/>)
/// after the backward, or, with <see cref="TrainOptions.OverlapAllReduce"/>, while it computes the layers before (the
/// same sums bit for bit); global-norm clipping and AdamW on every rank, so every rank takes the same step.
/// </summary>
internal sealed class CpuStudent : HostStudent
{
    private readonly AdamW _optimizer;
    private readonly GradientBucketer _bucketer;
    private readonly int[][] _layerBuffers; // per layer: the bucketer's buffer indices of its gradient tensors

    public CpuStudent(StudentSetup setup) : base(setup)
    {
        _optimizer = setup.HostOptimizer();
        // The gradients in the order backward completes them (last layer first).
        _bucketer = new GradientBucketer(setup.World, Grads.Tensors.Reverse().Select(g => g.Data).ToArray(), setup.BucketElements);
        var bufferIndex = Grads.Tensors.Reverse().Select((g, i) => (g.Name, i)).ToDictionary(x => x.Name, x => x.i);
        _layerBuffers = Enumerable.Range(0, Model.Config.NumHiddenLayers)
            .Select(l => (Model.Lora?.LayerTensorNames(l) ?? Model.LayerTensorNames(l)).Select(name => bufferIndex[name]).ToArray()).ToArray();
    }

    public override double CurrentLearningRate => _optimizer.CurrentLearningRate;

    public override string Describe() => Setup.Options.ShardOptimizer ? " (shard_optimizer has no effect in a single process)" : "";

    public override (double Norm, bool Applied) BackwardAndUpdate(double clipNorm)
    {
        var world = Setup.World;
        bool multi = world.WorldSize > 1;
        if (multi && Setup.Options.OverlapAllReduce && _bucketer.Buckets.Count > 1)
        {
            // each layer's bucket is summed over the ranks (on a communication thread) while the backward computes
            // the layers before it; the sums are AllReduceSum's, bit for bit
            _bucketer.BeginOverlappedSum();
            try { Backward(l => { foreach (int i in _layerBuffers[l]) _bucketer.MarkReady(i); }); }
            finally { _bucketer.EndOverlappedSum(); }
        }
        else
        {
            Backward();
            _bucketer.AllReduceSum();
        }
        ZeroFrozenGradients();
        double norm = clipNorm > 0 ? GradientClipping.ClipByGlobalNorm(Grads, clipNorm) : GradientClipping.GlobalNorm(Grads);
        bool finite = double.IsFinite(norm);
        if (multi)
        {
            Span<double> bad = [finite ? 0 : 1];
            world.AllReduce(bad, ReduceOp.Max);
            finite = bad[0] == 0;
        }
        if (finite)
        {
            _optimizer.Update(Grads);
            RefreshComputeCopies();
        }
        return (norm, finite);
    }

    public override AdamW? CheckpointOptimizer() => _optimizer;
}

/// <summary>
/// ZeRO-1: each rank keeps AdamW's moments for its chunk of the parameters only (<see cref="ZeroOptimizer"/>):
/// reduce-scatter of the gradients, global norm, clipping and update of the chunk, all-gather of the weights.
/// </summary>
internal sealed class ZeroStudent : HostStudent
{
    private readonly ZeroOptimizer _zero;

    public ZeroStudent(StudentSetup setup) : base(setup)
    {
        _zero = new ZeroOptimizer(setup.World, Model.Lora?.Parameters ?? Model.Parameters, Grads, setup.Adam, setup.Schedule, setup.Loaded);
        if (setup.Frozen is not null) _zero.SetTrainable(setup.IsTrainable);
    }

    public override double CurrentLearningRate => _zero.CurrentLearningRate;

    public override string Describe() => $", optimizer state sharded over the ranks (ZeRO-1, {_zero.ChunkLength} parameters on rank 0)";

    public override (double Norm, bool Applied) BackwardAndUpdate(double clipNorm)
    {
        Backward();
        ZeroFrozenGradients();
        // The norm is global, so is the decision.
        double norm = _zero.Step(clipNorm);
        if (double.IsFinite(norm)) RefreshComputeCopies();
        return (norm, double.IsFinite(norm));
    }

    public override AdamW? CheckpointOptimizer() => _zero.GatherFull();
}
