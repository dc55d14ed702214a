"""The admin CLI against a real server: quiver ls, stats, shrink, invalidate and config
get/set, human-readable and --json output, --help, and errors (docs/management.md)."""

import json
import os
import re
import sqlite3
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import quiver_binary
from quiver_util import action, free_port, get, put, stats
from query_util import run_query, wait_for

ADMIN_COMMANDS = {
    ("ls",): ["--server", "--json", "--prefix", "--sort", "--reverse"],
    ("stats",): ["--server", "--json"],
    ("shrink",): ["--server", "--json", "--one", "--below", "--dry-run"],
    ("invalidate",): ["--server", "--json", "--tag", "--no-cascade", "key"],
    ("config",): ["get", "set"],
    ("config", "get"): ["--server", "--json"],
    ("config", "set"): ["--server", "--json", "NAME=VALUE", "half_life", "cache_size",
                        "memory_size"],
}


def cli(*args, server=None, env=None, timeout=30):
    """Run `quiver ARGS [--server LOCATION]`; returns the CompletedProcess."""
    cmd = [str(quiver_binary()), *args]
    if server is not None:
        cmd += ["--server", server.location]
    full_env = dict(os.environ)
    full_env.pop("QUIVER_SERVER", None)
    full_env.update(env or {})
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=full_env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"quiver {args} did not exit within {timeout}s "
                             f"(stdout: {e.stdout!r}, stderr: {e.stderr!r})")


def ok(*args, server=None, env=None):
    r = cli(*args, server=server, env=env)
    assert r.returncode == 0, f"quiver {' '.join(args)} -> {r.returncode}\n{r.stderr}"
    return r.stdout


def ok_json(*args, server=None, env=None):
    return json.loads(ok(*args, "--json", server=server, env=env))


def fails(*args, server=None, needle=None):
    r = cli(*args, server=server)
    assert r.returncode != 0, f"quiver {' '.join(args)} succeeded:\n{r.stdout}"
    if needle is not None:
        assert needle in r.stderr, f"{needle!r} not in stderr of quiver {args}:\n{r.stderr}"
    return r


def ints(n, start=0):
    return pa.table({"x": np.arange(start, start + n, dtype=np.int64)})


def put_with(client, key, table, **options):
    return put(client, key, table,
               app_metadata=json.dumps(options).encode() if options else None)


def entries(client, prefix=None):
    body = json.dumps({"prefix": prefix}).encode() if prefix is not None else b""
    result = next(iter(client.do_action(flight.Action("entries", body))))
    return pa.ipc.open_stream(result.body.to_pybytes()).read_all()


def keys(client):
    return sorted(entries(client).column("key").to_pylist())


def human(n):
    """FormatByteSize: bytes under 1 KiB exactly, else one decimal and a binary unit."""
    value, unit = float(n), 0
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and unit < 4:
        value /= 1024
        unit += 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {units[unit]}"


@pytest.fixture
def lite_db(workdir):
    path = workdir / "events.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, amount INTEGER)")
    con.executemany("INSERT INTO events VALUES (?, ?)", [(i, i % 7) for i in range(1, 101)])
    con.commit()
    con.close()
    return path


# -- help -------------------------------------------------------------------------------------


def test_help_lists_the_admin_commands(workdir):
    top = ok("--help")
    for name in ("ls", "stats", "shrink", "invalidate", "config"):
        assert re.search(rf"^\s+{name}\s", top, re.M), f"{name} missing from quiver --help"
    for command, words in ADMIN_COMMANDS.items():
        text = ok(*command, "--help")
        assert "Usage:" in text, command
        for word in words:
            assert word in text, f"{word} missing from quiver {' '.join(command)} --help"
    # help never needs a server
    assert not (workdir / "quiver-data").exists()


# -- ls ---------------------------------------------------------------------------------------


