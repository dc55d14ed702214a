"""Flame's object cache (github.com/xflops/flame, `flame-object-cache`) as a baseline server.

The harness does not build or ship Flame: it takes a command line (--flame-cache CMD) that
starts a `flame-object-cache` binary, with {config}, {port} and {data_dir} in it replaced by
a config file this module writes, a free loopback port and a data dir. The config is the
one Flame's README documents (a `cache:` section; the binary also wants a `cluster:`
section, unused by the cache): endpoint grpc://127.0.0.1:PORT, network_interface `lo` (the
cache advertises the first IPv4 address of the interface matching this regex), storage
`fs://DATA_DIR` (its persistent disk storage: one Arrow IPC file per object, written
before the put is answered, without fsync), eviction lru with max_memory 1G (the default).

The client side follows flamepy 0.6.0's `put_object(key_prefix, obj)` for a pyarrow Table
(flamepy/core/cache.py): the table's schema gets the metadata keys flame.cache.format =
arrow-table-v1, flame.cache.version = 0 and flame.cache.logical_type = pyarrow.table; DoPut
with a path descriptor of ONE element, "APP/SESSION" (the server generates the object id);
the PutResult's metadata is a BSON document {endpoint, key, version}. FlamePut does that
with the same bench_servers.do_put the Quiver puts use.
"""
from __future__ import annotations

import os
import shlex
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight

from bench_env import proc_cpu_seconds
from bench_servers import do_put

APP = "bench"
METADATA = {b"flame.cache.format": b"arrow-table-v1", b"flame.cache.version": b"0",
            b"flame.cache.logical_type": b"pyarrow.table"}


def flame_table(table: pa.Table) -> pa.Table:
    """table with the schema metadata flamepy adds to a pyarrow Table it puts."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **METADATA})


def bson_document(data: bytes) -> dict:
    """A flat BSON document (strings, int32, int64, double, bool), as Flame's PutResult
    metadata is."""
    (size,) = struct.unpack_from("<i", data, 0)
    out, pos = {}, 4
    while pos < size - 1:
        kind = data[pos]
        end = data.index(b"\0", pos + 1)
        name, pos = data[pos + 1:end].decode(), end + 1
        if kind == 0x02:
            (n,) = struct.unpack_from("<i", data, pos)
            out[name], pos = data[pos + 4:pos + 4 + n - 1].decode(), pos + 4 + n
        elif kind == 0x10:
            (out[name],), pos = struct.unpack_from("<i", data, pos), pos + 4
        elif kind == 0x12:
            (out[name],), pos = struct.unpack_from("<q", data, pos), pos + 8
        elif kind == 0x01:
            (out[name],), pos = struct.unpack_from("<d", data, pos), pos + 8
        elif kind == 0x08:
            out[name], pos = bool(data[pos]), pos + 1
        else:
            raise ValueError(f"BSON element type {kind:#x} not handled")
    return out


@dataclass(frozen=True)
class FlamePut:
    """A put of `table` (already flame_table'd) into session APP/<session>, as flamepy's
    put_object does; a flight_load operation (i is unused: the server names the object)."""
    session: str
    table: pa.Table

    def __call__(self, client, i: int = 0) -> float:
        descriptor = flight.FlightDescriptor.for_path(f"{APP}/{self.session}")
        elapsed, ref = do_put(client, "", self.table, descriptor=descriptor,
                              decode=bson_document)
        if not ref.get("key", "").startswith(f"{APP}/{self.session}/"):
            raise RuntimeError(f"unexpected PutResult from Flame's cache: {ref}")
        return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """\
cluster:
  name: flame
  endpoint: "http://127.0.0.1:8080"
cache:
  endpoint: "grpc://127.0.0.1:{port}"
  network_interface: "lo"
  storage: "fs://{data_dir}"
  eviction:
    policy: "lru"
    max_memory: "1G"
"""


class FlameCache:
    """A flame-object-cache process started from a command template; ready when its port
    accepts connections (it binds only after loading its storage). Same shape as bench_servers.Server (name, proc, log_path,
    location, client, cpu(), stop())."""

    def __init__(self, command: str, work: Path, name: str = "flame", timeout: float = 60):
        self.name = name
        work.mkdir(parents=True, exist_ok=True)
        self.data_dir = work / "data"
        self.data_dir.mkdir(exist_ok=True)
        port = free_port()
        config = work / "flame-cluster.yaml"
        config.write_text(CONFIG.format(port=port, data_dir=self.data_dir))
        argv = [a.format(config=config, port=port, data_dir=self.data_dir)
                for a in shlex.split(command)]
        self.argv = argv
        self.log_path = work / "flame.log"
        self._log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if k != "FLAME_CACHE_STORAGE"}
        env.update(FLAME_HOME=str(work), RUST_LOG=env.get("RUST_LOG", "info"))
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=work,
                                     env=env, start_new_session=True)
        self.location = f"grpc://127.0.0.1:{port}"
        self.client = None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"Flame's cache exited with code {self.proc.returncode}; "
                                   f"see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Flame's cache did not listen on {port} within "
                                       f"{timeout:.0f} s; see {self.log_path}")
                time.sleep(0.05)
        self.client = flight.connect(self.location)

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self.client = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
