#!/usr/bin/env bash
# Run the one-node-at-scale benchmark: set up and build if needed (scripts/setup.sh), then fill
# one `quiver serve` node with N small entries (default 1,000,000) and measure the restart time
# (clean and after SIGKILL), the index memory per entry and the get latency against the issue's
# goals (bench/scale_bench.py). Prints the figures and rewrites the scale-bench section of
# docs/benchmarks.md. Not part of scripts/test.sh. Needs about 20 KiB of disk per entry under
# bench/results/ while it runs. Arguments go to the harness, e.g.
#   scripts/bench_scale.sh                     1,000,000 entries, updates docs/benchmarks.md
#   scripts/bench_scale.sh --entries 200000    a smaller node, updates docs/benchmarks.md
#   scripts/bench_scale.sh --quick             smoke run (20,000 entries); leaves the docs alone
#   scripts/bench_scale.sh --help              every option
# QUIVER_BIN=/path/to/quiver runs another build of the server (default: build/quiver).
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case "$arg" in
    -h|--help) exec .venv/bin/python bench/scale_bench.py --help ;;
  esac
done
bash scripts/setup.sh
QUIVER_BENCH_COMMAND="scripts/bench_scale.sh$(printf ' %q' "$@")"
if [ -n "${QUIVER_BIN:-}" ]; then
  QUIVER_BENCH_COMMAND="QUIVER_BIN=$(printf '%q' "$QUIVER_BIN") $QUIVER_BENCH_COMMAND"
fi
export QUIVER_BENCH_COMMAND
exec .venv/bin/python bench/scale_bench.py "$@"
