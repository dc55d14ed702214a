#!/usr/bin/env bash
# The sanitizer run (docs/security.md, "Hardening"): build Quiver with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-asan/ (a build dir of its own), then run the GoogleTest
# suite and a fast subset of the integration tests against that build. Any finding -- a
# leak, an out-of-bounds access, a use after free, undefined behaviour -- aborts the process
# and fails the run. Extra arguments go to pytest (e.g. -k versions). .ci/run runs it.
#
# Built with clang (as the fuzzers are): with ASan, g++ spends minutes on some files (its
# variable tracking on large instrumented functions), clang seconds. -O1 and line tables
# keep the build near 10 minutes on 2 cores and the stack traces readable.
#
# Needs the normal set-up first (scripts/setup.sh: packages, .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '[sanitize] %s\n' "$*" >&2; }

CLANG=$(command -v clang++-14 || command -v clang++ || true)
if [ -z "$CLANG" ]; then
  echo "sanitize.sh: clang is not installed (scripts/setup.sh installs clang-14)" >&2
  exit 1
fi
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
if [ ! -f build-asan/build.ninja ]; then
  log "configuring build-asan/ (ASan + UBSan, $CLANG)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_CXX_COMPILER="$CLANG" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DQUIVER_SANITIZE=address,undefined -DQUIVER_BUILD_BENCHMARKS=OFF \
    -DQUIVER_PYTHON="$ROOT/.venv/bin/python" -DQUIVER_WARNINGS_AS_ERRORS=ON "${launcher[@]}" \
    >/dev/null
fi
log "building build-asan/"
cmake --build build-asan -- -j"$(nproc)"

# Leaks inside the libraries of the pyarrow wheel (gRPC's and Arrow's process-lifetime
# singletons, not instrumented) are theirs to report; every leak in Quiver's own code fails.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:suppressions=$ROOT/scripts/asan.supp"
export LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$ROOT/scripts/ubsan.supp"

log "unit tests (ctest, ASan + UBSan)"
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" --timeout 600

# A fast subset of the integration tests: the server under ASan + UBSan, with the clients
# the tests use (pyarrow, the SDK, HTTP). The sanitizer's report goes to the server's
# stderr, which the fixtures print when a test fails; an aborted server fails its test.
# QUIVER_TEST_GRACEFUL_STOP: each test ends by stopping its nodes with SIGTERM and checking
# that they exit with 0, so that LeakSanitizer's check at exit runs (tests/conftest.py).
log "integration tests (pytest subset, ASan + UBSan server)"
QUIVER_TEST_GRACEFUL_STOP=1 QUIVER_BIN="$ROOT/build-asan/quiver" .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_roundtrip.py tests/test_versions.py tests/test_bad_input.py \
  tests/test_security.py tests/test_tenants.py tests/test_tenant_budgets.py tests/test_http.py \
  tests/test_query_sqlite.py tests/test_index_journal.py tests/test_invalidation.py "$@"
log "clean: no sanitizer findings"
