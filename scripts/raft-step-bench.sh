#!/usr/bin/env bash
# A whole RAFT step at Qwen2.5-0.5B's shape (issue #16 item 6): 8 prompts, 128-token rollouts, teacher scoring and the
# update, one `raft train --steps 1` process per configuration under /usr/bin/time -v (whole-process peak RSS); seconds
# per phase from the run's metrics.jsonl (rollout_s, teacher_s, train_s). Writes benchmarks/results/raft-step-phases-cpu.md.
# Random bf16 weights made by scripts/random_checkpoint.py (all 24 layers) with the real Qwen2.5 tokenizer.
# One step per configuration: the phase times are single measurements (the load average is recorded beside them).
#
#   bash scripts/raft-step-bench.sh            # builds raft; RAFT=path/to/raft uses that binary instead
#
# Needs: tokenizer files (tests/Raft.Model.Tests/fetch-tokenizers.sh), /usr/bin/python3 with numpy, /usr/bin/time, ~14 GiB free RAM.
set -euo pipefail
cd "$(dirname "$0")/.."
tok="${RAFT_TOKENIZER_FILES:-$HOME/.cache/raft-tokenizers}"
py=/usr/bin/python3
out="${RAFT_BENCH_RESULTS_DIR:-benchmarks/results}/raft-step-phases-cpu.md"
[ -f "$tok/qwen2_5/tokenizer_config.json" ] || { echo "raft-step-bench: no Qwen2.5 tokenizer in $tok" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "${RAFT:-}" ]; then
  dotnet build src/Raft.Cli -c Release -o "$work/bin" -nologo -v q >/dev/null
  RAFT="$work/bin/raft"
fi
# RAFT_BENCH_LAYERS=N: a smoke run on N of the 24 layers (not a result)
"$py" scripts/random_checkpoint.py --out "$work/base" --tokenizer "$tok/qwen2_5" ${RAFT_BENCH_LAYERS:+--layers "$RAFT_BENCH_LAYERS"} >&2
"$py" - "$work/data.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(8):
        a, b = 17 + 7 * i, 25 + 3 * i
        f.write(json.dumps({"prompt": f"What is {a} + {b}? Explain each step.", "answer": f"{a} + {b} = {a + b}. The answer is {a + b}."}) + "\n")
PY
common=(--model "$work/base" --data "$work/data.jsonl" --steps 1 --batch-size 8 --rollout-max-tokens 128 --learning-rate 1e-4
  --warmup-steps 0 --threads 2 --device cpu)
declare -a names=(full-fp32 full-bf16 full-fp32-checkpointing lora-r8 lora-r8-checkpointing)
declare -A extra=(
  [full-fp32]="--teacher-weights-dtype bf16"
  [full-bf16]="--teacher-weights-dtype bf16 --precision bf16"
  [full-fp32-checkpointing]="--teacher-weights-dtype bf16 --gradient-checkpointing"
  [lora-r8]="--lora-rank 8 --lora-targets all-linear"
  [lora-r8-checkpointing]="--lora-rank 8 --lora-targets all-linear --gradient-checkpointing"
)
rows="$work/rows.tsv"; : >"$rows"
for n in "${names[@]}"; do
  load="$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "raft-step-bench: $n: raft train ${extra[$n]} (load $load)" >&2
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$work/$n.time" "$RAFT" train "${common[@]}" ${extra[$n]} --out "$work/run-$n" >"$work/$n.json" 2>"$work/$n.log" \
    || { tail -20 "$work/$n.log" >&2; echo "raft-step-bench: $n failed" >&2; exit 1; }
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/$n.time")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$work/$n.time")
  "$py" - "$work/run-$n/metrics.jsonl" "$n" "$rss" "$wall" "$load" >>"$rows" <<'PY'
import json, sys
path, name, rss, wall, load = sys.argv[1:]
m = [json.loads(l) for l in open(path) if l.strip() and '"eval"' not in l][-1]
print("\t".join([name, f"{m.get('rollout_s') or 0:.1f}", f"{m.get('teacher_s') or 0:.1f}", f"{m['train_s']:.1f}",
    f"{m.get('rollout_len') or 0:.1f}", str(m["tokens"]), f"{int(rss) / 1048576:.2f}", wall, load]))
PY
  tail -1 "$rows" >&2
done
tmp="$out.tmp"
{
  echo "# A RAFT step at Qwen2.5-0.5B's shape on the CPU: seconds per phase and peak RSS"
  echo
  echo "- Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) logical cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM"
  echo "- Command: \`bash scripts/raft-step-bench.sh\` at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M') UTC"
  echo "- Model: random bf16 checkpoint with Qwen2.5-0.5B-Instruct's config (24 layers, 494 M parameters, tied embeddings, V 151,936), the real Qwen2.5 tokenizer; 8 arithmetic prompts; \`raft train --steps 1 --batch-size 8 --rollout-max-tokens 128 --threads 2 --device cpu\` plus the row's flags."
  echo "- Full fine-tuning: fp32 AdamW over every tensor, teacher = a separate bf16 copy of the base (\`--teacher-weights-dtype bf16\`). LoRA: r 8 on all linear layers, bf16 base, the base with adapters off is the teacher (one model in memory)."
  echo "- Phases from metrics.jsonl (rollout_s: sampling the 8 rollouts; teacher_s: teacher top-K scoring; train_s: student forward, loss, backward, update); peak RSS: /usr/bin/time -v's maximum resident set size of the whole process (loading included). One step each: single measurements; the load average (1/5/15 min) at each start says how idle the machine was."
  echo
  echo "| configuration | rollout s | teacher s | train s | mean rollout length | tokens | peak RSS (GiB) | wall | load at start |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
  while IFS=$'\t' read -r n r t tr len tokens rss wall load; do
    echo "| $n | $r | $t | $tr | $len | $tokens | $rss | $wall | $load |"
  done <"$rows"
  echo
  echo "Targets: full fine-tuning RAFT step ≤ 9.5 GiB (#16); LoRA RAFT step with the base as teacher ≤ 3.5 GiB (#17)."
} >"$tmp"
mv "$tmp" "$out"
cat "$out"
