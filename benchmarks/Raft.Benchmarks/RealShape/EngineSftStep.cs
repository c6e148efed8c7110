using Raft.Benchmarks.Training;
using Raft.Kernels;
using Raft.Model;
using Raft.Pipeline.Training;

namespace Raft.Benchmarks.RealShape;

/// <summary>
/// The engine's SFT step as <c>raft sft</c>'s CPU student runs it (HostStudent): <see cref="LlamaModel.ForwardHidden"/>,
/// lm_head fused with the cross-entropy a chunk of rows at a time (<see cref="ChunkedLossHead"/> at the default
/// <see cref="LogitsChunk.Rows"/>, 64 MiB of logits), <see cref="LlamaModel.BackwardFromHidden"/>, <see cref="AdamW"/> over
/// fp32 masters; with BF16 the matmuls read 16-bit compute copies re-rounded after each update (<c>--precision bf16</c>);
/// with checkpointing only layer inputs are kept and the layers recomputed in the backward (<c>--gradient-checkpointing</c>).
/// No clipping (neither does the libtorch mirror). The loss is the mean over the B·T positions, as the baseline's.
/// </summary>
internal sealed class EngineSftStep : IStepper
{
    private readonly LlamaModel _model;
    private readonly ModelActivations _acts;
    private readonly TensorSet _grads;
    private readonly AdamW _opt;
    private readonly CpuKernels _kernels = new();
    private readonly ChunkedLossHead _head;
    private readonly StepLoss _loss = new(new DistillSettings(TopK: 1, Temperature: 1), raft: false);
    private readonly PackedBatch _batch;
    private readonly bool _mixed;

    public EngineSftStep(TrainingProblem p, SafeTensorDType precision, bool checkpointing)
    {
        var c = p.Case;
        _model = new LlamaModel(c.Config, p.InitialWeights.Clone()) { Threads = 0 };
        _mixed = precision != SafeTensorDType.F32;
        if (_mixed) _model.SetComputeDType(precision);
        _acts = new ModelActivations { GradientCheckpointing = checkpointing };
        _grads = _model.Parameters.ZerosLike();
        _opt = TrainingShapes.CreateAdamW(_model.Parameters);
        _head = new ChunkedLossHead(LogitsChunk.Rows(0, c.Config.VocabSize));
        _batch = new PackedBatch
        {
            Inputs = p.Inputs, SeqLen = c.SeqLen, KdSequences = 0, SftSequences = c.Batch,
            Targets = p.Targets, Tokens = c.Tokens,
        };
    }

    public double Step()
    {
        var c = _batch;
        foreach (var g in _grads.Tensors) Array.Clear(g.Data);
        _model.ForwardHidden(c.Inputs, c.Sequences, c.SeqLen, _acts);
        var losses = _head.Forward(_model, _acts, c, _loss, _kernels, 0, 0);
        var dHidden = _head.Backward(_model, _acts, _grads);
        _model.BackwardFromHidden(_acts, dHidden, _grads);
        _opt.Update(_grads);
        if (_mixed) _model.RefreshComputeCopies();
        return losses.Ce.Loss;
    }

    public void Dispose() { }
}
