#!/usr/bin/env bash
# Run the HTTP benchmark: set up and build if needed (scripts/setup.sh), then measure Quiver's
# HTTP interface against its Flight interface and against nginx serving the same Arrow IPC
# bytes as static files (bench/http_bench.py): hit latency p50/p99 of 1 KiB and 1 MiB objects,
# throughput of a 1 GiB one. Prints the figures and rewrites the http-bench section of
# docs/benchmarks.md. Not part of scripts/test.sh. Arguments go to the harness, e.g.
#   scripts/bench_http.sh              full run (3-6 minutes), updates docs/benchmarks.md
#   scripts/bench_http.sh --quick      smoke run (1 KiB, 1 MiB, 64 MiB; under a minute), no docs
#   scripts/bench_http.sh --help       every option
# Needs nginx (apt-get install nginx-light). QUIVER_BIN=/path/to/quiver runs another build of
# the server (default: build/quiver); the C++ Flight client is built here if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case "$arg" in
    -h|--help) exec .venv/bin/python bench/http_bench.py --help ;;
  esac
done
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "bench_http.sh: nginx is not installed; apt-get install nginx-light" >&2
  exit 1
fi
bash scripts/setup.sh
# The C++ Flight client (native-client rows); build/ may have been configured without it.
if ! cmake --build build --target help | grep -q '^quiver_flight_load:'; then
  cmake -S . -B build -DQUIVER_BUILD_BENCHMARKS=ON >/dev/null
fi
cmake --build build --target quiver_flight_load >&2
QUIVER_BENCH_COMMAND="scripts/bench_http.sh$(printf ' %q' "$@")"
if [ -n "${QUIVER_BIN:-}" ]; then
  QUIVER_BENCH_COMMAND="QUIVER_BIN=$(printf '%q' "$QUIVER_BIN") $QUIVER_BENCH_COMMAND"
fi
export QUIVER_BENCH_COMMAND
exec .venv/bin/python bench/http_bench.py "$@"
