"""A torch.autograd.Function over libraft_kernels' fused top-K distillation (CPU tensors; example of use).

    from raft_kernels.torch_function import raft_distill
    loss = raft_distill(student_logits, teacher_indices, teacher_probs, temperature=2.0, kind="forward-kl")
    loss.backward()

The forward pass computes the loss and its gradient in one fused call (the gradient is kept for backward, which only
scales it by the incoming gradient): one read of the [rows, vocab] logits instead of PyTorch's log_softmax, gather
and their backward passes.
"""
import numpy as np
import torch

import raft_kernels


class RaftDistill(torch.autograd.Function):
    """loss = raft_distill(student [rows, vocab] float32, indices [rows, k], probs [rows, k], ...)."""

    @staticmethod
    def forward(ctx, student, indices, probs, temperature, kind, beta, row_weights):
        s = student.detach().to(torch.float32).contiguous().numpy()
        w = None if row_weights is None else row_weights.detach().cpu().numpy()
        result, grad = raft_kernels.distill(s, indices.cpu().numpy(), probs.detach().cpu().numpy(), temperature,
                                            kind, beta, w)
        ctx.save_for_backward(torch.from_numpy(grad).to(student.dtype))
        return student.new_tensor(result.loss)

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None, None, None, None, None


def raft_distill(student, indices, probs, temperature=1.0, kind="forward-kl", beta=0.5, row_weights=None):
    """The fused KD loss (times temperature^2) as a differentiable torch scalar (w.r.t. student only)."""
    return RaftDistill.apply(student, indices, probs, float(temperature), kind, float(beta), row_weights)


if __name__ == "__main__":
    torch.manual_seed(0)
    student = torch.randn(4, 1000, requires_grad=True)
    idx, p = raft_kernels.topk_softmax(np.random.default_rng(0).standard_normal((4, 1000)), k=32, temperature=2.0)
    loss = raft_distill(student, torch.from_numpy(idx), torch.from_numpy(p), temperature=2.0)
    loss.backward()
    print(f"{raft_kernels.kernels_name()}: loss {loss.item():.6f}, |grad| {student.grad.norm().item():.6f}")
