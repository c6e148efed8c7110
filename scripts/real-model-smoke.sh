#!/usr/bin/env bash
# README's "Bringing a real model" steps, run as a user would with the raft binary, on a random checkpoint with
# Qwen2.5-0.5B-Instruct's config (2 of its 24 layers; vocab_size 151,936 with padding rows beyond the tokenizer),
# bf16 weights and the real Qwen tokenizer: export-onnx -> refine (sampled, T=1) -> sft -> train (RAFT, ONNX teacher)
# -> export-gguf (bf16, read back) -> eval, at a real learning rate (1e-5); chat-template shows what the model is trained on.
# Checks every step's outputs. Called by .ci/run after the tests.
#
#   bash scripts/real-model-smoke.sh            # builds raft; RAFT=path/to/raft uses that binary instead
#
# Needs: the tokenizer files (tests/Raft.Model.Tests/fetch-tokenizers.sh) and /usr/bin/python3 with numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
tok="${RAFT_TOKENIZER_FILES:-$HOME/.cache/raft-tokenizers}"
py=/usr/bin/python3
[ -f "$tok/qwen2_5/tokenizer_config.json" ] || { echo "real-model-smoke: no Qwen2.5 tokenizer in $tok (run tests/Raft.Model.Tests/fetch-tokenizers.sh)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "${RAFT:-}" ]; then
  dotnet build src/Raft.Cli -c Release -o "$work/bin" -nologo -v q >/dev/null
  RAFT="$work/bin/raft"
fi
step() { local name="$1"; shift; local t0=$SECONDS
  echo "real-model-smoke: $name: raft $*" >&2
  "$RAFT" "$@" >"$work/$name.json" 2>"$work/$name.log" || { cat "$work/$name.log" >&2; echo "real-model-smoke: $name failed" >&2; exit 1; }
  echo "real-model-smoke: $name: $((SECONDS - t0)) s: $(tail -c 400 "$work/$name.json")" >&2; }

# Qwen2.5's own tokenizer files: tokenizer.json and tokenizer_config.json with its Jinja chat_template.
"$py" scripts/random_checkpoint.py --out "$work/base" --tokenizer "$tok/qwen2_5" --layers 2 >&2

cat >"$work/data.jsonl" <<'JSONL'
{"prompt": "What is 17 + 25?", "answer": "17 + 25 = 42. The answer is 42."}
{"prompt": "What is 9 times 8?", "answer": "9 × 8 = 72, so the answer is 72."}
{"prompt": "Subtract 13 from 50.", "answer": "50 − 13 = 37. The answer is 37."}
{"prompt": "What is half of 64?", "answer": "64 / 2 = 32. The answer is 32."}
JSONL
cat >"$work/eval.jsonl" <<'JSONL'
{"prompt": "What is 6 + 7?", "answer": "13", "extractor": "last_number"}
{"prompt": "Name a prime number greater than 10.", "answer": "11", "extractor": "last_number", "instructions": [{"kind": "lowercase"}]}
JSONL

common=(--threads 2)
printf '%s' '[{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "2 + 2 = 4."}]' >"$work/messages.json"
step template chat-template --model "$work/base" --messages "$work/messages.json"
step export export-onnx --model "$work/base" --out "$work/base-onnx"
step refine refine --teacher "$work/base-onnx" --tokenizer-from "$work/base" --data "$work/data.jsonl" --out "$work/refined.jsonl" \
  --candidates 2 --temperature 1.0 --max-new-tokens 24 --teacher-provider cpu "${common[@]}"
step sft sft --model "$work/base" --data "$work/refined.jsonl" --out "$work/sft" --steps 4 --batch-size 2 --learning-rate 1e-5 \
  --warmup-steps 1 --device cpu "${common[@]}"
step train train --model "$work/base" --teacher "$work/base-onnx" --teacher-provider cpu --data "$work/refined.jsonl" --out "$work/raft" \
  --steps 4 --batch-size 2 --learning-rate 1e-5 --warmup-steps 1 --rollout-max-tokens 16 --device cpu "${common[@]}"
step gguf export-gguf --model "$work/raft/final" --out "$work/raft.gguf" --dtype bf16
step eval eval --model "$work/raft/final" --set "$work/eval.jsonl" --out "$work/eval" --max-new-tokens 16 "${common[@]}"

"$py" - "$work" <<'PY'
import json, math, os, sys
w = sys.argv[1]
def fail(m): sys.exit(f"real-model-smoke: {m}")
def out(name): return json.loads(open(os.path.join(w, name + ".json")).read().strip().splitlines()[-1])
cfg = json.load(open(os.path.join(w, "base", "config.json")))
for d in ("base-onnx", "sft/final", "raft/final"):
    for f in ("tokenizer.json", "tokenizer_config.json") + (("chat_template.jinja",) if os.path.exists(os.path.join(w, "base", "chat_template.jinja")) else ()):
        a, b = open(os.path.join(w, "base", f), "rb").read(), open(os.path.join(w, d, f), "rb").read()
        if a != b: fail(f"{d}/{f} differs from the base's")
lines = [json.loads(l) for l in open(os.path.join(w, "refined.jsonl"))]
summary = json.load(open(os.path.join(w, "refined.jsonl.summary.json")))
if len(lines) != 4 or summary["examples"] != 4: fail(f"refine wrote {len(lines)} lines, summary {summary}")
for e in lines:
    if len(e["candidates"]) != 2 or e["fused_from"] not in ("rewrite", "reference"): fail(f"refined line {e}")
for run, method in (("sft", "sft"), ("raft", "raft")):
    o = out("train" if run == "raft" else "sft")
    if o["method"] != method or o["steps"] != 4: fail(f"{run}: {o}")
    metrics = [json.loads(l) for l in open(os.path.join(w, run, "metrics.jsonl"))]
    if len(metrics) != 4: fail(f"{run}: {len(metrics)} metrics lines")
    for m in metrics:
        if m.get("loss") is None or not all(math.isfinite(m[k]) for k in ("loss", "ce_loss", "kd_loss") if m.get(k) is not None):
            fail(f"{run}: non-finite or missing loss {m}")
        if run == "raft" and m.get("kd_loss") is None: fail(f"raft: no kd_loss in {m}")
    if json.load(open(os.path.join(w, run, "config.json"))).get("learning_rate") != 1e-5: fail(f"{run}: learning rate not 1e-5")
# The model's own template: Qwen2.5's default system prompt, and the mask covers the assistant turn only.
t = out("template")
if not t["text"].startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud."): fail(f"chat-template did not render Qwen2.5's template: {t['text']!r}")
if len(t["ids"]) != len(t["assistant_mask"]) or not 0 < sum(t["assistant_mask"]) < len(t["ids"]): fail(f"chat-template mask {t}")
for log in ("refine", "sft", "train", "eval"):
    text = open(os.path.join(w, log + ".log")).read()
    if "chat template: tokenizer_config.json of" not in text: fail(f"{log} did not use the model's own chat template:\n{text}")
# the fine-tuned model as GGUF, read back by a reader written here from the spec (little-endian v3)
import struct
g = open(os.path.join(w, "raft.gguf"), "rb").read()
if g[:4] != b"GGUF" or struct.unpack_from("<I", g, 4)[0] != 3: fail("raft.gguf: not GGUF v3")
n_tensors, n_kv = struct.unpack_from("<QQ", g, 8)
pos = 24
def rd(fmt):
    global pos
    v = struct.unpack_from("<" + fmt, g, pos); pos += struct.calcsize("<" + fmt); return v[0]
def rstr():
    global pos
    n = rd("Q"); s = g[pos:pos + n].decode("utf-8"); pos += n; return s
scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
def rval(t):
    if t == 8: return rstr()
    if t == 9:
        et, n = rd("I"), rd("Q"); return [rval(et) for _ in range(n)]
    return rd(scalar[t])
kv = {}
for _ in range(n_kv):
    k = rstr(); kv[k] = rval(rd("I"))
names = []
for _ in range(n_tensors):
    name = rstr(); dims = [rd("Q") for _ in range(rd("I"))]; typ = rd("I"); off = rd("Q"); names.append((name, dims, typ, off))
if kv["general.architecture"] != "qwen2" or len(kv["tokenizer.ggml.tokens"]) != cfg["vocab_size"]: fail(f"raft.gguf: {kv['general.architecture']}, {len(kv['tokenizer.ggml.tokens'])} tokens")
if kv["qwen2.block_count"] != cfg["num_hidden_layers"] or kv["qwen2.embedding_length"] != cfg["hidden_size"]: fail("raft.gguf: hyper-parameters")
emb = [t for t in names if t[0] == "token_embd.weight"]
if not emb or emb[0][1] != [cfg["hidden_size"], cfg["vocab_size"]] or emb[0][2] != 30: fail(f"raft.gguf: token_embd {emb}")
data = (pos + 31) // 32 * 32
if data + max(o + (4 if t == 0 else 2) * math.prod(d) for _, d, t, o in names) > len(g): fail("raft.gguf: truncated")
report = json.load(open(os.path.join(w, "eval", "report.json")))
s = report["sets"][0]
if s["n"] != 2: fail(f"eval: {s}")
print(json.dumps({"vocab_size": cfg["vocab_size"], "gguf_tensors": len(names), "refine": {k: summary[k] for k in summary if isinstance(summary[k], (int, float))},
                  "sft_loss": [out("sft")["final_loss"]], "raft_loss": [out("train")["final_loss"]], "eval": s}))
PY
echo "real-model-smoke: passed" >&2
