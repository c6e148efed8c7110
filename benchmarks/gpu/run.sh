#!/usr/bin/env bash
# raft-gpubench driver.
#   benchmarks/gpu/run.sh                 (here, with .NET) publish the self-contained single-file binary into
#                                         artifacts/gpubench/ (git-ignored) and print its size
#   benchmarks/gpu/run.sh --device-side --gpu-tests [filter]   the GPU-only xunit tests (GpuTestRunner)
#   benchmarks/gpu/run.sh --device-side --lab [shape flags]     every kernel variant timed side by side (KernelLab)
#   benchmarks/gpu/run.sh --device-side [raft-gpubench flags…]
#                                         (on the GPU machine: no .NET needed) run the published binary, then the
#                                         PyTorch baseline with the same shapes, and print both tables plus ratios
# Reports go to $OUT when it is set (the device tool's return folder), else to artifacts/gpubench-results/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PUB="$ROOT/artifacts/gpubench"
BIN="$PUB/raft-gpubench"

if [[ "${1:-}" != "--device-side" ]]; then
  cd "$ROOT"
  rm -rf "$PUB"
  # self-contained single file, linux-x64: set in Raft.GpuBench.csproj under RaftGpuPublish (see the comment there)
  dotnet publish benchmarks/Raft.GpuBench -c Release -p:RaftGpuPublish=true \
    --artifacts-path "${RAFT_GPUBENCH_ARTIFACTS:-/tmp/art-gpub-pub}" -o "$PUB"
  bytes=$(du -cb "$PUB" | tail -1 | cut -f1)
  echo "published: $PUB"
  ls -l "$PUB"
  echo "size: $bytes bytes ($(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1048576}') MiB; the device tool carries at most 64 MiB in all)"
  if (( bytes > 60 * 1048576 )); then echo "too large to carry" >&2; exit 1; fi
  exit 0
fi

shift
cd "$ROOT"
RES="${OUT:-$ROOT/artifacts/gpubench-results}"
mkdir -p "$RES"
[[ -x "$BIN" ]] || { echo "no published binary at $BIN: run benchmarks/gpu/run.sh here first and carry artifacts/gpubench" >&2; exit 2; }
# ILGPU finds libdevice/NVVM through CUDA_PATH; the single-file bundle extracts its native parts here.
if [[ -z "${CUDA_PATH:-}" ]]; then
  for d in /usr/local/cuda /usr/local/cuda-13* /usr/local/cuda-12*; do [[ -d "$d/nvvm" ]] && { export CUDA_PATH="$d"; break; }; done
fi
# NVRTC: Raft.Cuda probes the loader path, CUDA_HOME/CUDA_PATH and /usr/local/cuda/lib64; else look for one
if [[ -z "${RAFT_NVRTC_LIBRARY:-}" && ! -e "${CUDA_PATH:-/usr/local/cuda}/lib64/libnvrtc.so.13" ]]; then
  nvrtc=$(find /usr/local /opt /usr/lib -name 'libnvrtc.so.1[0-9]*' 2>/dev/null | grep -v builtins | sort -r | head -1 || true)
  [[ -n "$nvrtc" ]] && export RAFT_NVRTC_LIBRARY="$nvrtc"
fi
export DOTNET_BUNDLE_EXTRACT_BASE_DIR="${DOTNET_BUNDLE_EXTRACT_BASE_DIR:-/tmp/raft-gpubench-extract}"
export RAFT_PTX_CACHE_DIR="${RAFT_PTX_CACHE_DIR:-/tmp/raft-gpubench-ptx}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>/dev/null || true
echo "CUDA_PATH=${CUDA_PATH:-<unset>} RAFT_NVRTC_LIBRARY=${RAFT_NVRTC_LIBRARY:-<probed>}"

# --gpu-tests [filter] / --lab [shape flags]: the GPU-only xunit tests, or the kernel lab; no PyTorch baseline
case "${1:-}" in
  --gpu-tests|--lab|--train-step) exec "$BIN" "$@" ;;
esac

# torch gets the same shape flags; the others are raft-gpubench's own
TORCH_ARGS=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --small) TORCH_ARGS+=(--small) ;;
    --rows|--vocab|--k|--tau|--warmup|--reps|--seed) TORCH_ARGS+=("${args[i]}" "${args[i+1]}"); i=$((i + 1)) ;;
  esac
done

set +e
"$BIN" "$@" --out "$RES/raft.md" 2>&1 | tee "$RES/raft.log"
raft_rc=${PIPESTATUS[0]}
# --train-step times whole training steps (CPU vs GPU in one binary): no PyTorch loss-kernel baseline to add
if [[ " $* " == *" --train-step "* ]]; then set -e; exit $raft_rc; fi
PYTHONUNBUFFERED=1 python3 "$ROOT/benchmarks/gpu/torch_baseline.py" "${TORCH_ARGS[@]}" --out "$RES/torch.md" 2>&1 | tee "$RES/torch.log"
torch_rc=${PIPESTATUS[0]}
set -e

echo
echo "================ summary (raft rc=$raft_rc, torch rc=$torch_rc) ================"
[[ -f "$RES/raft.md" ]] && cat "$RES/raft.md"
[[ -f "$RES/torch.md" ]] && cat "$RES/torch.md"
python3 - "$RES/raft.md" "$RES/torch.md" <<'PY' | tee "$RES/ratios.md"
import sys
def table(path):
    rows = {}
    try:
        for line in open(path):
            c = [x.strip() for x in line.strip().strip("|").split("|")]
            if len(c) >= 7 and c[2] not in ("median ms", "---:") and c[1] != "implementation":
                try: rows[(c[0], c[1])] = float(c[2])
                except ValueError: pass
    except FileNotFoundError:
        pass
    return rows
raft, torch = table(sys.argv[1]), table(sys.argv[2])
print("\n## Ratios (torch eager median time / raft median time; > 1: raft is faster)\n")
print("| op | implementation | raft ms | torch ms | speed-up vs torch |")
print("| --- | --- | ---: | ---: | ---: |")
tops = {op: ms for (op, impl), ms in torch.items()}
for (op, impl), ms in raft.items():
    key = "copy" if op.startswith("copy") else op
    if key in tops:
        print(f"| {op} | {impl} | {ms:.3f} | {tops[key]:.3f} | {tops[key] / ms:.2f}x |")
PY
exit $raft_rc
