"""Fixtures and helpers for the Python SDK tests (tests/test_sdk*.py).

The SDK is installed in the venv in editable mode (scripts/setup.sh); this checkout's
python/ is put first on sys.path as well, so the tests exercise this checkout's SDK even
when the venv's editable install points at another one.
"""

import contextlib
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parent.parent / "python"
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

import quiver  # noqa: E402

assert Path(quiver.__file__).resolve().is_relative_to(PYTHON_DIR), quiver.__file__


def sdk_env() -> dict:
    """os.environ with PYTHONPATH leading to this checkout's SDK (for child processes)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(PYTHON_DIR) + (os.pathsep + path if path else "")}

# A SQLite query that runs for minutes and sends nothing until it ends.
SLOW_SQL = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500000000) "
            "SELECT count(*) AS c FROM n")
EVENTS = 1000


def make_events_db(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, grp TEXT, amount INTEGER)")
    con.execute(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
                    WHERE i < {EVENTS}) INSERT INTO events SELECT i, 'g' || (i % 4), i FROM n""")
    con.commit()
    con.close()
    return path


@pytest.fixture
def artifact_server(quiver, workdir):
    """A server allowed to fetch artifacts from `workdir/artifacts/` (docs/artifacts.md)."""
    root = workdir / "artifacts"
    root.mkdir()
    config = workdir / "artifacts.json"
    config.write_text(json.dumps({"artifacts": {"allowed_prefixes": [f"file://{root}/"]}}))
    server = quiver(args=["--config", str(config)])
    server.artifacts = root
    return server


@pytest.fixture
def lite(quiver, workdir):
    """A server with the SQLite source `lite` (table events: id, grp g0..g3, amount)."""
    db = make_events_db(workdir / "events.db")
    return quiver(args=["--source", f"lite=sqlite://{db}"])


@pytest.fixture
def q(server):
    """A quiver.Client on a fresh default server."""
    with quiver.connect(server.location) as client:
        yield client


@contextlib.contextmanager
def hung(server):
    """The server process stopped (SIGSTOP): its connections stay open, nothing answers."""
    server.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.proc.send_signal(signal.SIGCONT)
