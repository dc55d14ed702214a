"""The data commands of the quiver CLI against a real server: quiver put, get and query
(docs/cli.md) — every input format to every output format, previews, --json, exit codes,
atomic output files, and the progress bar under a real pseudo-terminal."""

import json
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest

from conftest import quiver_binary
from quiver_util import free_port, get_table, stats
from query_util import wait_for

EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_UNAVAILABLE, EXIT_TIMEOUT, EXIT_TOO_LARGE = (
    2, 3, 4, 5, 6, 7)

DATA_COMMANDS = {
    "put": ["KEY", "FILE", "--format", "--if-version", "--depends-on", "--tag", "--server",
            "--timeout", "--json", "--no-progress"],
    "get": ["KEY", "--version", "-o", "--format", "--server", "--timeout", "--json",
            "--no-progress"],
    "query": ["--source", "SQL", "--param", "--ttl", "-o", "--format", "--server",
              "--timeout", "--json", "--no-progress"],
}


def cli(*args, server=None, timeout=60):
    """Run `quiver ARGS [--server LOCATION]` with stdout/stderr piped."""
    cmd = [str(quiver_binary()), *args]
    if server is not None:
        cmd += ["--server", server.location]
    env = {k: v for k, v in os.environ.items() if k != "QUIVER_SERVER"}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"quiver {args} did not exit within {timeout}s "
                             f"(stdout: {e.stdout!r}, stderr: {e.stderr!r})")


def ok(*args, server=None):
    r = cli(*args, server=server)
    assert r.returncode == 0, f"quiver {' '.join(map(str, args))} -> {r.returncode}\n{r.stderr}"
    assert r.stderr == "", r.stderr  # no progress bar, no logs when piped
    return r.stdout


def ok_json(*args, server=None):
    return json.loads(ok(*args, "--json", server=server))


def fails(*args, code, needle, server=None):
    r = cli(*args, server=server)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert needle in r.stderr, f"{needle!r} not in stderr:\n{r.stderr}"
    assert r.stderr.startswith("quiver "), r.stderr
    assert r.stdout == "", r.stdout
    return r


def sample(n=25):
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "score": pa.array([i * 0.25 for i in range(n)], pa.float64()),
        "name": pa.array([f"name-{i}" for i in range(n)], pa.string()),
        "flag": pa.array([i % 3 == 0 for i in range(n)], pa.bool_()),
    })


def write_input(path, table, fmt):
    """`table` in `fmt`, in several batches / row groups so the put streams."""
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=10)
    elif fmt == "feather":
        feather.write_feather(table, path, chunksize=10)
    elif fmt == "arrows":
        with pa.ipc.new_stream(path, table.schema) as w:
            for b in table.to_batches(max_chunksize=10):
                w.write_batch(b)
    elif fmt == "csv":
        pacsv.write_csv(table, path)
    return path


def read_output(path, fmt):
    if fmt == "parquet":
        return pq.read_table(path)
    if fmt in ("arrow", "feather"):
        return feather.read_table(path)
    if fmt == "arrows":
        return pa.ipc.open_stream(path).read_all()
    return pacsv.read_csv(path)


def entry_keys(client):
    return sorted(f.descriptor.path[0].decode() + "/" + f.descriptor.path[1].decode()
                  for f in client.list_flights())


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".quiver-" in p.name)


# -- help ----------------------------------------------------------------------------------


def test_help_lists_the_data_commands():
    top = ok("--help")
    for name in DATA_COMMANDS:
        assert re.search(rf"^\s+{name}\s", top, re.M), f"{name} missing from quiver --help"
    for name, words in DATA_COMMANDS.items():
        text = ok(name, "--help")
        assert "Usage:" in text
        for word in words:
            assert word in text, f"{word} missing from quiver {name} --help"


# -- put and get: every format -----------------------------------------------------------


@pytest.mark.parametrize("in_fmt,ext", [("parquet", "parquet"), ("feather", "feather"),
                                        ("arrows", "arrows"), ("csv", "csv")])
