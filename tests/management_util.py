"""Helpers shared by the cache-management tests (test_budget, test_memory_tier,
test_invalidation, test_runtime_settings, test_management_actions): small tables of known
stored size, put options, the entries action, and a SQLite source for query results."""

import json
import os
import sqlite3

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from quiver_util import get, put
from query_util import wait_for


def ints(n, start=0):
    """A one-column int64 table; every table of the same n has the same stored size."""
    return pa.table({"x": np.arange(start, start + n, dtype=np.int64)})


def put_with(client, key, table, depends_on=None, tags=None):
    options = {}
    if depends_on is not None:
        options["depends_on"] = depends_on
    if tags is not None:
        options["tags"] = tags
    return put(client, key, table,
               app_metadata=json.dumps(options).encode() if options else None)


def entries(client, prefix=None):
    body = json.dumps({"prefix": prefix}).encode() if prefix is not None else b""
    results = list(client.do_action(flight.Action("entries", body)))
    assert len(results) == 1
    return pa.ipc.open_stream(results[0].body.to_pybytes()).read_all()


def entry_map(client, prefix=None):
    return {row["key"]: row for row in entries(client, prefix).to_pylist()}


def keys(client, prefix=None):
    return sorted(entry_map(client, prefix))


def lowest_scored(client):
    return min(entries(client).to_pylist(), key=lambda r: r["score"])["key"]


def keys_before_minus(before, removed):
    return sorted(set(r["key"] for r in before) - set(removed))


def expected_victims(rows, incoming, budget):
    """What the budget evicts to admit `incoming` bytes: lowest score first until it fits."""
    total = sum(r["bytes"] for r in rows) + incoming
    victims = []
    for r in sorted(rows, key=lambda r: r["score"]):
        if total <= budget:
            break
        victims.append(r["key"])
        total -= r["bytes"]
    return victims


def disk_bytes(srv):
    """Bytes of the committed data blobs; tolerant of files removed while we look."""
    total = 0
    for root, _, files in os.walk(srv.data_dir / "data"):  # os.walk skips vanished dirs
        for name in files:
            if name.endswith(".arrows"):
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except FileNotFoundError:
                    pass
    return total


def read(client, key):
    return get(client, key)[0]


def assert_missing(client, key):
    with pytest.raises(pa.ArrowKeyError, match="no object"):
        read(client, key)


def server_error(fn, *args, **kwargs):
    with pytest.raises(pa.ArrowException) as info:
        fn(*args, **kwargs)
    return str(info.value)


def rejection(fn, *args, **kwargs):
    """The server's error message and its machine-readable body (docs/api.md "Errors")."""
    with pytest.raises(flight.FlightError) as info:
        fn(*args, **kwargs)
    return str(info.value), json.loads(info.value.extra_info)


# A stored ints(n) is 8 * n + STORED_OVERHEAD bytes (schema + one batch header + end marker).
STORED_OVERHEAD = 280


def stored_size(n):
    return 8 * n + STORED_OVERHEAD


# -- a SQLite source for query results ----------------------------------------------------------


@pytest.fixture
def lite_db(workdir):
    path = workdir / "events.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, grp TEXT, amount INTEGER)")
    con.execute("""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
                   INSERT INTO events SELECT i, 'g' || (i % 5), i % 100 FROM n""")
    con.commit()
    con.close()
    return path


def lite_args(db):
    return ["--source", f"lite=sqlite://{db}"]


def slow_sql(n, select="count(*) AS c, sum(i) AS s"):
    """A deterministic recursive CTE that takes about n / 1e6 seconds in SQLite."""
    return (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
            f"SELECT {select} FROM n")


def query_key(meta):
    return "@q/" + meta[0]["key"]


def wait_entry(client, key, timeout=10.0):
    """A query result commits just after its last batch is sent."""
    return wait_for(lambda: entry_map(client).get(key), timeout, f"{key} to be cached")
