#!/usr/bin/env bash
# The main job on embedded defaults: set up and build if needed, start `quiver serve` on a
# local data dir, and run a short demo against it with pyarrow.flight.
#   scripts/demo.sh [--data-dir DIR] [--keep]     (--keep leaves the data dir in place)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/python scripts/demo.py --quiver build/quiver "$@"
