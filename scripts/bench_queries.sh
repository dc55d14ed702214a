#!/usr/bin/env bash
# Run the query-cache benchmark: set up and build if needed (scripts/setup.sh), then measure
# Quiver's query cache against direct reads through the same ADBC SQLite driver
# (bench/query_bench.py): miss overhead, hit speedup and a 64-client stampede. Prints the
# figures and rewrites the query-bench section of docs/benchmarks.md.
# Not part of scripts/test.sh. Arguments go to the harness, e.g.
#   scripts/bench_queries.sh              full run (a few minutes), updates docs/benchmarks.md
#   scripts/bench_queries.sh --quick      smoke run on a small database; leaves the docs alone
#   scripts/bench_queries.sh --help       every option
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case "$arg" in
    -h|--help) exec .venv/bin/python bench/query_bench.py --help ;;
  esac
done
bash scripts/setup.sh
QUIVER_BENCH_COMMAND="scripts/bench_queries.sh$(printf ' %q' "$@")"
export QUIVER_BENCH_COMMAND
exec .venv/bin/python bench/query_bench.py "$@"
