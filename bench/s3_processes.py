"""The processes and probes of bench/s3_bench.py: s3proxy (tests/s3proxy.py) counted by its
request log, Quiver nodes on an S3 store, the Redis GET baseline, the stats a hit leaves,
and a node's resident memory."""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import redis as redis_py

from bench_env import proc_cpu_seconds, status_kib
from bench_servers import CALL, QuiverProcess
from s3proxy import S3Proxy
from shared_cluster import STARTED

HEAP = "2g"  # s3proxy's JVM heap: its transient backend holds the objects (256 MiB ones too)


class Proxy(S3Proxy):
    """tests/s3proxy.S3Proxy registered for stop_all; debug=True makes it log every request
    (LOG_LEVEL=debug: one "request: ... {METHOD@..." line each), so that they can be counted."""

    def __init__(self, work_dir: Path, debug: bool = False):
        super().__init__(work_dir=work_dir, heap=HEAP)
        self.debug = debug
        STARTED.append(self)

    def start(self):
        old = os.environ.get("LOG_LEVEL")
        if self.debug:
            os.environ["LOG_LEVEL"] = "debug"
        try:
            return super().start()
        finally:
            if self.debug:
                if old is None:
                    os.environ.pop("LOG_LEVEL", None)
                else:
                    os.environ["LOG_LEVEL"] = old

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def requests_since(self, offset: int, settle_s: float = 0.3) -> dict:
        """{METHOD: count} of the requests logged after byte `offset` of the log."""
        time.sleep(settle_s)  # the log is written by the request's thread; let it land
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        out: dict = {}
        for m in re.finditer(r"S3ProxyHandler:\d+ .*?\] request: .*?\{([A-Z]+)@", text):
            out[m.group(1)] = out.get(m.group(1), 0) + 1
        return out


def start_node(name: str, binary: Path, work: Path, extra=()) -> QuiverProcess:
    node = QuiverProcess(name, binary, work / name / "data", work / f"{name}.log", list(extra))
    STARTED.append(node)
    return node


def s3_args(proxy: S3Proxy, bucket: str, prefix: str) -> list[str]:
    return ["--store", f"s3://{bucket}/{prefix}", "--s3-region", proxy.region,
            "--s3-endpoint", proxy.endpoint, "--s3-ca-file", str(proxy.ca_file)]


class RedisTarget:
    """The Redis baseline as bench_servers.PairedRuns and bench_env.Phase see a server."""

    def __init__(self, redis):
        self.name, self.redis = "redis", redis
        self.proc, self.log_path = redis.proc, redis.log_path

    def connect(self):
        return redis_py.Redis(host="127.0.0.1", port=self.redis.port, protocol=2,
                              socket_timeout=600)

    def cpu(self) -> float:
        return proc_cpu_seconds(self.redis.proc.pid)


def redis_get(r, key: str, expect_rows: int) -> float:
    """What a user would build instead: GET the IPC stream's bytes, read them into a table."""
    t0 = time.perf_counter()
    data = r.get(key)
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    elapsed = time.perf_counter() - t0
    if table.num_rows != expect_rows:
        raise RuntimeError(f"Redis GET {key}: {table.num_rows} rows, expected {expect_rows}")
    return elapsed


def tier_counters(node: QuiverProcess) -> dict:
    st = node.stats()
    disk = st.get("disk_tier") or {}
    return {"hits": st["hits"], "misses": st["misses"], "memory_hits": st["memory"]["hits"],
            "memory_promotions": st["memory"]["promotions"],
            "disk_tier": bool(st.get("disk_tier")), "disk_hits": disk.get("hits", 0),
            "disk_copies": disk.get("copies_made", 0)}


class RssSampler:
    """VmRSS of a process every `interval` s in a thread; .peak_kib once stopped."""

    def __init__(self, pid: int, interval: float = 0.002):
        self.pid, self.interval, self.peak_kib = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, status_kib(self.pid, "VmRSS"))
            except (OSError, KeyError):
                return
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def stream_through(client, key: str) -> tuple[int, float]:
    """DoGet of key, each batch dropped as it comes (the client holds one at a time)."""
    t0 = time.perf_counter()
    reader = client.do_get(flight.Ticket(key.encode()), CALL)
    rows = 0
    for chunk in reader:
        rows += chunk.data.num_rows
    return rows, time.perf_counter() - t0
