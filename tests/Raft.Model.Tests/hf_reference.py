"""An independent oracle for the engine's decoder: Hugging Face transformers' forward for the llama, mistral, qwen2
and qwen3 families, written from the transformers source's formulas in plain PyTorch (transformers itself is not
needed), float32 as transformers runs a float32 checkpoint: RMSNorm in fp32, RoPE angles in fp32 (inv_freq @ positions),
cos/sin times the rope's attention scaling, eager attention with the causal (and sliding-window) mask, SwiGLU.

Usage: hf_reference.py cases.json
cases.json: [{"dir": checkpoint folder (config.json + model.safetensors, F32), "ids": [[...], ...] (B×S),
              "positions": [[...], ...] (B×S), "out": path}] — writes the logits [B, S, V] as little-endian float32 to "out".
Prints one JSON line per case: {"out": path, "rope_type": ..., "attention_scaling": ..., "windows": [...]}.
"""
import json
import math
import struct
import sys

import numpy as np
import torch


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{name}: dtype {info['dtype']} (the oracle reads F32 only)")
        a, b = info["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").copy().reshape(info["shape"]))
    return tensors


def head_dim_of(cfg):
    if cfg.get("head_dim") is not None:
        return cfg["head_dim"]
    if cfg["model_type"] == "qwen3":
        return 128  # Qwen3Config's default
    return cfg["hidden_size"] // cfg["num_attention_heads"]


def rope_init(cfg, seq_len):
    """(inv_freq fp32 [d/2], attention_scaling) as modeling_rope_utils (transformers 5) computes them."""
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    rope_type = rs.get("rope_type", rs.get("type", "default"))
    base = rs.get("rope_theta") or cfg.get("rope_theta", 10000.0)
    dim = head_dim_of(cfg)
    max_pos = cfg.get("max_position_embeddings", 2048)
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim

    def plain(b):
        return 1.0 / (b ** exponents)

    if rope_type == "default":
        return plain(base), 1.0
    if rope_type == "linear":
        return plain(base) / rs["factor"], 1.0
    if rope_type == "dynamic":
        factor = rs["factor"]
        s = max(seq_len, max_pos)
        b = base * ((factor * s / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        return plain(b), 1.0
    if rope_type == "llama3":
        inv = plain(base)
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled), 1.0
    if rope_type == "yarn":
        orig = rs.get("original_max_position_embeddings") or max_pos
        factor = rs.get("factor")
        if factor is None:
            factor = max_pos / orig

        def mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        att = rs.get("attention_factor")
        if att is None:
            if rs.get("mscale") and rs.get("mscale_all_dim"):
                att = float(mscale(factor, rs["mscale"]) / mscale(factor, rs["mscale_all_dim"]))
            else:
                att = mscale(factor)
        beta_fast = rs.get("beta_fast") or 32
        beta_slow = rs.get("beta_slow") or 1

        def correction_dim(rot):
            return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

        lo, hi = correction_dim(beta_fast), correction_dim(beta_slow)
        if rs.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - lo) / (hi - lo), 0, 1)
        pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
        extrapolation, interpolation = 1.0 / pos_freqs, 1.0 / (factor * pos_freqs)
        keep = 1 - ramp
        return interpolation * (1 - keep) + extrapolation * keep, att
    raise ValueError(f"rope_type {rope_type} is not in the oracle")


def rms_norm(x, w, eps):
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def windows_of(cfg):
    t, layers = cfg["model_type"], cfg["num_hidden_layers"]
    if t == "mistral":
        return [cfg.get("sliding_window", 4096)] * layers
    if t in ("qwen2", "qwen3"):
        window = (cfg.get("sliding_window") or 4096) if cfg.get("use_sliding_window") else None
        types = cfg.get("layer_types") or [
            "sliding_attention" if window is not None and i >= cfg.get("max_window_layers", 28) else "full_attention"
            for i in range(layers)]
        return [window if types[i] == "sliding_attention" else None for i in range(layers)]
    return [None] * layers


def forward(folder, ids, positions):
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    w = load_safetensors(f"{folder}/model.safetensors")
    used = set()

    def P(name):
        used.add(name)
        return w[name]

    t = cfg["model_type"]
    if t == "raft":
        t = "llama"
    attention_bias = bool(cfg.get("attention_bias", False))
    qkv_bias = t == "qwen2" or (t in ("llama", "qwen3") and attention_bias)
    o_bias = t in ("llama", "qwen3") and attention_bias
    mlp_bias = t == "llama" and bool(cfg.get("mlp_bias", False))
    qk_norm = t == "qwen3"
    H, KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    hd, eps = head_dim_of(cfg), cfg.get("rms_norm_eps", 1e-6)
    ids = torch.tensor(ids, dtype=torch.int64)
    pos = torch.tensor(positions, dtype=torch.int64)
    B, S = ids.shape

    inv, scale = rope_init(cfg, int(pos.max()) + 1)
    freqs = (inv[None, :, None].float() @ pos[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = (emb.cos() * scale)[:, None], (emb.sin() * scale)[:, None]   # [B, 1, S, hd]

    def linear(x, name, bias):
        y = x @ P(name + ".weight").T
        return y + P(name + ".bias") if bias else y

    x = P("model.embed_tokens.weight")[ids]
    q_idx = torch.arange(S)[:, None]
    kv_idx = torch.arange(S)[None, :]
    windows = windows_of(cfg)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, P(p + "input_layernorm.weight"), eps)
        q = linear(h, p + "self_attn.q_proj", qkv_bias).view(B, S, H, hd)
        k = linear(h, p + "self_attn.k_proj", qkv_bias).view(B, S, KV, hd)
        v = linear(h, p + "self_attn.v_proj", qkv_bias).view(B, S, KV, hd).transpose(1, 2)
        if qk_norm:
            q = rms_norm(q, P(p + "self_attn.q_norm.weight"), eps)
            k = rms_norm(k, P(p + "self_attn.k_norm.weight"), eps)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        allowed = kv_idx <= q_idx
        if windows[l] is not None:
            allowed = allowed & (kv_idx > q_idx - windows[l])
        scores = (q @ k.transpose(2, 3)) / math.sqrt(hd)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        att = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype) @ v
        att = att.transpose(1, 2).reshape(B, S, H * hd)
        x = x + linear(att, p + "self_attn.o_proj", o_bias)
        h = rms_norm(x, P(p + "post_attention_layernorm.weight"), eps)
        g = linear(h, p + "mlp.gate_proj", mlp_bias)
        u = linear(h, p + "mlp.up_proj", mlp_bias)
        x = x + linear(torch.nn.functional.silu(g) * u, p + "mlp.down_proj", mlp_bias)
    x = rms_norm(x, P("model.norm.weight"), eps)
    head = "model.embed_tokens.weight" if cfg.get("tie_word_embeddings", False) else "lm_head.weight"
    logits = x @ P(head).T
    unused = sorted(set(w) - used)
    if unused:
        raise ValueError(f"tensors the {t} forward does not read: {unused}")
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    return logits, {"rope_type": rs.get("rope_type", rs.get("type", "default")), "attention_scaling": scale, "windows": windows}


def main():
    torch.set_grad_enabled(False)
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    for case in cases:
        logits, info = forward(case["dir"], case["ids"], case["positions"])
        logits.to(torch.float32).numpy().astype("<f4").tofile(case["out"])
        print(json.dumps({"out": case["out"], **info}))


if __name__ == "__main__":
    main()
