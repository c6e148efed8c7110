"""Python bindings (ctypes + NumPy only) of Raft.Engine's loss kernels, libraft_kernels.so (include/raft_kernels.h).

The library is found through $RAFT_KERNELS_LIB, then beside this file, then on the loader's search path. Build it with
``dotnet publish src/Raft.Kernels.Native -c Release -r linux-x64 -o python/raft_kernels``.

Every function takes NumPy arrays (float32 logits, int32 indices; other dtypes and non-contiguous arrays are
converted), checks nothing itself beyond shapes it needs to allocate outputs, and raises RaftError (with the
library's status code and message) when the library rejects a call.
"""
import ctypes
import os

import numpy as np

__all__ = ["RaftError", "LossResult", "topk_softmax", "distill", "cross_entropy", "EmaBalancer",
           "FORWARD_KL", "REVERSE_KL", "JSD", "abi_version", "kernels_name", "set_num_threads"]

ABI_VERSION = 1
FORWARD_KL, REVERSE_KL, JSD = 0, 1, 2
_KINDS = {"forward-kl": FORWARD_KL, "reverse-kl": REVERSE_KL, "jsd": JSD}
_STATUS = {1: "invalid argument", 2: "non-finite logit", 3: "out of memory", 4: "internal error"}


class RaftError(RuntimeError):
    """A call rejected by libraft_kernels: ``status`` is the raft_status code, ``message`` raft_last_error()."""

    def __init__(self, status, message):
        super().__init__(f"{_STATUS.get(status, 'status')} ({status}): {message}")
        self.status = status
        self.message = message


class LossResult(ctypes.Structure):
    """raft_loss_result: loss = loss_sum / normalizer."""
    _fields_ = [("loss", ctypes.c_double), ("loss_sum", ctypes.c_double),
                ("weight_sum", ctypes.c_double), ("normalizer", ctypes.c_double)]


def _load():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libraft_kernels.so")
    for path in (os.environ.get("RAFT_KERNELS_LIB"), here, "libraft_kernels.so"):
        if path and (path == "libraft_kernels.so" or os.path.exists(path)):
            try:
                return ctypes.CDLL(path)
            except OSError:
                if path != "libraft_kernels.so":
                    raise
    raise OSError("libraft_kernels.so not found: set RAFT_KERNELS_LIB or publish it beside raft_kernels/__init__.py "
                  "(dotnet publish src/Raft.Kernels.Native -c Release -r linux-x64 -o python/raft_kernels)")


_lib = _load()
_f32p, _i32p, _f64p = (ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_double))
_ci32, _cf32, _cf64 = ctypes.c_int32, ctypes.c_float, ctypes.c_double
_lib.raft_abi_version.restype = _ci32
_lib.raft_last_error.restype = ctypes.c_char_p
_lib.raft_kernels_name.restype = ctypes.c_char_p
_lib.raft_set_num_threads.argtypes = [_ci32]
_lib.raft_topk_softmax.argtypes = [_f32p, _ci32, _ci32, _ci32, _cf32, _i32p, _f32p]
_lib.raft_distill.argtypes = [_f32p, _ci32, _ci32, _i32p, _f32p, _ci32, _cf32, _ci32, _cf32, _f32p, _f32p, _cf32,
                              ctypes.POINTER(LossResult)]
_lib.raft_cross_entropy.argtypes = [_f32p, _ci32, _ci32, _i32p, _f32p, _ci32, _cf32, _cf32, ctypes.POINTER(LossResult)]
_lib.raft_ema_balancer_step.argtypes = [_ci32, _cf64, _f64p, _f64p, ctypes.POINTER(ctypes.c_int64), _f64p, _f64p]
for _name in ("raft_topk_softmax", "raft_distill", "raft_cross_entropy", "raft_ema_balancer_step", "raft_set_num_threads"):
    getattr(_lib, _name).restype = _ci32
if _lib.raft_abi_version() != ABI_VERSION:
    raise OSError(f"libraft_kernels.so has ABI version {_lib.raft_abi_version()}, these bindings need {ABI_VERSION}")


def _check(status):
    if status != 0:
        raise RaftError(status, _lib.raft_last_error().decode("utf-8"))


def _ptr(a, ctype):
    return None if a is None else a.ctypes.data_as(ctypes.POINTER(ctype))


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _i32(a):
    return np.ascontiguousarray(a, dtype=np.int32)