def test_put_each_format_then_get_to_each_format(server, workdir, in_fmt, ext):
    table = sample()
    src = write_input(workdir / f"in.{ext}", table, in_fmt)
    key = f"fmt/{in_fmt}"
    out = ok_json("put", key, str(src), server=server)
    assert out["ref"]["key"] == key and out["ref"]["version"] == 1
    assert out["ref"]["endpoint"] == server.location
    assert out["rows"] == 25 and out["bytes"] > 0 and out["elapsed_ms"] >= 0
    stored = get_table(server.client(), key)
    assert stored.equals(table), (stored.schema, table.schema)

    for fmt, name in [("parquet", "o.parquet"), ("arrow", "o.arrow"), ("feather", "o.feather"),
                      ("arrows", "o.arrows"), ("csv", "o.csv")]:
        path = workdir / name
        res = ok_json("get", key, "-o", str(path), server=server)
        assert res["rows"] == 25 and res["output"] == str(path)
        assert res["ref"] == {"endpoint": server.location, "key": key, "version": 1}
        assert read_output(path, fmt).equals(table), fmt
    # --format wins over the extension
    path = workdir / "as-parquet.bin"
    ok("get", key, "-o", str(path), "--format", "parquet", server=server)
    assert pq.read_table(path).equals(table)
    assert leftovers(workdir) == []


def test_put_format_flag_and_arrow_stream_in_an_arrow_file(server, workdir):
    table = sample(7)
    # An .arrow file holding the IPC stream format is told apart by its magic bytes.
    src = write_input(workdir / "data.arrow", table, "arrows")
    ok("put", "s/a", str(src), server=server)
    # No extension: --format says it.
    odd = write_input(workdir / "data.bin", table, "parquet")
    ok("put", "s/b", str(odd), "--format", "parquet", server=server)
    c = server.client()
    assert get_table(c, "s/a").equals(table) and get_table(c, "s/b").equals(table)


def test_put_human_output_and_versions(server, workdir):
    src = write_input(workdir / "t.parquet", sample(), "parquet")
    first = ok("put", "s/obj", str(src), server=server)
    assert re.match(r"stored s/obj version 1 \(25 rows, .* from .*t\.parquet in .*\)", first)
    second = ok("put", "s/obj", str(src), server=server)
    assert "stored s/obj version 2" in second
    old = ok_json("get", "s/obj", "--version", "1", server=server)
    assert old["ref"]["version"] == 1 and old["rows"] == 25


# -- preview -------------------------------------------------------------------------------


def test_get_preview_shows_columns_types_and_first_rows(server, workdir):
    src = write_input(workdir / "t.feather", sample(), "feather")
    ok("put", "p/v", str(src), server=server)
    text = ok("get", "p/v", server=server)
    lines = text.splitlines()
    assert lines[0].startswith("p/v version 1 (25 rows")
    header = lines[2].split()
    assert header == ["id", "score", "name", "flag"], lines
    assert lines[3].split() == ["int64", "double", "string", "bool"], lines
    assert set(lines[4]) <= {"-", " "}
    assert lines[5].split() == ["0", "0", "name-0", "true"], lines
    assert lines[14].split() == ["9", "2.25", "name-9", "true"], lines
    assert "name-10" not in text  # only the first 10 rows
    assert lines[15] == "(10 of 25 rows)"


# -- options: compare-and-set, dependencies, tags --------------------------------------------


def test_if_version_conflict_exit_code_and_nothing_stored(server, workdir):
    src = write_input(workdir / "t.csv", sample(), "csv")
    c = server.client()
    assert ok_json("put", "c/x", str(src), "--if-version", "0", server=server)["ref"]["version"] == 1
    assert ok_json("put", "c/x", str(src), "--if-version", "1", server=server)["ref"]["version"] == 2
    fails("put", "c/x", str(src), "--if-version", "1", code=EXIT_CONFLICT,
          needle="version conflict: 'c/x' is at version 2, not 1", server=server)
    fails("put", "c/x", str(src), "--if-version", "0", code=EXIT_CONFLICT,
          needle="version conflict: 'c/x' is at version 2, not 0", server=server)
    info = c.get_flight_info(flight.FlightDescriptor.for_path("c", "x"))
    assert json.loads(info.app_metadata)["version"] == 2, "a refused put was stored"
    assert stats(c)["entries"] == 1


