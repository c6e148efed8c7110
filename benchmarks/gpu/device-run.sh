#!/usr/bin/env bash
# Everything issue #6 measures, in one call on the lent GPU machine (no .NET there; carry artifacts/gpubench):
#   1. the GPU-only xunit tests (raft-gpubench --gpu-tests)
#   2. the main benchmark: correctness, CUDA C / zero-copy / ILGPU timings, PyTorch eager baseline, ratios
#   3. the kernel lab at V 151,936 and V 32,000 (every variant side by side)
#   4. the training step of the demo model: GPU (ILGPU) vs the CPU path on the same machine
# Logs go to $OUT/gpu-run.tgz (the device tool brings it back) and the summary to stdout.
# Usage (device tool): command "benchmarks/gpu/device-run.sh", carry ["artifacts/gpubench"], timeout_s 460 (the steps
# have their own limits, 435 s in all).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="$ROOT/benchmarks/gpu/run.sh"
LOGS=/tmp/raft-gpu-run
rm -rf "$LOGS"; mkdir -p "$LOGS"
# step NAME SECONDS command…: each step has its own time limit, so that one that hangs leaves the others' results
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout -k 5 "$limit" "$@" > "$LOGS/$name.log" 2>&1; local rc=$?; echo "== $name: rc=$rc ($((SECONDS - t0)) s)"; return 0; }

step gpu-tests 120 "$RUN" --device-side --gpu-tests
step train-step 120 "$RUN" --device-side --train-step
step main 120 env OUT="$LOGS/main" "$RUN" --device-side
step lab 45 "$RUN" --device-side --lab
step lab32k 30 "$RUN" --device-side --lab --rows 16384 --vocab 32000 --k 64

tar czf "${OUT:-/tmp}/gpu-run.tgz" -C "$LOGS" .
echo
grep -E "FAIL|passed, " "$LOGS/gpu-tests.log" | tail -15
sed -n '/## Ratios/,$p' "$LOGS/main.log" 2>/dev/null | head -20
grep -E "^\| (copy|top|fused)" "$LOGS/lab.log" "$LOGS/lab32k.log" | cut -c1-160
tail -25 "$LOGS/train-step.log"
