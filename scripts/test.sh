#!/usr/bin/env bash
# Run every test: set up and build if needed, then the C++ unit tests (ctest/GoogleTest)
# and the integration tests (pytest against the real quiver binary and real servers).
# Extra arguments go to pytest, e.g. scripts/test.sh -k versions
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The S3 store tests run against a real s3proxy; without it they would only be skipped.
if ! ls .tools/s3proxy/s3proxy-*-jar-with-dependencies.jar >/dev/null 2>&1; then
  echo "test.sh: no s3proxy jar in .tools/s3proxy/ (scripts/setup.sh fetches it with mvn)" >&2
  exit 1
fi
echo "== unit tests (ctest)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
echo "== integration tests (pytest)"
.venv/bin/python -m pytest tests "$@"
