"""Makes this repository's SDK (python/) the one the SDK's tests and their child processes
import, ahead of any installed copy (an editable install may point at another checkout)."""

import os
import sys
from pathlib import Path

SDK_DIR = str(Path(__file__).resolve().parent.parent / "python")
if sys.path[0] != SDK_DIR:
    sys.path.insert(0, SDK_DIR)


def sdk_env() -> dict:
    """os.environ with PYTHONPATH leading to this repository's SDK."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": SDK_DIR + (os.pathsep + path if path else "")}