def test_ls_human_and_json(quiver, lite_db):
    srv = quiver(args=["--source", f"lite=sqlite://{lite_db}", "--memory-size", "1MiB"])
    c = srv.client()
    assert ok("ls", server=srv).strip().splitlines()[-1] == "0 entries"
    assert ok_json("ls", server=srv) == []

    put(c, "a/big", ints(10_000))  # 78.4 KiB
    put_with(c, "a/small", ints(10), depends_on=["a/big"], tags=["t"])  # 360 B
    get(c, "a/small")
    get(c, "a/small")  # promoted to memory on the first read, served from it on the second
    _, meta = run_query(c, source="lite", sql="SELECT sum(amount) AS s FROM events", ttl_s=120)
    qkey = "@q/" + meta[0]["key"]
    wait_for(lambda: qkey in keys(c), what="the query result to be cached")
    table = {r["key"]: r for r in entries(c).to_pylist()}

    text = ok("ls", server=srv)
    lines = text.strip().splitlines()
    assert lines[0].split() == ["KEY", "SIZE", "ROWS", "AGE", "HITS", "SCORE", "EXPIRES"]
    assert lines[-1] == "3 entries"
    body = {line.split()[0]: line for line in lines[1:-1]}
    assert sorted(body) == sorted(["a/big", "a/small", qkey[:37] + "..."])
    big, small, q = body["a/big"], body["a/small"], body[qkey[:37] + "..."]
    assert human(table["a/big"]["bytes"]) == "78.4 KiB" and "78.4 KiB" in big
    assert "360 B" in small and "(memory)" in small and "(memory)" not in big
    assert re.search(r"\s10000\s+\d+s\s+0\s+-?\d+\.\d\d\s+-$", big), big
    assert re.search(r"\s10\s+\d+s\s+2\s+-?\d+\.\d\d\s+-\s+\(memory\)$", small), small
    assert re.search(r"\sin (1m5\d|2m00)s$", q), q
    # key order by default
    assert [line.split()[0] for line in lines[1:-1]] == sorted(body)

    rows = ok_json("ls", server=srv)
    assert [r["key"] for r in rows] == sorted(table)
    for r in rows:
        t = table[r["key"]]
        assert r["bytes"] == t["bytes"] and r["rows"] == t["rows"]
        assert r["hits"] == t["accesses"] - 1
        assert r["in_memory"] == t["in_memory"]
        assert r["score"] == pytest.approx(t["score"])
        assert r["created_ms"] == int(t["created"].timestamp() * 1000)
        assert r["last_access_ms"] == int(t["last_access"].timestamp() * 1000)
    by_key = {r["key"]: r for r in rows}
    assert by_key["a/small"]["hits"] == 2 and by_key["a/small"]["in_memory"] is True
    assert by_key["a/big"]["expires_ms"] is None
    assert by_key[qkey]["expires_ms"] - by_key[qkey]["created_ms"] == 120_000

    # --sort, --reverse, --prefix
    def order(*flags):
        return [r["key"] for r in ok_json("ls", *flags, server=srv)]

    assert order("--sort", "size") == sorted(table, key=lambda k: -table[k]["bytes"])
    assert order("--sort", "size", "--reverse") == sorted(table, key=lambda k: table[k]["bytes"])
    assert order("--sort", "score") == sorted(table, key=lambda k: table[k]["score"])
    assert order("--sort", "hits")[0] == "a/small"
    assert order("--sort", "expiry")[0] == qkey
    assert order("--prefix", "a/") == ["a/big", "a/small"]
    assert order("--prefix", "@q/") == [qkey]
    assert order("--prefix", "zzz") == []
    assert ok("ls", "--prefix", "a/s", server=srv).strip().splitlines()[-1] == "1 entry"


# -- stats ------------------------------------------------------------------------------------


def test_stats_human_and_json(quiver):
    srv = quiver(args=["--cache-size", "200KiB", "--memory-size", "1MiB"])
    c = srv.client()
    for i in range(3):
        put(c, f"s/k{i}", ints(10_000))  # the third evicts one
    get(c, "s/k2")
    get(c, "s/k2")
    action(c, "invalidate", {"key": "s/k2"})
    s = stats(c)
    assert s["evictions"] == 1 and s["invalidations"] == 1

    assert ok_json("stats", server=srv) == s
    text = ok("stats", server=srv)
    lines = {line.split()[0]: line for line in text.strip().splitlines()}
    assert set(lines) == {"node", "entries", "disk", "memory", "objects", "queries",
                          "invalidated", "started", "durability"}
    assert re.search(r"started\s+0 keys in \d+ ms from the manifests \(no index journal yet\)$",
                     lines["started"]), lines["started"]
    assert re.search(r"durability\s+process \(\d+ flushes, 0 writes shared one, 0 failed\)$",
                     lines["durability"]), lines["durability"]
    assert re.search(r"node\s+\S+, index embedded \(ok\)$", lines["node"]), lines["node"]
    used = s["budget"]["used"]
    assert re.search(rf"entries\s+1 keys, 1 versions, {re.escape(human(used))}$",
                     lines["entries"]), lines["entries"]
    assert (f"{human(used)} of 200.0 KiB used (cost policy, half_life 1000), 1 evictions"
            in lines["disk"]), lines["disk"]
    assert "0 B of 1.0 MiB in 0 entries, 1 hits" in lines["memory"], lines["memory"]
    assert "3 puts (0 failed), 2 gets (2 hits, 0 misses, 0 not modified)" in lines["objects"]
    assert re.search(r"invalidated\s+1 entries$", lines["invalidated"])


