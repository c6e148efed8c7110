#!/usr/bin/env python3
"""Writes a random Hugging Face checkpoint with a real model's shapes, config and tokenizer (no weights can be
downloaded here): config.json, model.safetensors (bf16 by default, as the real ones are), the tokenizer files of
--tokenizer and, with --chat-template, chat_template.jinja. Used by scripts/real-model-smoke.sh.

    /usr/bin/python3 scripts/random_checkpoint.py --out /tmp/qwen --tokenizer ~/.cache/raft-tokenizers/qwen3 --layers 2

The folder is written beside --out and renamed into place when complete; an existing --out is refused.
Needs numpy only.
"""
import argparse, json, os, shutil, struct, sys, tempfile
import numpy as np

# Qwen2.5-0.5B-Instruct's config.json (494,032,768 parameters at 24 layers).
PRESETS = {
    "qwen2.5-0.5b": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
        "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 32768,
        "max_window_layers": 21, "attention_dropout": 0.0, "initializer_range": 0.02, "bos_token_id": 151643,
        "eos_token_id": 151645, "torch_dtype": "bfloat16", "use_cache": True,
    },
}

def fail(msg):
    print(f"random_checkpoint: {msg}", file=sys.stderr)
    sys.exit(2)

def tensors(cfg, rng):
    h, i, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["hidden_size"] // cfg["num_attention_heads"]
    q, kv, std = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["initializer_range"]
    normal = lambda *shape: rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    yield "model.embed_tokens.weight", normal(cfg["vocab_size"], h)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", 1 + normal(h)
        for name, rows in (("q", q), ("k", kv), ("v", kv)):
            yield p + f"self_attn.{name}_proj.weight", normal(rows, h)
            yield p + f"self_attn.{name}_proj.bias", normal(rows)
        yield p + "self_attn.o_proj.weight", normal(h, q)
        yield p + "post_attention_layernorm.weight", 1 + normal(h)
        yield p + "mlp.gate_proj.weight", normal(i, h)
        yield p + "mlp.up_proj.weight", normal(i, h)
        yield p + "mlp.down_proj.weight", normal(h, i)
    yield "model.norm.weight", 1 + normal(h)
    if not cfg["tie_word_embeddings"]:
        yield "lm_head.weight", normal(cfg["vocab_size"], h)

def to_bf16(a):
    """Round-to-nearest-even float32 -> bfloat16 bits (uint16), as torch's .to(torch.bfloat16) does for finite values."""
    u = a.astype(np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> 16) & 1)) >> 16).astype(np.uint16)

def write_safetensors(path, named, dtype):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in named:
        data = (to_bf16(a) if dtype == "BF16" else a.astype(np.float32)).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the checkpoint folder to create (must not exist)")
    ap.add_argument("--preset", default="qwen2.5-0.5b", choices=sorted(PRESETS))
    ap.add_argument("--layers", type=int, default=None, help="decoder layers (default: the preset's)")
    ap.add_argument("--tokenizer", required=True, help="a folder with tokenizer.json and tokenizer_config.json")
    ap.add_argument("--chat-template", default=None, help="a chat_template.jinja to ship beside the tokenizer")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    cfg = dict(PRESETS[a.preset])
    if a.layers is not None:
        if a.layers < 1: fail(f"--layers must be >= 1, got {a.layers}")
        cfg["num_hidden_layers"] = a.layers
        cfg["max_window_layers"] = min(cfg["max_window_layers"], a.layers)
    cfg["torch_dtype"] = "bfloat16" if a.dtype == "bf16" else "float32"
    out = os.path.abspath(a.out)
    if os.path.exists(out): fail(f"--out {a.out} exists; refusing to write over it")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if not os.path.isfile(os.path.join(a.tokenizer, f)): fail(f"--tokenizer {a.tokenizer} has no {f}")
    if a.chat_template is not None and not os.path.isfile(a.chat_template): fail(f"--chat-template {a.chat_template} does not exist")
    tok_real = os.path.realpath(a.tokenizer)
    if out == tok_real or out.startswith(tok_real + os.sep): fail(f"--out {a.out} is inside --tokenizer {a.tokenizer}")

    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=os.path.basename(out) + ".", suffix=".part", dir=parent)
    try:
        rng = np.random.default_rng(a.seed)
        named = list(tensors(cfg, rng))
        write_safetensors(os.path.join(staging, "model.safetensors"), named, "BF16" if a.dtype == "bf16" else "F32")
        with open(os.path.join(staging, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        for f in os.listdir(a.tokenizer):
            if f.startswith("tokenizer") or f in ("vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json", "generation_config.json"):
                shutil.copyfile(os.path.join(a.tokenizer, f), os.path.join(staging, f))
        if a.chat_template is not None:
            shutil.copyfile(a.chat_template, os.path.join(staging, "chat_template.jinja"))
        os.chmod(staging, 0o755)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    n = sum(t.size for _, t in named)
    print(json.dumps({"out": out, "preset": a.preset, "layers": cfg["num_hidden_layers"], "parameters": int(n), "dtype": a.dtype}))

if __name__ == "__main__":
    main()
