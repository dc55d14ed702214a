#!/usr/bin/env bash
# Run the Flight benchmark: set up and build if needed (scripts/setup.sh), then measure
# Quiver against an in-memory pyarrow Flight server (bench/flight_bench.py), print the
# figures and rewrite the flight-bench section of docs/benchmarks.md.
# Not part of scripts/test.sh. Arguments go to the harness, e.g.
#   scripts/bench.sh              full run (a few minutes), updates docs/benchmarks.md
#   scripts/bench.sh --quick      smoke run with small sizes; leaves the docs alone
#   scripts/bench.sh --help       every option
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case "$arg" in
    -h|--help) exec .venv/bin/python bench/flight_bench.py --help ;;
  esac
done
bash scripts/setup.sh
QUIVER_BENCH_COMMAND="scripts/bench.sh$(printf ' %q' "$@")"
export QUIVER_BENCH_COMMAND
exec .venv/bin/python bench/flight_bench.py "$@"