def test_depends_on_and_tags_reach_the_entry(server, workdir):
    src = write_input(workdir / "t.parquet", sample(5), "parquet")
    ok("put", "d/raw", str(src), "--tag", "table:events", "--tag", "t2", server=server)
    # repeatable options take one value each: the positionals after them stay positionals
    ok("put", "--depends-on", "d/raw", "d/clean", str(src), server=server)
    result = next(iter(server.client().do_action(flight.Action("entries", b""))))
    entries = pa.ipc.open_stream(result.body.to_pybytes()).read_all().to_pylist()
    by_key = {e["key"]: e for e in entries}
    assert by_key["d/raw"]["tags"] == ["table:events", "t2"]
    assert by_key["d/clean"]["depends_on"] == ["d/raw"]
    ok("invalidate", "d/raw", server=server)
    assert entry_keys(server.client()) == []


# -- bad input -----------------------------------------------------------------------------


def test_bad_input_is_named_and_nothing_is_stored(server, workdir):
    good = write_input(workdir / "t.parquet", sample(5), "parquet")
    (workdir / "notes.txt").write_text("a,b\n1,2\n")
    (workdir / "garbage.parquet").write_bytes(b"not a parquet file at all")
    fails("put", "s/o", str(workdir / "missing.parquet"), code=EXIT_USAGE,
          needle="no such file: '" + str(workdir / "missing.parquet") + "'", server=server)
    fails("put", "s/o", str(workdir / "notes.txt"), code=EXIT_USAGE,
          needle="cannot tell the format of", server=server)
    fails("put", "s/o", str(good), "--format", "xlsx", code=EXIT_USAGE,
          needle="unknown format 'xlsx'", server=server)
    fails("put", "s/o", str(workdir / "garbage.parquet"), code=EXIT_USAGE,
          needle="cannot read '" + str(workdir / "garbage.parquet") + "' as parquet",
          server=server)
    for key in ["nosession", "a/../b", "s/o/p/q", "s/bad key"]:
        fails("put", key, str(good), code=EXIT_USAGE, needle=f"bad key '{key}'", server=server)
        fails("get", key, code=EXIT_USAGE, needle=f"bad key '{key}'", server=server)
    fails("get", "s/o", "-o", str(workdir / "out.xyz"), code=EXIT_USAGE,
          needle="cannot tell the format", server=server)
    fails("get", "s/o", "--format", "csv", code=EXIT_USAGE, needle="--format applies to",
          server=server)
    fails("get", "s/o", "-o", str(workdir / "no-dir" / "x.csv"), code=EXIT_USAGE,
          needle="no directory", server=server)
    # a usage error of the parser (missing FILE) is exit code 2 too
    r = cli("put", "s/o", server=server)
    assert r.returncode == EXIT_USAGE and "FILE is required" in r.stderr, r.stderr
    assert stats(server.client())["entries"] == 0 and stats(server.client())["puts"] == 0
    assert leftovers(workdir) == []


def test_csv_failing_mid_stream_stores_nothing(server, workdir):
    # The types come from the first block; a bad value far past it fails the read after
    # the upload has begun. The put is aborted, not committed short.
    path = workdir / "big.csv"
    with open(path, "w") as f:
        f.write("n\n")
        f.write("\n".join(str(i) for i in range(3_000_000)))
        f.write("\nnot-a-number\n")
    fails("put", "m/csv", str(path), code=EXIT_USAGE, needle="nothing was stored",
          server=server)
    log = server.wait_for_log("the client aborted the put (")
    assert "CSV conversion error" in log.split("the client aborted the put (", 1)[1], log
    assert stats(server.client())["entries"] == 0
    assert entry_keys(server.client()) == []