def _rows(a, name):
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [rows, vocab], got shape {a.shape}")
    return a.shape


def abi_version():
    """The library's RAFT_ABI_VERSION."""
    return _lib.raft_abi_version()


def kernels_name():
    """The kernels in use, e.g. 'cpu-vector256'."""
    return _lib.raft_kernels_name().decode()


def set_num_threads(n):
    """Threads over rows for later calls (0: all cores)."""
    _check(_lib.raft_set_num_threads(int(n)))


def topk_softmax(teacher_logits, k, temperature=1.0):
    """Top-K temperature softmax: [rows, vocab] -> (indices int32 [rows, k], probs float32 [rows, k])."""
    t = _f32(teacher_logits)
    rows, vocab = _rows(t, "teacher_logits")
    kk = max(int(k), 0)
    idx = np.empty((rows, kk), np.int32)
    p = np.empty((rows, kk), np.float32)
    _check(_lib.raft_topk_softmax(_ptr(t, ctypes.c_float), rows, vocab, int(k), float(temperature),
                                  _ptr(idx, ctypes.c_int32), _ptr(p, ctypes.c_float)))
    return idx, p


def distill(student_logits, teacher_indices, teacher_probs, temperature=1.0, kind="forward-kl", beta=0.5,
            row_weights=None, normalizer=0.0, gradient=True):
    """Fused top-K distillation loss (times temperature^2) and its gradient.

    kind: 'forward-kl', 'reverse-kl', 'jsd' (or 0/1/2). Returns (LossResult, gradient float32 [rows, vocab] or None).
    """
    s = _f32(student_logits)
    rows, vocab = _rows(s, "student_logits")
    idx, p = _i32(teacher_indices), _f32(teacher_probs)
    if idx.ndim != 2 or p.shape != idx.shape or idx.shape[0] != rows:
        raise ValueError(f"teacher_indices and teacher_probs must both be [rows={rows}, k], got {idx.shape} and {p.shape}")
    w = None if row_weights is None else _f32(row_weights)
    g = np.empty_like(s) if gradient else None
    result = LossResult()
    _check(_lib.raft_distill(_ptr(s, ctypes.c_float), rows, vocab, _ptr(idx, ctypes.c_int32), _ptr(p, ctypes.c_float),
                             idx.shape[1], float(temperature), _KINDS.get(kind, kind), float(beta),
                             _ptr(w, ctypes.c_float), _ptr(g, ctypes.c_float), float(normalizer), ctypes.byref(result)))
    return result, g


def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, normalizer=0.0, gradient=True):
    """Cross-entropy with label smoothing (PyTorch's convention). Returns (LossResult, gradient or None)."""
    s = _f32(logits)
    rows, vocab = _rows(s, "logits")
    t = _i32(targets)
    if t.shape != (rows,):
        raise ValueError(f"targets must be [rows={rows}], got {t.shape}")
    g = np.empty_like(s) if gradient else None
    result = LossResult()
    _check(_lib.raft_cross_entropy(_ptr(s, ctypes.c_float), rows, vocab, _ptr(t, ctypes.c_int32),
                                   _ptr(g, ctypes.c_float), int(ignore_index), float(label_smoothing),
                                   float(normalizer), ctypes.byref(result)))
    return result, g


class EmaBalancer:
    """The EMA loss balancer (state held here, updated by the library): step(losses) -> weights."""

    def __init__(self, decay, target_ratio):
        self.decay = float(decay)
        self.target_ratio = np.ascontiguousarray(target_ratio, dtype=np.float64)
        self.ema = np.zeros_like(self.target_ratio)
        self.steps = ctypes.c_int64(0)

    def step(self, losses):
        """Feeds one step's loss values (one per term) and returns the weights (float64) to apply to them."""
        losses = np.ascontiguousarray(losses, dtype=np.float64)
        n = len(self.target_ratio)
        if losses.shape != (n,):
            raise ValueError(f"losses must have {n} values (one per term), got shape {losses.shape}")
        w = np.empty(n, np.float64)
        _check(_lib.raft_ema_balancer_step(n, self.decay, _ptr(self.target_ratio, ctypes.c_double),
                                           _ptr(self.ema, ctypes.c_double), ctypes.byref(self.steps),
                                           _ptr(losses, ctypes.c_double), _ptr(w, ctypes.c_double)))
        return w
