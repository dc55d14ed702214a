"""quiver.dask.Cache against the real server: a slow task's result, stored by one process,
is reused by a new process running the same graph; discard removes it."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.flight as flight

from sdk_util import sdk_env  # first: makes the SDK importable
from quiver_util import stats

JOB = Path(__file__).resolve().parent / "sdk_dask_job.py"
PREFIX = "dask/tests"


def run_job(location, calls_file, *extra):
    env = sdk_env()
    out = subprocess.run([sys.executable, str(JOB), location, str(calls_file), PREFIX, *extra],
                         check=True, capture_output=True, text=True, env=env, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def stored_keys(client):
    return sorted("/".join(p.decode() for p in f.descriptor.path)
                  for f in client.list_flights(f"{PREFIX}/".encode()))

def test_second_process_reuses_results_and_discard_removes_them(server, workdir):
    calls = workdir / "calls.txt"
    raw = flight.connect(server.location)

    first = run_job(server.location, calls)
    assert calls.read_text().count("slow_frame") == 1
    # slow_frame and the two frames derived from it cost >= 0.2 s; total is a float (no
    # encoding without a serializer) and is not stored.
    assert first["counters"]["stores"] == 3 and first["counters"]["hits"] == 0
    assert first["counters"]["skipped"] == 1 and first["counters"]["errors"] == 0
    keys = stored_keys(raw)
    assert len(keys) == 3 and set(keys) <= set(first["keys"])
    before = stats(raw)

    second = run_job(server.location, calls)
    assert calls.read_text().count("slow_frame") == 1, "the slow task ran again"
    assert second["value"] == first["value"]
    # The two scaled frames came from Quiver, so slow_frame was neither fetched nor run.
    assert second["counters"]["hits"] == 2 and second["counters"]["stores"] == 0
    after = stats(raw)
    assert after["hits"] - before["hits"] == 2
    assert second["elapsed_s"] < first["elapsed_s"] - 0.5, (first, second)

    deleted = run_job(server.location, calls, "discard")["deleted"]
    assert sorted(deleted) == keys
    assert stored_keys(raw) == []

    third = run_job(server.location, calls)
    assert calls.read_text().count("slow_frame") == 2
    assert third["counters"]["hits"] == 0 and third["value"] == first["value"]
    raw.close()
