#!/usr/bin/env bash
# Run every test: set up and build if needed, then the C++ unit tests (ctest/GoogleTest)
# and the integration tests (pytest against the real quiver binary and real servers).
# Extra arguments go to pytest, e.g. scripts/test.sh -k versions
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== unit tests (ctest)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
echo "== integration tests (pytest)"
.venv/bin/python -m pytest tests "$@"
