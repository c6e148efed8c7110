"""Checks libraft_kernels.so through the ctypes bindings against PyTorch's own computation (float64 autograd) on
fresh random arrays, plus the error path. Run: RAFT_KERNELS_LIB=... /usr/bin/python3 -m unittest discover python/tests
(.ci/run publishes the library and runs it)."""
import os
import sys
import threading
import unittest

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import raft_kernels  # noqa: E402
from raft_kernels.torch_function import raft_distill  # noqa: E402

SEED = int.from_bytes(os.urandom(4), "little")
print(f"seed {SEED}, kernels {raft_kernels.kernels_name()}", file=sys.stderr)


def torch_distill(s, idx, p, tau, kind, beta, w):
    """The divergences as PyTorch computes them from their definitions (times tau^2, weighted mean)."""
    s = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor(idx, dtype=torch.int64)
    p = torch.tensor(p, dtype=torch.float64)
    w = torch.tensor(w, dtype=torch.float64)
    logq = torch.log_softmax(s / tau, dim=-1)
    if kind == "forward-kl" or (kind == "jsd" and beta == 0):
        d = (torch.xlogy(p, p) - p * logq.gather(-1, idx)).sum(-1)
    elif kind == "reverse-kl" or (kind == "jsd" and beta == 1):
        qk = torch.softmax(s.gather(-1, idx) / tau, dim=-1)
        d = (qk * (torch.log(qk) - torch.log(p.clamp_min(1e-30)))).sum(-1)
    else:
        big_p = torch.zeros_like(s).scatter(-1, idx, p)
        q = logq.exp()
        m = beta * big_p + (1 - beta) * q
        d = beta * (torch.xlogy(big_p, big_p) - big_p * torch.log(m)).sum(-1) + (1 - beta) * (q * (logq - torch.log(m))).sum(-1)
    loss = (w * tau * tau * d).sum() / w.sum()
    loss.backward()
    return loss.item(), s.grad.numpy()


