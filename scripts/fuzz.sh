#!/usr/bin/env bash
# Build the libFuzzer harnesses of fuzz/ with clang (build-fuzz/, ASan + UBSan + coverage) and
# run each for SECONDS (default 20) from its committed seed corpus, fuzz/corpus/NAME/. A
# crash, leak, timeout or sanitizer finding fails the run; libFuzzer writes the input that
# caused it as crash-*/leak-*/timeout-* in build-fuzz/findings/NAME/ (turn it into a
# regression test, and add it to the corpus).
#
#   scripts/fuzz.sh            # the short run CI does: 20 s per harness
#   scripts/fuzz.sh 3600       # a long run: an hour per harness
#   scripts/fuzz.sh 600 fuzz_auth fuzz_filter   # some harnesses only
#
# New inputs that reach new code are kept in build-fuzz/findings/NAME/corpus, never in the
# committed corpus; copy the interesting ones into fuzz/corpus/NAME/ by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '[fuzz] %s\n' "$*" >&2; }
SECONDS_EACH=${1:-20}
shift || true
ALL=(fuzz_keys_tickets fuzz_requests fuzz_http fuzz_filter fuzz_ipc fuzz_auth fuzz_actions)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")

CLANG=$(command -v clang++-14 || command -v clang++ || true)
if [ -z "$CLANG" ]; then
  echo "fuzz.sh: clang is not installed (scripts/setup.sh installs clang-14 and libfuzzer-14-dev)" >&2
  exit 1
fi
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
if [ ! -f build-fuzz/build.ninja ]; then
  log "configuring build-fuzz/ ($CLANG)"
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER="$CLANG" -DQUIVER_FUZZ=ON \
    -DQUIVER_PYTHON="$ROOT/.venv/bin/python" "${launcher[@]}" >/dev/null
fi
log "building the harnesses"
cmake --build build-fuzz --target fuzzers -- -j"$(nproc)"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:suppressions=$ROOT/scripts/asan.supp"
export LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$ROOT/scripts/ubsan.supp"
failed=()
for name in "${TARGETS[@]}"; do
  out=build-fuzz/findings/$name
  rm -rf "$out" && mkdir -p "$out/corpus"
  log "$name: ${SECONDS_EACH} s from fuzz/corpus/$name ($(ls fuzz/corpus/$name | wc -l) seeds)"
  if ! build-fuzz/fuzz/$name "$out/corpus" "fuzz/corpus/$name" -max_total_time="$SECONDS_EACH" \
       -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$out/" > "$out/log.txt" 2>&1; then
    failed+=("$name")
    log "$name FAILED; its log: $out/log.txt; the input: $(ls "$out" | grep -E '^(crash|leak|timeout|oom)-' | head -1)"
    tail -40 "$out/log.txt" >&2
  else
    log "$name: $(grep -E '^stat::number_of_executed_units' "$out/log.txt" | awk '{print $2}') runs, no finding"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  log "findings in: ${failed[*]}"
  exit 1
fi
log "clean: no findings"