def test_too_large_is_its_own_exit_code(quiver, workdir):
    srv = quiver(args=["--max-object-bytes", "4KiB"])
    src = write_input(workdir / "t.parquet", pa.table({"x": np.arange(10_000)}), "parquet")
    fails("put", "big/x", str(src), code=EXIT_TOO_LARGE, needle="max_object_bytes", server=srv)
    assert stats(srv.client())["entries"] == 0


# -- atomic output ---------------------------------------------------------------------------


def test_failed_get_leaves_the_existing_file_and_no_temp_file(server, workdir):
    out = workdir / "keep.parquet"
    out.write_bytes(b"precious old content")
    fails("get", "s/missing", "-o", str(out), code=EXIT_NOT_FOUND, needle="not found",
          server=server)
    assert out.read_bytes() == b"precious old content"
    src = write_input(workdir / "t.parquet", sample(), "parquet")
    ok("put", "s/there", str(src), server=server)
    fails("get", "s/there", "--version", "7", "-o", str(out), code=EXIT_NOT_FOUND,
          needle="not found", server=server)
    assert out.read_bytes() == b"precious old content"
    assert leftovers(workdir) == []
    # a successful get replaces it whole
    ok("get", "s/there", "-o", str(out), server=server)
    assert pq.read_table(out).equals(sample())
    assert leftovers(workdir) == []


def test_get_to_a_file_under_nohup_survives_sighup(server, workdir):
    # nohup (or a shell's background job) ignores SIGHUP: the output file's clean-up
    # handler must not replace that, or a closed terminal kills the transfer.
    n = 4_000_000
    big = pa.table({"x": np.arange(n, dtype=np.int64), "y": np.arange(n, dtype=np.float64)})
    src = workdir / "big.feather"
    feather.write_feather(big, src, chunksize=200_000)
    ok("put", "h/big", str(src), server=server)
    out = workdir / "out.csv"

    def ignore_hup_and_int():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([str(quiver_binary()), "get", "h/big", "-o", str(out),
                             "--server", server.location],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=ignore_hup_and_int)
    try:
        wait_for(lambda: leftovers(workdir), what="the output's temporary file")
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGINT)
        # The temporary file outlived the signals: they reached the transfer, not its end.
        assert leftovers(workdir), "the transfer ended before the signals; make it longer"
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, (proc.returncode, stderr)
    assert pacsv.read_csv(out).num_rows == n
    assert leftovers(workdir) == []


def test_output_over_a_file_keeps_its_mode_and_writes_through_symlinks(server, workdir):
    src = write_input(workdir / "t.parquet", sample(), "parquet")
    ok("put", "m/o", str(src), server=server)
    private = workdir / "private.csv"
    private.write_text("old")
    private.chmod(0o600)
    ok("get", "m/o", "-o", str(private), server=server)
    assert pacsv.read_csv(private).equals(sample())
    assert private.stat().st_mode & 0o777 == 0o600
    # A symlink stays a link; the file it points to gets the data.
    (workdir / "real").mkdir()
    real = workdir / "real" / "data.parquet"
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = workdir / "latest.parquet"
    link.symlink_to("real/data.parquet")
    ok("get", "m/o", "-o", str(link), server=server)
    assert link.is_symlink() and os.readlink(link) == "real/data.parquet"
    assert pq.read_table(real).equals(sample())
    assert real.stat().st_mode & 0o777 == 0o640
    assert leftovers(workdir) == [] and leftovers(workdir / "real") == []
    # A link to nothing is refused before anything is fetched.
    dangling = workdir / "dangling.csv"
    dangling.symlink_to("nowhere/x.csv")
    fails("get", "m/o", "-o", str(dangling), code=EXIT_USAGE,
          needle=f"cannot write '{dangling}': it is a symlink to a missing file", server=server)
    assert dangling.is_symlink()