class AgainstTorch(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(SEED)

    def assertClose(self, ours, theirs, rel, what):
        ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
        scale = max(np.abs(theirs).max(), 1e-30)
        worst = np.abs(ours - theirs).max()
        self.assertLessEqual(worst, rel * scale, f"{what}: differs by {worst:.3e} (scale {scale:.3e}, seed {SEED})")

    def teacher(self, rows, vocab, k, tau):
        t = (self.rng.standard_normal((rows, vocab)) * 3).astype(np.float32)
        return t, raft_kernels.topk_softmax(t, k, tau)

    def test_topk_softmax(self):
        rows, vocab, k, tau = 7, 513, 19, 1.7
        t, (idx, p) = self.teacher(rows, vocab, k, tau)
        vals, tidx = torch.topk(torch.tensor(t, dtype=torch.float64), k, dim=-1)
        np.testing.assert_array_equal(idx, tidx.numpy())
        self.assertClose(p, torch.softmax(vals / tau, dim=-1).numpy(), 1e-6, "top-K probabilities")

    def test_distill_every_kind(self):
        rows, vocab, k, tau = 6, 701, 23, 1.5
        _, (idx, p) = self.teacher(rows, vocab, k, tau)
        s = (self.rng.standard_normal((rows, vocab)) * 2).astype(np.float32)
        w = (0.2 + self.rng.random(rows)).astype(np.float32)
        w[2] = 0
        for kind, beta in (("forward-kl", 0.5), ("reverse-kl", 0.5), ("jsd", 0.3), ("jsd", 0.7), ("jsd", 0.0), ("jsd", 1.0)):
            with self.subTest(kind=kind, beta=beta):
                result, g = raft_kernels.distill(s, idx, p, tau, kind, beta, w)
                loss, tg = torch_distill(s, idx, p, tau, kind, beta, w)
                self.assertClose(result.loss, loss, 1e-5, f"{kind} β={beta} loss")
                self.assertClose(g, tg, 1e-5, f"{kind} β={beta} gradient")
                self.assertTrue(np.all(g[2] == 0), "a row of weight 0 gets a zero gradient")
                only, none = raft_kernels.distill(s, idx, p, tau, kind, beta, w, gradient=False)
                self.assertIsNone(none)
                self.assertAlmostEqual(only.loss, result.loss, places=12)

    def test_cross_entropy(self):
        rows, vocab = 9, 301
        s = (self.rng.standard_normal((rows, vocab)) * 2).astype(np.float32)
        targets = self.rng.integers(0, vocab, rows).astype(np.int32)
        targets[4] = -100
        for eps in (0.0, 0.1):
            with self.subTest(label_smoothing=eps):
                result, g = raft_kernels.cross_entropy(s, targets, label_smoothing=eps)
                ts = torch.tensor(s, dtype=torch.float64, requires_grad=True)
                loss = F.cross_entropy(ts, torch.tensor(targets, dtype=torch.int64), ignore_index=-100, label_smoothing=eps)
                loss.backward()
                self.assertClose(result.loss, loss.item(), 1e-5, f"cross-entropy ε={eps}")
                self.assertClose(g, ts.grad.numpy(), 1e-5, f"cross-entropy gradient ε={eps}")
                self.assertEqual(result.weight_sum, rows - 1)

    def test_ema_balancer_follows_its_formula(self):
        d, ratio = 0.9, np.array([1.0, 3.0])
        b = raft_kernels.EmaBalancer(d, ratio)
        m = np.zeros(2)
        for t in range(1, 6):
            losses = self.rng.random(2) * 5
            w = b.step(losses)
            m = d * m + (1 - d) * np.abs(losses)
            est = m / (1 - d ** t)
            expected = ratio / ratio.sum() * est.sum() / np.maximum(est, 1e-12)
            self.assertClose(w, expected, 1e-12, f"EMA weights at step {t}")
            self.assertEqual(b.steps.value, t)

    def test_autograd_function_matches_torch(self):
        rows, vocab, k, tau = 4, 257, 11, 2.0
        _, (idx, p) = self.teacher(rows, vocab, k, tau)
        s = torch.randn(rows, vocab, dtype=torch.float32, generator=torch.Generator().manual_seed(SEED), requires_grad=True)
        loss = raft_distill(s, torch.from_numpy(idx), torch.from_numpy(p), temperature=tau) * 3.0
        loss.backward()
        tl, tg = torch_distill(s.detach().numpy(), idx, p, tau, "forward-kl", 0.5, np.ones(rows))
        self.assertClose(loss.item(), 3.0 * tl, 1e-5, "autograd.Function loss")
        self.assertClose(s.grad.numpy(), 3.0 * tg, 1e-5, "autograd.Function gradient")

    def test_bad_k_returns_status_and_message(self):
        t = np.zeros((2, 10), np.float32)
        with self.assertRaises(raft_kernels.RaftError) as e:
            raft_kernels.topk_softmax(t, 11)
        self.assertEqual(e.exception.status, 1)
        self.assertIn("k must be in 1..10", e.exception.message)
        self.assertIn("11", e.exception.message)
        s = np.zeros((2, 10), np.float32)
        with self.assertRaises(raft_kernels.RaftError) as e:
            raft_kernels.distill(s, np.zeros((2, 3), np.int32) + np.arange(3, dtype=np.int32), np.full((2, 3), 0.3, np.float32),
                                 kind=7)
        self.assertEqual(e.exception.status, 1)
        self.assertIn("Kind", e.exception.message)

    def test_non_finite_logit_status_names_the_row(self):
        t = np.zeros((3, 10), np.float32)
        t[1, 4] = np.nan
        with self.assertRaises(raft_kernels.RaftError) as e:
            raft_kernels.topk_softmax(t, 2)
        self.assertEqual(e.exception.status, 2)
        self.assertIn("row 1", e.exception.message)

    def test_last_error_is_thread_local(self):
        def fail():
            try:
                raft_kernels.topk_softmax(np.zeros((1, 4), np.float32), 0)
            except raft_kernels.RaftError:
                pass
        raft_kernels.topk_softmax(np.zeros((1, 4), np.float32), 1)
        th = threading.Thread(target=fail)
        th.start()
        th.join()
        self.assertEqual(raft_kernels._lib.raft_last_error(), b"")


if __name__ == "__main__":
    unittest.main()
