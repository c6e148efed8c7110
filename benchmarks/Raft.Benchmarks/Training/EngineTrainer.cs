using Raft.Kernels;
using Raft.Model;

namespace Raft.Benchmarks.Training;

/// <summary>
/// One training step of the engine's <see cref="LlamaModel"/>: zero the gradients, forward with recorded
/// activations into a preallocated logits buffer, <see cref="CpuKernels.CrossEntropy"/> (mean over B·T
/// positions) writing dL/dlogits over the logits in place, backward, <see cref="AdamW.Update"/>.
/// The model runs on its own copy of the initial weights; every buffer is allocated once, at the first step.
/// </summary>
public sealed class EngineTrainer
{
    private readonly TrainingProblem _p;
    private readonly LlamaModel _model;
    private readonly ModelActivations _acts = new();
    private readonly TensorSet _grads;
    private readonly AdamW _opt;
    private readonly CpuKernels _ce = new();
    private readonly float[] _logits;

    /// <summary>Builds the model over a copy of the problem's weights, its gradients and the optimizer (zero moments).</summary>
    public EngineTrainer(TrainingProblem p)
    {
        _p = p;
        _model = new LlamaModel(p.Case.Config, p.InitialWeights.Clone()) { Threads = 0 };
        _grads = _model.Parameters.ZerosLike();
        _opt = TrainingShapes.CreateAdamW(_model.Parameters);
        _logits = new float[(long)p.Case.Tokens * p.Case.Config.VocabSize];
    }

    /// <summary>The model (its parameters are updated by <see cref="Step"/>).</summary>
    public LlamaModel Model => _model;
    /// <summary>The gradients of the last <see cref="ForwardBackward"/>.</summary>
    public TensorSet Gradients => _grads;

    /// <summary>Logits [B·T, V] of a plain forward of the current weights (a new array).</summary>
    public float[] Logits() => _model.Forward(_p.Inputs, _p.Case.Batch, _p.Case.SeqLen);

    /// <summary>Forward, loss and backward (gradients in <see cref="Gradients"/>); returns the mean loss.</summary>
    public double ForwardBackward()
    {
        var c = _p.Case;
        foreach (var g in _grads.Tensors) Array.Clear(g.Data);
        _model.Forward(_p.Inputs, c.Batch, c.SeqLen, _logits, _acts);
        double loss = _ce.CrossEntropy(_logits, c.Tokens, c.Config.VocabSize, _p.Targets, gradient: _logits).Loss;
        _model.Backward(_acts, _logits, _grads);
        return loss;
    }

    /// <summary>The AdamW update with the gradients of the last <see cref="ForwardBackward"/>.</summary>
    public void Update() => _opt.Update(_grads);

    /// <summary>One full training step; returns the loss before the update.</summary>
    public double Step()
    {
        double loss = ForwardBackward();
        _opt.Update(_grads);
        return loss;
    }
}
