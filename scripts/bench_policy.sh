#!/usr/bin/env bash
# Run the eviction-policy trace simulator: set up and build if needed (scripts/setup.sh, then
# the quiver_policy_sim target in build/), then replay the synthetic traces against the real
# policy code (bench/policy_sim.cc) and print hit ratio, byte hit ratio and recompute seconds
# saved for LRU and the cost-aware policy at three budgets.
# Not part of scripts/test.sh. Arguments go to the simulator, e.g.
#   scripts/bench_policy.sh               full run (5 seeds, about 1-2 minutes on 2 cores)
#   scripts/bench_policy.sh --quick       smoke run with small traces (seconds)
#   scripts/bench_policy.sh --markdown    the tables as Markdown
#   scripts/bench_policy.sh --help        every option (workload parameters, budgets, half-lives)
# Every figure also goes to bench/results/policy-sim-<time>.json (git-ignored) unless --json
# is given. docs/benchmarks.md is not rewritten: its policy-bench section is edited by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

want_json=1
for arg in "$@"; do
  case "$arg" in
    -h|--help) want_json=0 ;;
    --json|--json=*) want_json=0 ;;
  esac
done

bash scripts/setup.sh
# build/ may have been configured without the benchmarks.
targets=$(cmake --build build --target help)
if ! grep -q '^quiver_policy_sim:' <<<"$targets"; then
  cmake -S . -B build -DQUIVER_BUILD_BENCHMARKS=ON >/dev/null
fi
cmake --build build --target quiver_policy_sim >&2

args=("$@")
if [ "$want_json" = 1 ]; then
  mkdir -p bench/results
  args+=(--json "bench/results/policy-sim-$(date -u +%Y%m%d-%H%M%S).json")
fi
exec build/bench/quiver_policy_sim "${args[@]}"
