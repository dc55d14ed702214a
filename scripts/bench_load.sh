#!/usr/bin/env bash
# Run the large get/put benchmark: set up and build if needed (scripts/setup.sh, then the
# quiver_flight_load target in build/), install iperf3 from Debian if it is missing, then
# measure Quiver against the in-memory pyarrow Flight server with the C++ load client
# (bench/flight_load.cc, 1 and 4 streams) and the Python client, next to loopback TCP
# (iperf3) and the disk's write bandwidth (dd) measured in the same run
# (bench/load_bench.py). Prints the figures and rewrites the load-bench section of
# docs/benchmarks.md. Not part of scripts/test.sh. Arguments go to the harness, e.g.
#   scripts/bench_load.sh                    full run (about 3 minutes), updates docs/benchmarks.md
#   scripts/bench_load.sh --wait-idle 300    the same, on a shared machine (recommended)
#   scripts/bench_load.sh --quick            smoke run (under a minute); leaves the docs alone
#   scripts/bench_load.sh --help             every option
# QUIVER_BIN=/path/to/quiver runs another build of the server (default: build/quiver).
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case "$arg" in
    -h|--help) exec .venv/bin/python bench/load_bench.py --help ;;
  esac
done
bash scripts/setup.sh
# build/ may have been configured without the benchmarks.
if ! cmake --build build --target help | grep -q '^quiver_flight_load:'; then
  cmake -S . -B build -DQUIVER_BUILD_BENCHMARKS=ON >/dev/null
fi
cmake --build build --target quiver_flight_load >&2
if ! command -v iperf3 >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "[bench_load] installing iperf3 (loopback TCP bandwidth)" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends iperf3 \
    >/dev/null 2>&1 || echo "[bench_load] could not install iperf3; the run skips loopback TCP" >&2
fi
QUIVER_BENCH_COMMAND="scripts/bench_load.sh$(printf ' %q' "$@")"
if [ -n "${QUIVER_BIN:-}" ]; then
  QUIVER_BENCH_COMMAND="QUIVER_BIN=$(printf '%q' "$QUIVER_BIN") $QUIVER_BENCH_COMMAND"
fi
export QUIVER_BENCH_COMMAND
exec .venv/bin/python bench/load_bench.py "$@"
