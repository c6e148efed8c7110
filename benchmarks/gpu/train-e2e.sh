#!/usr/bin/env bash
# The real `raft sft` binary on the lent GPU machine: the same run with the student on the CPU (all cores) and on the
# GPU (--device cuda: GpuLlamaModel on ILGPU), from models/demo-base, on the same generated data; prints the
# median tokens/s of each (metrics.jsonl, first 3 steps left out) and the final losses.
#   benchmarks/gpu/train-e2e.sh                 (here, with .NET) publish artifacts/raft-gpu/raft (self-contained)
#   benchmarks/gpu/train-e2e.sh --device-side   (there) run both; carry ["artifacts/raft-gpu"]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PUB="$ROOT/artifacts/raft-gpu"
if [[ "${1:-}" != "--device-side" ]]; then
  cd "$ROOT"; rm -rf "$PUB"
  dotnet publish src/Raft.Cli -c Release -p:RaftGpuPublish=true --artifacts-path "${RAFT_GPU_ARTIFACTS:-/tmp/art-raft-pub}" -o "$PUB" >/dev/null
  ls -l "$PUB"; du -cb "$PUB" | tail -1
  exit 0
fi
shift
export DOTNET_BUNDLE_EXTRACT_BASE_DIR=/tmp/raft-extract
if [[ -z "${CUDA_PATH:-}" ]]; then for d in /usr/local/cuda /usr/local/cuda-13*; do [[ -d "$d/nvvm" ]] && { export CUDA_PATH="$d"; break; }; done; fi
W=/tmp/raft-e2e; rm -rf "$W"; mkdir -p "$W"
# 256 examples in the demo's house style (any text does for timing)
for i in $(seq 1 256); do n=$((i * 7919 % 100000)); echo "{\"prompt\":\"Flip $n\",\"answer\":\"The answer is $(echo $n | rev).\"}"; done > "$W/data.jsonl"
STEPS=${STEPS:-60}
for dev in cpu cuda; do
  "$PUB/raft" sft --model "$ROOT/models/demo-base" --data "$W/data.jsonl" --out "$W/$dev" --steps "$STEPS" --batch-size 64 \
    --device "$dev" "$@" > "$W/$dev.json" 2> "$W/$dev.log" || { echo "$dev failed:"; tail -20 "$W/$dev.log"; }
  cat "$W/$dev.json"
done
python3 - "$W" <<'PY'
import json, sys, statistics, os
w = sys.argv[1]
rows = {}
for dev in ("cpu", "cuda"):
    p = os.path.join(w, dev, "metrics.jsonl")
    if not os.path.exists(p): continue
    m = [json.loads(l) for l in open(p)]
    tps = statistics.median(x["tokens_per_s"] for x in m[3:])
    rows[dev] = (tps, m[-1]["sft_loss"], statistics.median(x["train_s"] for x in m[3:]) if "train_s" in m[0] else float("nan"))
print("\n| student | median tokens/s | median train s/step | final sft_loss |\n| --- | ---: | ---: | ---: |")
for dev, (tps, loss, ts) in rows.items(): print(f"| {dev} | {tps:,.0f} | {ts:.4f} | {loss:.4f} |")
if len(rows) == 2: print(f"\nspeed-up (tokens/s, cuda / cpu): {rows['cuda'][0] / rows['cpu'][0]:.1f}x")
PY
