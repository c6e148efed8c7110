#!/usr/bin/env bash
# Fuzzes one parser with libFuzzer through SharpFuzz (docs/fuzzing.md):
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
# TARGET is one of `Raft.Fuzz --list` (safetensors, safetensors-index, npy, jsonl, eval-set, config, tokenizer,
# tokenizer-config, teacher-cache, onnx, gguf). Publishes fuzz/Raft.Fuzz, instruments the Raft assemblies with SharpFuzz
# (the SharpFuzz.CommandLine tool pinned in fuzz/dotnet-tools.json), builds the native driver (fuzz/driver, clang-14 with
# libFuzzer: Debian's clang-14 and libclang-rt-14-dev), then runs libFuzzer under `nice -n 19` for SECONDS seconds from the
# seed corpus fuzz/corpus/TARGET. Everything it writes goes under RAFT_FUZZ_OUT (default /tmp/raft-fuzz), outside the
# repository: the grown corpus in TARGET/corpus, crashing inputs in TARGET/crashes, libFuzzer's log in TARGET/fuzz.log.
# Ends with one line: the target, executions, seconds, crashes. Exits with libFuzzer's status (non-zero on a crash).
# Replay a crash in-process: fuzz/Raft.Fuzz/bin/Release/net10.0/Raft.Fuzz TARGET --replay DIR
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target=$1
seconds=$2
shift 2
case "$seconds" in
  ''|*[!0-9]*) echo "scripts/fuzz.sh: SECONDS must be a whole number of seconds, got '$seconds'." >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
seeds="$root/fuzz/corpus/$target"
if [ ! -d "$seeds" ]; then
  echo "scripts/fuzz.sh: TARGET '$target' has no seed corpus $seeds; the targets: $(ls "$root/fuzz/corpus" | tr '\n' ' ')" >&2
  exit 2
fi
clang=${CLANG:-clang-14}
if ! command -v "$clang" >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: $clang not found (apt-get install clang-14 libclang-rt-14-dev, or set CLANG)." >&2
  exit 2
fi
out=${RAFT_FUZZ_OUT:-/tmp/raft-fuzz}
case "$out/" in
  "$root"/*) echo "scripts/fuzz.sh: RAFT_FUZZ_OUT=$out lies inside the repository; choose a folder outside it." >&2; exit 2 ;;
esac
mkdir -p "$out"
out=$(cd "$out" && pwd)
publish="$out/publish"
work="$out/$target"
mkdir -p "$work/corpus" "$work/crashes"

# 1. publish into a fresh folder, so that every assembly there is instrumented exactly once, and 2. instrument the
# assemblies that hold the parsers (SharpFuzz rewrites them in place). Skipped when the sources (src/, fuzz/Raft.Fuzz) are those
# of the last instrumented publish: the stamp is a hash of their committed and uncommitted state.
stamp=$( (cd "$root" && git rev-parse HEAD:src HEAD:fuzz/Raft.Fuzz && git diff HEAD -- src fuzz/Raft.Fuzz && git ls-files --others --exclude-standard src fuzz/Raft.Fuzz | xargs -r sha256sum) | sha256sum | cut -c1-16)
if [ "$(cat "$publish/.raft-fuzz-stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$publish"
  nice -n 19 dotnet publish "$root/fuzz/Raft.Fuzz" -c Release -o "$publish" -m:1 -v quiet -nologo
  (cd "$root/fuzz" && dotnet tool restore >/dev/null)
  for dll in Raft.Model.dll Raft.Teacher.dll Raft.Pipeline.dll raft.dll; do
    (cd "$root/fuzz" && nice -n 19 dotnet tool run sharpfuzz "$publish/$dll") >/dev/null
  done
  echo "$stamp" > "$publish/.raft-fuzz-stamp"
else
  echo "fuzz: reusing the instrumented publish in $publish (sources unchanged)"
fi

# 3. the native driver
driver="$out/raft-libfuzzer-driver"
"$clang" -O2 -fsanitize=fuzzer "$root/fuzz/driver/raft-libfuzzer-driver.c" -o "$driver"

# 4. fuzz: new inputs go to the first corpus folder; the seeds are read only
log="$work/fuzz.log"
set +e
start=$(date +%s)
RAFT_FUZZ_EXEC="$publish/Raft.Fuzz" RAFT_FUZZ_ARGS="$target" nice -n 19 "$driver" \
  -max_total_time="$seconds" -timeout=30 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$work/crashes/" "$@" "$work/corpus" "$seeds" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
took=$(( $(date +%s) - start ))
set -e

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
crashes=$(find "$work/crashes" -type f | wc -l)
echo "fuzz: $target: ${runs:-?} executions in $took s (wall, with the .NET start), $crashes crash file(s) in $work/crashes (libFuzzer exit $status)"
exit "$status"
