#!/usr/bin/env bash
# Run the S3 store benchmark: set up and build if needed (scripts/setup.sh), then measure
# Quiver with --store s3://... against s3proxy on loopback (bench/s3_bench.py): hits served
# from S3, from the node-local disk tier and from the memory tier vs. the embedded local store
# and a plain Redis GET of the same IPC bytes; puts into S3 vs. the local store; the peak RSS
# of a hit streamed from S3. Needs java, the s3proxy jar and redis-server (setup.sh installs
# them). Prints the figures and rewrites the s3-bench section of docs/benchmarks.md. Not part
# of scripts/test.sh. Arguments go to the harness, e.g.
#   scripts/bench_s3.sh              full run (about 5 minutes), updates docs/benchmarks.md
#   scripts/bench_s3.sh --quick      smoke run (about 1 minute); leaves the docs alone
#   scripts/bench_s3.sh --help       every option
# QUIVER_BIN=/path/to/quiver runs another build of the server (default: build/quiver).
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case "$arg" in
    -h|--help) exec .venv/bin/python bench/s3_bench.py --help ;;
  esac
done
bash scripts/setup.sh
QUIVER_BENCH_COMMAND="scripts/bench_s3.sh$(printf ' %q' "$@")"
if [ -n "${QUIVER_BIN:-}" ]; then
  QUIVER_BENCH_COMMAND="QUIVER_BIN=$(printf '%q' "$QUIVER_BIN") $QUIVER_BENCH_COMMAND"
fi
export QUIVER_BENCH_COMMAND
exec .venv/bin/python bench/s3_bench.py "$@"
