"""Makes the SDK in python/ importable by the SDK's tests and the processes they start."""

import os
import sys
from pathlib import Path

try:
    import quiver  # noqa: F401  (already importable: installed, or on PYTHONPATH)
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    import quiver  # noqa: F401

SDK_DIR = str(Path(quiver.__file__).resolve().parent.parent)


def sdk_env() -> dict:
    """os.environ with PYTHONPATH leading to the SDK this test process imported."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": SDK_DIR + (os.pathsep + path if path else "")}
