#!/usr/bin/env python3
"""PyTorch eager baseline for raft-gpubench: the same ops, shapes and table columns on the same GPU.

Ops (fp32, one CUDA device, timed with torch.cuda.Event pairs around each call, median of --reps after --warmup):
  copy                      dst.copy_(src) of one [rows, V] tensor
  top-K softmax             v, i = torch.topk(t, K, dim=-1); p = softmax(v / tau)
  fused KD fwd-KL in place  s = student.detach().requires_grad_(); log q = log_softmax(s / tau);
                            loss = tau^2 * sum p (log p - gather(log q, i)) / rows; loss.backward()
                            (autograd: not in place; the gradient lands in s.grad)
Bytes: rows*V*4 read + rows*V*4 written (top-K: rows*V*4 read + rows*K*8 written), as raft-gpubench counts them.
Needs only torch. Exit codes: 0 ok, 3 no CUDA device.
"""
import argparse
import statistics
import sys

import torch


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="rows 1024, V 32000, K 64")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--k", type=int)
    ap.add_argument("--tau", type=float, default=2.0)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--out", help="also write the markdown table to this file")
    a = ap.parse_args()
    rows, vocab, k = (1024, 32000, 64) if a.small else (16384, 151936, 64)
    a.rows = a.rows or rows
    a.vocab = a.vocab or vocab
    a.k = a.k or k
    return a


def time_op(call, before, warmup, reps):
    for _ in range(warmup):
        before()
        call()
    torch.cuda.synchronize()
    ms = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(reps):
        before()
        start.record()
        call()
        end.record()
        end.synchronize()
        ms.append(start.elapsed_time(end))
    return ms


def main():
    a = parse()
    if not torch.cuda.is_available():
        print("torch_baseline: no CUDA device: torch.cuda.is_available() is False", file=sys.stderr)
        return 3
    dev = torch.device("cuda")
    torch.manual_seed(a.seed)
    rows, vocab, k, tau = a.rows, a.vocab, a.k, a.tau
    n = rows * vocab
    rw_bytes = 2.0 * n * 4
    topk_bytes = n * 4.0 + rows * k * 8.0
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    say(f"# torch_baseline: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    say(f"shapes: rows {rows:,}, V {vocab:,}, K {k}, tau {tau}, one [rows, V] fp32 tensor = {n * 4 / 1e9:.2f} GB; "
        f"warm-up {a.warmup}, median of {a.reps}")
    say()
    results = []  # (op, impl, median, min, bytes, note)

    def record(op, ms, nbytes, note):
        results.append((op, "torch eager", statistics.median(ms), min(ms), nbytes, note))

    def failed(op, nbytes, e):
        results.append((op, "torch eager", float("nan"), float("nan"), nbytes, f"did not run: {type(e).__name__}: {str(e).splitlines()[0][:120]}"))
        torch.cuda.empty_cache()

    teacher = torch.randn(rows, vocab, device=dev) * 3.0
    try:
        dst = torch.empty_like(teacher)
        record("copy", time_op(lambda: dst.copy_(teacher), lambda: None, a.warmup, a.reps), rw_bytes, "dst.copy_(src)")
        del dst
    except torch.OutOfMemoryError as e:
        failed("copy", rw_bytes, e)

    out = {}

    def topk():
        v, i = torch.topk(teacher, k, dim=-1)
        out["p"], out["i"] = torch.softmax(v / tau, dim=-1), i

    try:
        record("top-K softmax", time_op(topk, lambda: None, a.warmup, a.reps), topk_bytes, "topk + softmax")
    except torch.OutOfMemoryError as e:
        failed("top-K softmax", topk_bytes, e)
        topk_fallback = torch.topk(teacher[:1], k, dim=-1)  # keep going with something valid
        out["i"] = topk_fallback[1].expand(rows, k).contiguous()
        out["p"] = torch.softmax(topk_fallback[0] / tau, -1).expand(rows, k).contiguous()
    del teacher
    torch.cuda.empty_cache()

    idx, p = out["i"], out["p"]
    logp = torch.log(p)
    student = torch.randn(rows, vocab, device=dev) * 3.0
    box = {}

    def kd():
        s = student.detach().requires_grad_()
        logq = torch.log_softmax(s / tau, dim=-1)
        loss = tau * tau * (p * (logp - torch.gather(logq, 1, idx))).sum() / rows
        loss.backward()
        box["g"] = s.grad

    def before():
        box.clear()

    try:
        record("fused KD fwd-KL in place", time_op(kd, before, a.warmup, a.reps), rw_bytes,
               "log_softmax + gather + KL + backward (autograd, not in place)")
    except torch.OutOfMemoryError as e:
        failed("fused KD fwd-KL in place", rw_bytes, e)
    say("## Timings (PyTorch eager)")
    say()
    say("| op | implementation | median ms | min ms | GB/s | % of copy | note |")
    say("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    copy = next((r for r in results if r[0] == "copy" and r[2] == r[2]), None)
    for op, impl, med, mn, nbytes, note in results:
        if med == med:
            gbs = nbytes / (med * 1e-3) / 1e9
            pct = f"{100 * gbs / (copy[4] / (copy[2] * 1e-3) / 1e9):.1f}" if copy else "—"
            say(f"| {op} | {impl} | {med:.3f} | {mn:.3f} | {gbs:.1f} | {pct} | {note} |")
        else:
            say(f"| {op} | {impl} | — | — | — | — | {note} |")
    say(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 1e9:.1f} GB")
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
