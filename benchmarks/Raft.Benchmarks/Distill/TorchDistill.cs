using TorchSharp;
using static TorchSharp.torch;

namespace Raft.Benchmarks.Distill;

/// <summary>
/// The forward-KL loss in libtorch eager mode (TorchSharp, CPU), written as a PyTorch user would:
/// <code>
/// s = student.detach().requires_grad_()          # a fresh leaf each step, grad = None (zero_grad(set_to_none))
/// logq = log_softmax(s / τ, dim=1)
/// loss = τ² · (p · (log p − logq.gather(1, idx))).sum() / rows
/// loss.backward()                                # gradient in s.grad [rows, V]
/// </code>
/// Threads: <c>torch.set_num_threads(Environment.ProcessorCount)</c>. Every temporary of a step is freed
/// by a dispose scope at the end of the step, as Python's reference counting would.
/// </summary>
public sealed class TorchDistill : IDisposable
{
    private readonly Tensor _student, _indices, _probs;
    private readonly float _tau;
    private readonly int _rows;

    /// <summary>Wraps the problem's arrays as tensors.</summary>
    public TorchDistill(DistillProblem p)
    {
        TorchNativeFix.Apply();
        torch.set_num_threads(Environment.ProcessorCount);
        _tau = p.Temperature;
        _rows = p.Rows;
        _student = torch.tensor(p.Student, [p.Rows, p.Vocab]);
        _indices = torch.tensor(p.Indices64, [p.Rows, p.TopK]);
        _probs = torch.tensor(p.Probs, [p.Rows, p.TopK]);
    }

    /// <summary>One step: forward and backward; returns the loss. The gradient is dropped with the step.</summary>
    public double Run() => Run(null);

    /// <summary>One step; when <paramref name="gradientOut"/> is given the gradient [rows, V] is copied into it.</summary>
    public double Run(float[]? gradientOut)
    {
        using var scope = torch.NewDisposeScope();
        var s = _student.detach().requires_grad_(true);
        var logq = nn.functional.log_softmax(s / _tau, 1);
        var logqK = logq.gather(1, _indices);
        var loss = (_probs * (_probs.log() - logqK)).sum() * (_tau * _tau / _rows);
        loss.backward();
        if (gradientOut is not null)
            s.grad!.contiguous().data<float>().CopyTo(gradientOut);
        return loss.item<float>();
    }

    /// <summary>The libtorch version string.</summary>
    public static string Version
    {
        get
        {
            TorchNativeFix.Apply();
            return torch.__version__;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _student.Dispose(); _indices.Dispose(); _probs.Dispose();
    }
}
