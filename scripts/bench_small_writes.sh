#!/usr/bin/env bash
# Run the small-writes benchmark: set up and build if needed (scripts/setup.sh), then measure
# 1 KiB puts (bench/small_writes_bench.py): latency p50/p99 of Quiver's default and fsync
# durability modes against Flame's object cache and a raw write+fsync+rename+directory fsync on
# the same file system, and the throughput of 1 vs. 64 concurrent putters. Prints the figures
# and rewrites the small-writes-bench section of docs/benchmarks.md. Not part of
# scripts/test.sh. Arguments go to the harness, e.g.
#   scripts/bench_small_writes.sh              full run (a few minutes), updates docs/benchmarks.md
#   scripts/bench_small_writes.sh --quick      smoke run (under a minute); leaves the docs alone
#   scripts/bench_small_writes.sh --flame-cache '/path/flame-object-cache --config {config}'
#                                              also measure Flame's object cache
#   scripts/bench_small_writes.sh --help       every option
# QUIVER_BIN=/path/to/quiver runs another build of the server (default: build/quiver);
# FLAME_CACHE_CMD='...' is the same as --flame-cache '...'.
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case "$arg" in
    -h|--help) exec .venv/bin/python bench/small_writes_bench.py --help ;;
  esac
done
bash scripts/setup.sh
QUIVER_BENCH_COMMAND="scripts/bench_small_writes.sh$(printf ' %q' "$@")"
for var in QUIVER_BIN FLAME_CACHE_CMD; do
  if [ -n "${!var:-}" ]; then
    QUIVER_BENCH_COMMAND="$var=$(printf '%q' "${!var}") $QUIVER_BENCH_COMMAND"
  fi
done
export QUIVER_BENCH_COMMAND
exec .venv/bin/python bench/small_writes_bench.py "$@"
