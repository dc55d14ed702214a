"""The quiver command line: help, bad flags and config files, signals and shutdown."""

import json
import signal
import subprocess
import time

import pyarrow as pa
import pytest

from conftest import quiver_binary
from quiver_util import descriptor, get, get_table, put, write_config

SERVE_OPTIONS = ["--listen", "--data-dir", "--config", "--max-object-bytes", "--keep-versions",
                 "--log-level", "--no-verify-on-startup", "--help"]


def run_quiver(args, cwd, timeout=20):
    """Run quiver to completion (it must not start serving); returns CompletedProcess."""
    try:
        return subprocess.run([str(quiver_binary()), *args], cwd=cwd, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"quiver {args} did not exit within {timeout}s "
                             f"(stdout: {e.stdout!r})")


def test_help(workdir):
    r = run_quiver(["--help"], workdir)
    assert r.returncode == 0, r.stderr
    for word in ("serve", "--help", "--version"):
        assert word in r.stdout
    r = run_quiver(["serve", "--help"], workdir)
    assert r.returncode == 0, r.stderr
    for opt in SERVE_OPTIONS:
        assert opt in r.stdout, opt
    assert "quiver listening on" in r.stdout
    r = run_quiver(["--version"], workdir)
    assert r.returncode == 0 and r.stdout.startswith("quiver ")
    assert not (workdir / "quiver-data").exists(), "help must not create a data dir"


def test_no_subcommand_or_unknown_flag(workdir):
    r = run_quiver([], workdir)
    assert r.returncode != 0
    assert "subcommand" in (r.stdout + r.stderr).lower()
    r = run_quiver(["serve", "--data-dir", str(workdir / "d"), "--frobnicate"], workdir)
    assert r.returncode != 0
    assert "--frobnicate" in r.stdout + r.stderr


@pytest.mark.parametrize("case", [
    "keep-versions-0", "keep-versions-negative", "keep-versions-word",
    "max-object-bytes-lots", "max-object-bytes-unit", "max-object-bytes-zero",
    "config-missing", "config-unknown-field", "config-not-json", "config-not-object",
    "config-wrong-type", "config-bad-keep", "config-bad-size", "log-level",
    "listen-scheme", "listen-garbage", "shared-wildcard",
])
def test_bad_flags(workdir, case):
    data = ["--data-dir", str(workdir / "d")]
    listen = ["--listen", "grpc://127.0.0.1:0"]
    cases = {
        "keep-versions-0": (["--keep-versions", "0"], ["--keep-versions"]),
        "keep-versions-negative": (["--keep-versions", "-2"], ["--keep-versions"]),
        "keep-versions-word": (["--keep-versions", "many"], ["--keep-versions"]),
        "max-object-bytes-lots": (["--max-object-bytes", "lots"], ["'lots'", "byte size"]),
        "max-object-bytes-unit": (["--max-object-bytes", "12parsecs"],
                                  ["'12parsecs'", "unknown size unit"]),
        "max-object-bytes-zero": (["--max-object-bytes", "0"], ["max_object_bytes"]),
        "config-missing": (["--config", str(workdir / "missing.json")], ["missing.json"]),
        "config-unknown-field": (
            ["--config", str(write_config(workdir, "u.json", {"keep_versions": 2,
                                                                "keep_verions": 3}))],
            ["unknown field 'keep_verions'"]),
        "config-not-json": (["--config", str(write_config(workdir, "n.json", "{nope"))],
                            ["n.json", "not valid JSON"]),
        "config-not-object": (["--config", str(write_config(workdir, "a.json", [1, 2]))],
                              ["must hold a JSON object"]),
        "config-wrong-type": (["--config", str(write_config(workdir, "t.json",
                                                            {"keep_versions": "three"}))],
                              ["wrong type"]),
        "config-bad-keep": (["--config", str(write_config(workdir, "k.json",
                                                          {"keep_versions": 0}))],
                            ["keep_versions must be >= 1"]),
        "config-bad-size": (["--config", str(write_config(workdir, "s.json",
                                                          {"max_object_bytes": "big"}))],
                            ["max_object_bytes", "'big'"]),
        "log-level": (["--log-level", "loud"], ["log_level 'loud'"]),
        "listen-scheme": (["--listen", "http://127.0.0.1:0"], ["only grpc://"]),
        "listen-garbage": (["--listen", "not a uri"], ["not a uri"]),
        # Other nodes could not reach a node that advertises 0.0.0.0 (checked before the
        # index is contacted: no Redis needed).
        "shared-wildcard": (["--listen", "grpc://0.0.0.0:0", "--index", "redis://127.0.0.1:1"],
                            ["--advertise", "wildcard"]),
    }
    args, expected = cases[case]
    if not any(a == "--listen" for a in args):
        args = listen + args
    r = run_quiver(["serve", *data, *args], workdir)
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"quiver accepted {args}: {out}"
    assert "quiver listening on" not in r.stdout
    for text in expected:
        assert text in out, f"{text!r} not in {out!r}"