# -- shrink -----------------------------------------------------------------------------------


def test_shrink(server):
    c = server.client()
    for i, n in enumerate([1_000, 4_000, 16_000, 32_000]):
        put(c, f"h/e{i}", ints(n))
    for _ in range(4):
        get(c, "h/e3")
    before = keys(c)

    expected = action(c, "shrink", {"below_bytes": "100KiB", "dry_run": True})["removed"]
    assert expected
    text = ok("shrink", "--below", "100KiB", "--dry-run", server=server)
    lines = text.strip().splitlines()
    noun = "entry" if len(expected) == 1 else "entries"
    assert lines[0] == f"would evict {len(expected)} {noun} (dry run: nothing removed)"
    assert [line.strip() for line in lines[1:]] == expected
    assert ok_json("shrink", "--below", "100KiB", "--dry-run", server=server) == {
        "removed": expected, "dry_run": True}
    assert keys(c) == before and stats(c)["evictions"] == 0

    text = ok("shrink", "--below", "100KiB", server=server)
    lines = text.strip().splitlines()
    assert lines[0] == f"evicted {len(expected)} {noun}"
    assert [line.strip() for line in lines[1:]] == expected
    assert keys(c) == sorted(set(before) - set(expected))
    assert stats(c)["budget"]["used"] <= 100 * 1024

    remaining = keys(c)
    lowest = min(entries(c).to_pylist(), key=lambda r: r["score"])["key"]
    assert ok_json("shrink", "--one", "--dry-run", server=server) == {
        "removed": [lowest], "dry_run": True}
    assert ok_json("shrink", "--one", server=server) == {"removed": [lowest], "dry_run": False}
    assert keys(c) == sorted(set(remaining) - {lowest})
    while keys(c):
        ok("shrink", "--one", server=server)
    assert ok("shrink", "--one", server=server).strip() == "evicted 0 entries"
    assert ok("shrink", "--below", "0", server=server).strip() == "evicted 0 entries"


# -- invalidate -------------------------------------------------------------------------------


def test_invalidate(server):
    c = server.client()
    put(c, "i/x", ints(1))
    put_with(c, "i/y", ints(2), depends_on=["i/x"])
    put_with(c, "i/z", ints(3), depends_on=["i/y"])
    put_with(c, "i/w", ints(4), tags=["table:w"])
    put_with(c, "i/v", ints(5), depends_on=["i/w"])
    put(c, "i/u", ints(6))

    text = ok("invalidate", "i/y", "--no-cascade", server=server)
    assert [line.strip() for line in text.strip().splitlines()] == ["invalidated 1 entry", "i/y"]
    assert keys(c) == ["i/u", "i/v", "i/w", "i/x", "i/z"]
    # i/z still depends on the missing i/y: a cascading invalidation of i/y reaches it
    assert ok_json("invalidate", "i/y", server=server) == {"removed": ["i/z"]}

    text = ok("invalidate", "--tag", "table:w", server=server)
    lines = [line.strip() for line in text.strip().splitlines()]
    assert lines[0] == "invalidated 2 entries" and sorted(lines[1:]) == ["i/v", "i/w"]
    assert keys(c) == ["i/u", "i/x"]

    assert ok_json("invalidate", "i/x", server=server) == {"removed": ["i/x"]}
    assert ok("invalidate", "i/x", server=server).strip() == "invalidated 0 entries"
    assert ok_json("invalidate", "--tag", "nothing", server=server) == {"removed": []}
    # query result keys are accepted
    assert ok_json("invalidate", "@q/" + "0" * 64, server=server) == {"removed": []}
    assert keys(c) == ["i/u"]
    assert stats(c)["invalidations"] == 5


# -- config -----------------------------------------------------------------------------------


def test_config_get_and_set(quiver):
    srv = quiver(args=["--cache-size", "10MiB"])
    c = srv.client()
    text = ok("config", "get", server=srv)
    assert [line.split(None, 1) for line in text.strip().splitlines()] == [
        ["half_life", "1000"], ["cache_size", "10.0 MiB"], ["memory_size", "0 B"],
        ["policy", "cost"]]
    assert ok_json("config", "get", server=srv) == action(c, "config-get")

    r = cli("config", "set", "half_life=2000", "cache_size=20GiB", "memory_size=256MiB",
            server=srv)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("saved")
    wanted = {"half_life": 2000.0, "cache_size": 20 << 30, "memory_size": 256 << 20,
              "policy": "cost", "max_entries": 1_000_000, "protect_s": 0.0}
    assert action(c, "config-get") == wanted
    text = ok("config", "get", server=srv)
    assert [line.split(None, 1) for line in text.strip().splitlines()] == [
        ["half_life", "2000"], ["cache_size", "20.0 GiB"], ["memory_size", "256.0 MiB"],
        ["policy", "cost"]]

    assert ok_json("config", "set", "half_life=500", server=srv) == {**wanted, "half_life": 500.0}
    assert ok_json("config", "set", "memory_size=1048576", server=srv)["memory_size"] == 1 << 20
    srv.restart()
    assert ok_json("config", "get", server=srv) == {**wanted, "half_life": 500.0,
                                                   "memory_size": 1 << 20}


