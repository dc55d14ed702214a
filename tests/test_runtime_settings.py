"""Run-time settings against the real server: config-get / config-set, their persistence
across restarts, a smaller cache_size evicting at once, and refused settings
(docs/management.md)."""

import json

import pytest

from management_util import (disk_bytes, entries, expected_victims, ints, keys,
                             keys_before_minus, read, server_error, stored_size)
from quiver_util import action, put, stats

# -- run-time settings --------------------------------------------------------------------------


def test_config_set_survives_a_restart(quiver):
    srv = quiver(args=["--cache-size", "10MiB"])
    c = srv.client()
    assert action(c, "config-get") == {"half_life": 1000.0, "cache_size": 10 << 20,
                                       "memory_size": 0, "policy": "cost",
                                       "max_entries": 1_000_000, "protect_s": 0.0}
    wanted = {"half_life": 2000.0, "cache_size": 64 << 20, "memory_size": 1 << 20,
              "policy": "cost", "max_entries": 1_000_000, "protect_s": 0.0}
    got = action(c, "config-set", {"half_life": 2000, "cache_size": "64MiB",
                                   "memory_size": 1048576})
    assert got == wanted
    assert action(c, "config-get") == wanted
    s = stats(c)
    assert s["budget"]["half_life"] == 2000 and s["budget"]["cache_size"] == 64 << 20
    assert s["memory"]["capacity"] == 1 << 20

    srv.restart()
    c = srv.client()
    assert action(c, "config-get") == wanted
    # A partial change keeps the other saved settings, also across a restart, and the
    # saved settings win over the flags of a later start.
    assert action(c, "config-set", {"half_life": 500})["cache_size"] == 64 << 20
    srv.restart(args=["--cache-size", "5MiB", "--half-life", "7"])
    c = srv.client()
    assert action(c, "config-get") == {**wanted, "half_life": 500.0}
    s = stats(c)
    assert s["budget"]["cache_size"] == 64 << 20 and s["memory"]["capacity"] == 1 << 20
    assert "using settings saved by config-set" in srv.log()


def test_a_smaller_cache_size_evicts_at_once(quiver):
    size = stored_size(10_000)
    srv = quiver(args=["--cache-size", "10MiB"])
    c = srv.client()
    for i in range(10):
        put(c, f"c/k{i}", ints(10_000))
    for i in (2, 5, 7):
        for _ in range(5):
            read(c, f"c/k{i}")
    before = entries(c).to_pylist()
    new_size = 4 * size + size // 2
    expected = expected_victims(before, 0, new_size)
    assert len(expected) == 6

    got = action(c, "config-set", {"cache_size": new_size})
    assert got["cache_size"] == new_size
    s = stats(c)
    assert s["evictions"] == 6 and s["entries"] == 4
    assert s["budget"]["used"] == 4 * size <= new_size
    assert disk_bytes(srv) == 4 * size
    survivors = keys(c)
    assert survivors == keys_before_minus(before, expected)

    # Still within the smaller budget after a restart (it was saved), and a put evicts.
    srv.restart()
    c = srv.client()
    assert action(c, "config-get")["cache_size"] == new_size
    assert keys(c) == survivors
    put(c, "c/new", ints(10_000))
    assert len(keys(c)) == 4 and "c/new" in keys(c)
    assert disk_bytes(srv) <= new_size


@pytest.mark.parametrize("body, needle", [
    ({"bogus": 1}, "unknown setting 'bogus'"),
    ({"cache_size": "lots"}, "'lots' is not a byte size"),
    ({"cache_size": "12parsecs"}, "unknown size unit"),
    ({"cache_size": 0}, "cache_size must be > 0"),
    ({"cache_size": -5}, "cache_size must be > 0"),
    ({"cache_size": True}, "byte count"),
    ({"memory_size": -1}, "memory_size must be >= 0"),
    ({"half_life": 0}, "half_life must be > 0"),
    ({"half_life": "x"}, "'half_life' must be a number"),
    ({"half_life": 3000, "cache_size": 0}, "cache_size must be > 0"),
    ({"memory_size": "1MiB", "zzz": 1}, "unknown setting 'zzz'"),
    ("[1, 2]", "JSON object"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_config_set_rejects_bad_settings(server, body, needle):
    c = server.client()
    before = action(c, "config-get")
    msg = server_error(action, c, "config-set", body)
    assert needle in msg, msg
    assert action(c, "config-get") == before, "a refused config-set changed something"
    server.restart()
    assert action(server.client(), "config-get") == before
