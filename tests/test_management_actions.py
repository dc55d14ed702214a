"""The management actions' interface against the real server: the entries table's columns
and types, bad request bodies refused by name, and list_actions (docs/management.md)."""

import json
import time

import pyarrow as pa
import pytest

from management_util import (disk_bytes, entries, ints, keys, lite_args, put_with, query_key,
                             read, server_error, stored_size, wait_entry)
from management_util import lite_db  # noqa: F401  (fixture)
from quiver_util import action, put, stats
from query_util import run_query

# -- the entries table ------------------------------------------------------------------------

ENTRY_SCHEMA = [
    ("key", pa.string(), False),
    ("kind", pa.string(), False),
    ("version", pa.uint64(), False),
    ("bytes", pa.int64(), False),
    ("rows", pa.int64(), False),
    ("cost_s", pa.float64(), False),
    ("created", pa.timestamp("ms", tz="UTC"), False),
    ("last_access", pa.timestamp("ms", tz="UTC"), False),
    ("accesses", pa.uint64(), False),
    ("score", pa.float64(), False),
    ("expires", pa.timestamp("ms", tz="UTC"), True),
    ("source", pa.string(), True),
    ("depends_on", pa.list_(pa.string()), False),
    ("tags", pa.list_(pa.string()), False),
    ("in_memory", pa.bool_(), False),
]


def test_entries_table_columns_and_types(quiver, lite_db):
    srv = quiver(args=lite_args(lite_db))
    c = srv.client()
    before_ms = int(time.time() * 1000)
    put_with(c, "e/base", ints(100))
    put_with(c, "e/derived", ints(50), depends_on=["e/base"], tags=["t:a", "t:b"])
    put(c, "e/base", ints(200))  # version 2: bytes covers both kept versions
    put_with(c, "e/derived", ints(50), depends_on=["e/base"], tags=["t:a", "t:b"])
    read(c, "e/derived")
    read(c, "e/derived")
    _, meta = run_query(c, source="lite", sql="SELECT count(*) AS n FROM events",
                        depends_on=["e/base"], tags=["table:events"], ttl_s=60)
    qkey = query_key(meta)
    wait_entry(c, qkey)

    table = entries(c)
    assert [(f.name, f.type, f.nullable) for f in table.schema] == ENTRY_SCHEMA
    rows = {r["key"]: r for r in table.to_pylist()}
    assert sorted(rows) == [qkey, "e/base", "e/derived"]

    base = rows["e/base"]
    assert base["kind"] == "object" and base["version"] == 2 and base["rows"] == 200
    assert base["bytes"] == stored_size(100) + stored_size(200)
    assert base["depends_on"] == [] and base["tags"] == []
    assert base["expires"] is None and base["source"] is None
    assert base["in_memory"] is False and base["cost_s"] >= 0

    derived = rows["e/derived"]
    assert derived["version"] == 1, "the new version of e/base should have invalidated it"
    assert derived["depends_on"] == ["e/base"] and derived["tags"] == ["t:a", "t:b"]
    assert derived["accesses"] == 3, "the write counts as the first access, then two reads"
    assert derived["last_access"] >= derived["created"]
    now_ms = int(time.time() * 1000) + 1000
    for r in rows.values():
        created_ms = r["created"].timestamp() * 1000
        assert before_ms - 1000 <= created_ms <= now_ms, r

    q = rows[qkey]
    assert q["kind"] == "query" and q["source"] == "lite" and q["rows"] == 1
    assert q["depends_on"] == ["e/base"] and q["tags"] == ["table:events"]
    assert (q["expires"] - q["created"]).total_seconds() == pytest.approx(60, abs=0.01)
    assert q["bytes"] > 0 and q["version"] == 1

    # the prefix filter, and the stored bytes agree with the files on disk
    assert entries(c, "e/").column("key").to_pylist() == ["e/base", "e/derived"]
    assert entries(c, "@q/").column("key").to_pylist() == [qkey]
    assert entries(c, "nothing/").num_rows == 0
    assert sum(r["bytes"] for r in rows.values()) == disk_bytes(srv) == stats(c)["budget"]["used"]


# -- bad request bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("name, body, needle", [
    ("shrink", {}, "shrink takes"),
    ("shrink", {"one": True, "below_bytes": 1}, "shrink takes"),
    ("shrink", {"below_bytes": -1}, "must be >= 0"),
    ("shrink", {"below_bytes": "huge"}, "not a byte size"),
    ("invalidate", {}, "{\"key\""),
    ("invalidate", {"key": "nosegments"}, "2 segments"),
    ("invalidate", {"key": "a/b", "cascade": "yes"}, "'cascade' must be true or false"),
    ("invalidate-tag", {"tag": ""}, "must not be empty"),
    ("invalidate-tag", {"tag": 3}, "{\"tag\""),
    ("entries", "not json", "JSON object"),
    # wrong JSON types must be named too, not end as an opaque internal error
    ("entries", {"prefix": 5}, "prefix"),
    ("shrink", {"one": "yes"}, "one"),
    ("shrink", {"below_bytes": 10, "dry_run": 1}, "dry_run"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_management_actions_reject_bad_bodies(server, name, body, needle):
    c = server.client()
    put(c, "a/b", ints(5))
    msg = server_error(action, c, name, body)
    assert needle in msg and "Unexpected error" not in msg, msg
    assert keys(c) == ["a/b"]
    assert server.running()


def test_list_actions_names_the_management_actions(server):
    listed = {a.type: a.description for a in server.client().list_actions()}
    for name in ("entries", "shrink", "invalidate", "invalidate-tag", "config-get",
                 "config-set", "stats"):
        assert name in listed and listed[name], name
