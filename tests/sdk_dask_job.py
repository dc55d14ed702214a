"""A dask computation run in its own process by tests/test_sdk_dask.py.

usage: sdk_dask_job.py LOCATION CALLS_FILE PREFIX [discard]

Builds the same deterministic graph in every process (delayed(pure=True): task keys are
tokens of the function and its arguments), computes it with the threaded scheduler under
quiver.dask.Cache, and prints one JSON line: the elapsed time, the Cache's counters, the
result and the task keys. `slow_frame` appends a line to CALLS_FILE each time it runs.
With "discard", it removes the stored results of the graph's tasks instead.
"""

import json
import sys
import time
from dataclasses import asdict

import dask
import pandas as pd

import quiver
import quiver.dask

LOCATION, CALLS_FILE, PREFIX = sys.argv[1:4]
SLOW_S = 1.0


@dask.delayed(pure=True)
def slow_frame(n):
    with open(CALLS_FILE, "a") as f:
        f.write(f"slow_frame {n}\n")
    time.sleep(SLOW_S)
    return pd.DataFrame({"x": range(n), "y": [i * 0.5 for i in range(n)]})


@dask.delayed(pure=True)
def scaled(frame, k):
    return frame.assign(y=frame["y"] * k)


@dask.delayed(pure=True)
def total(a, b):
    return float(a["y"].sum() + b["y"].sum())


base = slow_frame(1000)
result = total(scaled(base, 2), scaled(base, 3))
graph = dict(result.__dask_graph__())

client = quiver.connect(LOCATION)
cache = quiver.dask.Cache(client, min_cost_s=0.2, prefix=PREFIX)
if sys.argv[4:] == ["discard"]:
    print(json.dumps({"deleted": cache.discard(graph)}))
    sys.exit(0)
start = time.perf_counter()
with cache:
    value = result.compute(scheduler="threads")
elapsed = time.perf_counter() - start
print(json.dumps({"elapsed_s": elapsed, "counters": asdict(cache.counters), "value": value,
                  "keys": [cache.quiver_key(k) for k in graph]}))