def test_config_set_smaller_cache_size_evicts(server):
    c = server.client()
    for i in range(5):
        put(c, f"cs/k{i}", ints(10_000))
    out = ok_json("config", "set", "cache_size=200KiB", server=server)
    assert out["cache_size"] == 200 * 1024
    s = stats(c)
    assert s["entries"] == 2 and s["evictions"] == 3 and s["budget"]["used"] <= 200 * 1024


def test_config_set_prints_human_readable_sizes(server):
    """Every command prints human-readable sizes unless --json (docs/management.md)."""
    text = ok("config", "set", "cache_size=20GiB", "memory_size=256MiB", server=server)
    assert "21474836480" not in text and "268435456" not in text, text
    assert re.search(r"20(\.0)? ?GiB", text) and re.search(r"256(\.0)? ?MiB", text), text


# -- errors -----------------------------------------------------------------------------------


ERROR_CASES = [
    (["config", "set", "foo=1"], "unknown setting 'foo'"),
    (["config", "set", "cache_size=lots"], "'lots' is not a byte size"),
    (["config", "set", "memory_size=12parsecs"], "unknown size unit"),
    (["config", "set", "cache_size"], "is not NAME=VALUE"),
    (["config", "set", "half_life=abc"], "'abc' is not a number"),
    (["config", "set", "half_life=12abc"], "'12abc' is not a number"),
    (["config", "set"], "required"),
    (["config", "set", "half_life=2000", "max_entries=5"], "unknown setting 'max_entries'"),
    (["config", "set", "cache_size=0"], "cache_size must be > 0"),
    (["config", "set", "half_life=-1"], "half_life must be > 0"),
    (["config"], "subcommand"),
    (["invalidate"], "give KEY or --tag TAG"),
    (["invalidate", "a/b", "--tag", "t"], "excludes"),
    (["invalidate", "nokey"], "invalid key 'nokey'"),
    (["invalidate", "a/b/c/d"], "invalid key"),
    (["shrink"], "give --one or --below SIZE"),
    (["shrink", "--one", "--below", "1KiB"], "excludes"),
    (["shrink", "--below", "lots"], "'lots' is not a byte size"),
    (["shrink", "--below", "-5"], "out of range"),
    (["ls", "--sort", "bogus"], "bogus"),
    (["stats", "--frobnicate"], "--frobnicate"),
]


@pytest.mark.parametrize("args, needle", ERROR_CASES, ids=[" ".join(a) for a, _ in ERROR_CASES])
def test_errors_exit_nonzero_with_a_message(server, args, needle):
    c = server.client()
    put(c, "a/b", ints(5))
    settings = action(c, "config-get")
    r = fails(*args, server=server, needle=needle)
    assert r.stderr.strip(), "no message"
    assert keys(c) == ["a/b"], "a failed command changed the cache"
    assert action(c, "config-get") == settings, "a failed command changed the settings"


@pytest.mark.parametrize("args", [
    ["ls"], ["stats"], ["shrink", "--one"], ["shrink", "--below", "1GiB", "--dry-run"],
    ["invalidate", "a/b"], ["invalidate", "--tag", "t"], ["config", "get"],
    ["config", "set", "half_life=2"],
], ids=" ".join)
def test_unreachable_server(workdir, args):
    location = f"grpc://127.0.0.1:{free_port()}"
    for extra in ([], ["--json"]):
        r = cli(*args, *extra, "--server", location, timeout=30)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert r.stderr.startswith("quiver: "), r.stderr
        assert re.search(r"unavailable|failed to connect|Connection refused", r.stderr), r.stderr
        assert r.stdout == ""


def test_bad_server_address_and_the_environment_default(server):
    r = cli("stats", "--server", "nonsense")
    assert r.returncode == 1 and "bad server address 'nonsense'" in r.stderr, r.stderr
    # QUIVER_SERVER is the default server
    s = json.loads(ok("stats", "--json", env={"QUIVER_SERVER": server.location}))
    assert s["entries"] == 0 and "budget" in s
    # --server wins over QUIVER_SERVER
    r = cli("stats", "--json", server=server,
            env={"QUIVER_SERVER": f"grpc://127.0.0.1:{free_port()}"})
    assert r.returncode == 0, r.stderr