def test_preview_escapes_control_characters(server, workdir):
    table = pa.table({"s": ["\x1b[31mred", "two\nlines", "bell\x07", "csi\x9b2J"]})
    src = write_input(workdir / "t.parquet", table, "parquet")
    ok("put", "e/esc", str(src), server=server)
    text = ok("get", "e/esc", server=server)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f\x80-\x9f]", text), repr(text)
    for shown in [r"\x1b[31mred", r"two\nlines", r"bell\x07", r"csi\u009b2J"]:
        assert shown in text, (shown, text)
    assert text.rstrip("\n").splitlines()[-1] == "(4 rows)"


def test_csv_output_of_a_list_column_names_the_file_format_and_column(server, workdir):
    table = pa.table({"id": [1, 2], "tags": [["a", "b"], []]})
    src = write_input(workdir / "t.feather", table, "feather")
    ok("put", "l/tags", str(src), server=server)
    out = workdir / "x.csv"
    fails("get", "l/tags", "-o", str(out), code=1,
          needle=f"cannot write '{out}' as csv: column 'tags' has type list<item: string>, "
                 "which CSV cannot hold; write Parquet or Arrow IPC instead", server=server)
    assert not out.exists() and leftovers(workdir) == []
    ok("get", "l/tags", "-o", str(workdir / "x.arrow"), server=server)
    assert feather.read_table(workdir / "x.arrow").equals(table)


def test_unreachable_server_is_unavailable(workdir):
    location = f"grpc://127.0.0.1:{free_port()}"
    src = write_input(workdir / "t.csv", sample(3), "csv")
    for args in (["put", "s/o", str(src)], ["get", "s/o"], ["query", "--source", "x", "SELECT 1"]):
        r = cli(*args, "--server", location, "--timeout", "20")
        assert r.returncode == EXIT_UNAVAILABLE, (args, r.returncode, r.stderr)
        assert f"cannot reach {location}" in r.stderr, r.stderr
        assert r.stdout == ""


# -- query ---------------------------------------------------------------------------------


@pytest.fixture
def lite(quiver, workdir):
    db = workdir / "events.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, grp TEXT, amount INTEGER)")
    con.executemany("INSERT INTO events VALUES (?, ?, ?)",
                    [(i, f"g{i % 4}", i % 10) for i in range(1, 1001)])
    con.commit()
    con.close()
    srv = quiver(args=["--source", f"lite=sqlite://{db}"])
    srv.db = db
    return srv


AGG = "SELECT grp, count(*) AS n, sum(amount) AS total FROM events GROUP BY grp ORDER BY grp"


def test_query_miss_then_hit_json_and_files(lite, workdir):
    first = ok_json("query", "--source", "lite", AGG, "--ttl", "120", server=lite)
    assert first["cache"] == "miss" and first["rows"] == 4 and first["bytes"] > 0
    assert len(first["key"]) == 64 and first["elapsed_ms"] >= first["first_batch_ms"] >= 0
    assert [f["name"] for f in first["schema"]] == ["grp", "n", "total"]

    def hit():
        r = ok_json("query", "--source", "lite", AGG, "--ttl", "120", server=lite)
        return r if r["cache"] == "hit" else None

    second = wait_for(hit, what="the query result to be cached")  # commits after its stream
    assert second["key"] == first["key"] and second["rows"] == 4
    assert second["metadata"]["exec_ms"] >= 0

    text = ok("query", "--source", "lite", AGG, "--ttl", "120", server=lite)
    assert text.startswith("hit, computed ") and "expires in" in text, text
    assert "grp" in text and "g0" in text and "(4 rows)" in text

    out = workdir / "agg.csv"
    ok("query", "--source", "lite", AGG, "--ttl", "120", "-o", str(out), server=lite)
    con = sqlite3.connect(lite.db)
    expected = con.execute(AGG).fetchall()
    assert [tuple(r.values()) for r in pacsv.read_csv(out).to_pylist()] == expected

    # parameters keep their JSON type; strings stay strings
    n = ok_json("query", "--source", "lite", "SELECT count(*) AS n FROM events WHERE "
                "amount = ? AND grp = ?", "--param", "3", "--param", "g3", "-o",
                str(workdir / "n.parquet"), server=lite)
    assert n["cache"] == "miss"
    assert pq.read_table(workdir / "n.parquet").column("n").to_pylist() == [
        con.execute("SELECT count(*) FROM events WHERE amount = 3 AND grp = 'g3'").fetchone()[0]]
    con.close()


