#!/usr/bin/env bash
# Run the shared-mode benchmark: set up and build if needed (scripts/setup.sh), then measure
# Quiver's shared mode (bench/shared_bench.py): hits through a node of a 2-node cluster vs. an
# embedded server, a stampede on 3 nodes vs. a lone miss, and the first batch of a query
# another node is filling with live_join true vs. false. Needs redis-server and PostgreSQL
# (setup.sh installs both). Prints the figures and rewrites the shared-bench section of
# docs/benchmarks.md. Not part of scripts/test.sh. Arguments go to the harness, e.g.
#   scripts/bench_shared.sh              full run (2-3 minutes), updates docs/benchmarks.md
#   scripts/bench_shared.sh --quick      smoke run (seconds); leaves the docs alone
#   scripts/bench_shared.sh --help       every option
# QUIVER_BIN=/path/to/quiver runs another build of the server (default: build/quiver).
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case "$arg" in
    -h|--help) exec .venv/bin/python bench/shared_bench.py --help ;;
  esac
done
bash scripts/setup.sh
QUIVER_BENCH_COMMAND="scripts/bench_shared.sh$(printf ' %q' "$@")"
if [ -n "${QUIVER_BIN:-}" ]; then
  QUIVER_BENCH_COMMAND="QUIVER_BIN=$(printf '%q' "$QUIVER_BIN") $QUIVER_BENCH_COMMAND"
fi
export QUIVER_BENCH_COMMAND
exec .venv/bin/python bench/shared_bench.py "$@"