def test_listen_port_in_use(quiver, workdir):
    first = quiver()
    r = run_quiver(["serve", "--data-dir", str(workdir / "other"),
                    "--listen", f"grpc://127.0.0.1:{first.port}"], workdir)
    assert r.returncode != 0
    assert "quiver listening on" not in r.stdout
    assert f"127.0.0.1:{first.port}" in r.stderr
    assert first.running()


def test_config_file_and_flag_precedence(quiver, workdir):
    cfg = write_config(workdir, "q.json", {"keep_versions": 1, "max_object_bytes": "1MiB",
                                           "log_level": "debug", "shutdown_grace_s": 2})
    server = quiver(args=["--config", str(cfg), "--keep-versions", "2"])
    assert "max object 1.0 MiB, keeping 2 versions per key" in server.log()
    client = server.client()
    t = [pa.table({"v": [i]}) for i in range(3)]
    for x in t:
        put(client, "cfg/k", x)
    assert get_table(client, "cfg/k@2").equals(t[1])  # flag (2) beats config (1)
    with pytest.raises(KeyError):
        get(client, "cfg/k@1")
    server.wait_for_log("DoGet cfg/k@2", timeout=5)  # log_level debug from the config
    server.stop()
    assert "in-flight calls get 2 s" in server.log()


def test_data_dir_is_created(quiver, workdir):
    nested = workdir / "a" / "b" / "c"
    server = quiver(data_dir=nested)
    assert (nested / ".tmp").is_dir()
    put(server.client(), "s/o", pa.table({"v": [1]}))
    assert any((nested / "data").rglob("*.arrows"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_when_idle(quiver, sig):
    server = quiver()
    put(server.client(), "s/o", pa.table({"v": [1]}))
    start = time.monotonic()
    assert server.stop(sig=sig) == 0
    assert time.monotonic() - start < 5, "an idle server should stop at once"
    log = server.log()
    name = "SIGTERM" if sig == signal.SIGTERM else "SIGINT"
    assert f"received {name}, shutting down" in log
    assert log.rstrip().splitlines()[-1].endswith("quiver stopped")
    assert server.tmp_files() == []


def start_second_put(quiver, workdir, grace_s):
    """A server holding s/o@1 and a second put of s/o that has sent one batch (its temp
    file exists) and is still open. Returns (server, t, writer, reader)."""
    cfg = write_config(workdir, "g.json", {"shutdown_grace_s": grace_s})
    server = quiver(args=["--config", str(cfg)])
    client = server.client()
    t = pa.table({"v": list(range(10))})
    put(client, "s/o", t)
    writer, reader = client.do_put(descriptor("s/o"), t.schema)
    writer.write_table(t)
    deadline = time.monotonic() + 10
    while not server.tmp_files():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return server, t, writer, reader


def test_shutdown_lets_inflight_put_finish(quiver, workdir):
    server, t, writer, reader = start_second_put(quiver, workdir, 5)
    server.proc.send_signal(signal.SIGTERM)
    server.wait_for_log("received SIGTERM", timeout=5)
    writer.write_table(t)
    writer.done_writing()
    assert json.loads(reader.read().to_pybytes())["version"] == 2
    writer.close()
    assert server.proc.wait(timeout=10) == 0
    assert "quiver stopped" in server.log()
    server.start()
    got, meta, _, _ = get(server.client(), "s/o")
    assert meta["version"] == 2 and got.num_rows == 20


def test_shutdown_discards_stalled_put_after_grace(quiver, workdir):
    server, t, writer, reader = start_second_put(quiver, workdir, 1)
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=15) == 0
    elapsed = time.monotonic() - start
    assert 0.8 < elapsed < 8, elapsed
    assert "quiver stopped" in server.log()
    assert server.tmp_files() == [], "the discarded put left its temp file"
    with pytest.raises(pa.ArrowException):
        writer.write_table(t)
        writer.done_writing()
        reader.read()
        writer.close()
    server.start()
    got, meta, _, _ = get(server.client(), "s/o")
    assert meta["version"] == 1 and got.equals(t)