def test_query_errors(lite):
    # the server refuses both as invalid requests, and its message names the problem
    fails("query", "--source", "nope", "SELECT 1", code=EXIT_USAGE,
          needle="invalid request: query: unknown source 'nope'; configured sources: lite",
          server=lite)
    r = fails("query", "--source", "lite", "SELEKT broken", code=EXIT_USAGE,
              needle='near "SELEKT": syntax error', server=lite)
    assert "gRPC client debug context" not in r.stderr, r.stderr
    # a query slower than --timeout (seconds of SQLite work): the client gives up
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000000)"
            " SELECT count(*) AS c FROM n")
    started = time.monotonic()
    fails("query", "--source", "lite", slow, "--timeout", "0.3", code=EXIT_TIMEOUT,
          needle="timed out", server=lite)
    assert time.monotonic() - started < 10
    r = cli("query", "SELECT 1", server=lite)
    assert r.returncode == EXIT_USAGE and "--source is required" in r.stderr, r.stderr


def test_interrupted_query_to_file_leaves_no_temp_file(lite, workdir):
    # A result that streams for seconds: the output's temporary file exists while it does.
    rows = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000000)"
            " SELECT i FROM n")
    out = workdir / "keep.csv"
    out.write_text("old")
    proc = subprocess.Popen([str(quiver_binary()), "query", "--source", "lite", rows, "-o",
                             str(out), "--server", lite.location],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: leftovers(workdir), what="the output's temporary file")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGINT, (proc.returncode, proc.stderr.read())
    assert out.read_text() == "old"
    assert leftovers(workdir) == []


# -- progress ------------------------------------------------------------------------------


def run_in_pty(args, timeout=60):
    """Run quiver with stdout and stderr on a new pseudo-terminal; returns (code, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(quiver_binary()), *args], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=10)
    return code, b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_only(server, workdir):
    big = pa.table({"x": np.arange(2_500_000, dtype=np.int64),
                    "y": np.arange(2_500_000, dtype=np.float64)})  # 40 MB
    src = workdir / "big.feather"
    feather.write_feather(big, src, chunksize=100_000)

    code, output = run_in_pty(["put", "b/big", str(src), "--server", server.location])
    assert code == 0, output
    assert re.search(r"put b/big .*MiB/s .*rows", output), output
    assert "\r" in output and "100%" in output and "2,500,000 rows" in output, output
    assert "stored b/big version 1" in output

    code, output = run_in_pty(["get", "b/big", "-o", str(workdir / "big.parquet"),
                               "--server", server.location])
    assert code == 0, output
    assert re.search(r"get b/big .*MiB/s .*2,500,000 rows", output), output

    # --no-progress on a terminal, and a pipe: no bar
    code, output = run_in_pty(["get", "b/big", "-o", str(workdir / "big2.parquet"),
                               "--no-progress", "--server", server.location])
    assert code == 0 and "MiB/s" not in output and "\r" not in output.replace("\r\n", "\n")
    r = cli("get", "b/big", "-o", str(workdir / "big3.parquet"), server=server)
    assert r.returncode == 0 and r.stderr == "" and "MiB/s" not in r.stdout
    assert pq.read_table(workdir / "big3.parquet").equals(big)

    # a small transfer draws nothing even on a terminal
    small = write_input(workdir / "small.csv", sample(), "csv")
    code, output = run_in_pty(["put", "b/small", str(small), "--server", server.location])
    assert code == 0 and "MiB/s" not in output, output
