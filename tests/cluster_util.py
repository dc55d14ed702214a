"""Shared mode in tests: real Redis/Valkey servers and clusters of real quiver nodes.

``RedisServer`` runs ``redis-server`` (or ``valkey-server``) on 127.0.0.1 with a free port
and a temp dir, no persistence. ``Cluster`` runs N ``quiver serve`` processes that share one
data dir and one index (``--index redis://...`` with a prefix of its own). ``ClusterServer``
is a two-node cluster that looks like one ``QuiverServer`` to the existing integration tests:
its clients spread their calls over the nodes, and its ``stats`` add up the nodes' counters.
"""

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pyarrow.flight as flight
import redis as redis_py

STARTUP_TIMEOUT_S = 15


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binaries():
    """The Redis-compatible servers installed here, among redis-server and valkey-server."""
    return [b for b in ("redis-server", "valkey-server") if shutil.which(b)]


class RedisServer:
    """A real Redis-compatible server on 127.0.0.1 (no persistence: a restart empties it)."""

    def __init__(self, binary, work_dir):
        self.binary = binary
        self.dir = Path(work_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = None
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def client(self):
        return redis_py.Redis(host="127.0.0.1", port=self.port, socket_timeout=5,
                              decode_responses=True)

    def start(self):
        for _ in range(5):
            self.port = self.port or free_port()
            log = open(self.dir / f"{self.binary}.log", "ab")
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if self.client().ping():
                        return self
                except redis_py.exceptions.ConnectionError:
                    time.sleep(0.02)
            self.kill()
            self.port = None  # the port was taken meanwhile: pick another
        raise AssertionError(f"{self.binary} did not start: {self.log()}")

    def log(self):
        path = self.dir / f"{self.binary}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.running():
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=30)

    def restart(self):
        """Stop and start on the same port; the server comes back empty."""
        self.kill()
        return self.start()


class Cluster:
    """N quiver nodes sharing one data dir and one Redis index (a prefix of their own)."""

    def __init__(self, make_server, redis, data_dir, n, args=(), prefix="quiver"):
        self.redis = redis
        self.data_dir = Path(data_dir)
        self.prefix = prefix
        self.nodes = [
            make_server(args=[*args, "--index", redis.url, "--index-prefix", prefix,
                              "--node-id", f"n{i}"],
                        data_dir=self.data_dir, start=False)
            for i in range(n)]

    def start(self):
        for node in self.nodes:
            node.start()
        return self

    def __getitem__(self, i):
        return self.nodes[i]

    def __len__(self):
        return len(self.nodes)

    def logs(self):
        return "".join(node.all_logs() for node in self.nodes)

    def wait_for_log(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if needle in node.all_logs():
                    return node
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{self.logs()[-5000:]}")

    def stats(self):
        return [json.loads(next(iter(node.client().do_action(flight.Action("stats", b""))))
                           .body.to_pybytes()) for node in self.nodes]


# Counters that are each node's own: the cluster's is their sum. The others (entries, bytes,
# budget, index state, ...) are the shared index's, the same on every node.
NODE_COUNTERS = {"puts", "put_failures", "gets", "hits", "misses", "not_modified", "evictions",
                 "invalidations", "not_admitted", "reads_without_index"}
NODE_SECTIONS = {"memory": {"bytes", "entries", "hits", "promotions"}, "queries": None}


def add_stats(all_stats):
    total = json.loads(json.dumps(all_stats[0]))
    for other in all_stats[1:]:
        for name in NODE_COUNTERS:
            total[name] += other[name]
        for section, fields in NODE_SECTIONS.items():
            for name, value in other[section].items():
                if fields is not None and name not in fields:
                    continue
                if isinstance(value, dict):
                    for k, v in value.items():
                        total[section][name][k] = total[section][name].get(k, 0) + v
                else:
                    total[section][name] += value
    return total


class SpreadClient:
    """A Flight client whose calls go to the cluster's nodes in turn (so a put on one node is
    read back through another), and whose ``stats`` action answers for the whole cluster."""

    def __init__(self, clients):
        self._clients = clients
        self._next = 0

    def _pick(self):
        client = self._clients[self._next % len(self._clients)]
        self._next += 1
        return client

    def do_action(self, action, *args, **kwargs):
        if isinstance(action, flight.Action) and action.type == "stats":
            all_stats = [json.loads(next(iter(c.do_action(action, *args, **kwargs)))
                                    .body.to_pybytes()) for c in self._clients]
            return iter([flight.Result(json.dumps(add_stats(all_stats)).encode())])
        return self._pick().do_action(action, *args, **kwargs)

    def __getattr__(self, name):
        if name in ("close",):
            return lambda: [c.close() for c in self._clients]
        return getattr(self._pick(), name)


class DataDirFiles:
    """What a server's ``data_dir`` holds, for tests that check nothing is left behind."""

    def tmp_files(self):
        tmp = self.data_dir / ".tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []

    def data_files(self):
        root = self.data_dir / "data"
        return sorted(p for p in root.rglob("*.arrows")) if root.is_dir() else []


class ClusterServer(DataDirFiles):
    """Two nodes of one cache that stand in for a QuiverServer in the integration suites."""

    def __init__(self, make_server, redis, data_dir, work_dir, args, prefix):
        self.cluster = Cluster(make_server, redis, data_dir, 2, args, prefix)
        self.data_dir = Path(data_dir)
        self.work_dir = Path(work_dir)
        self.args = list(args)
        self.returncode = None

    nodes = property(lambda self: self.cluster.nodes)
    location = property(lambda self: self.nodes[0].location)
    port = property(lambda self: self.nodes[0].port)
    proc = property(lambda self: self.nodes[0].proc)
    log_path = property(lambda self: self.nodes[0].log_path)

    def start(self):
        # Clients are told of one address for the cluster (a load balancer's, in production):
        # the first node's.
        first, rest = self.nodes[0], self.nodes[1:]
        first.args = [a for a in first.args if not a.startswith("--public-endpoint")]
        first.start()
        for node in rest:
            node.args = [a for a in node.args if not a.startswith("--public-endpoint=")]
            node.args.append(f"--public-endpoint={first.location}")
            node.start()
        return self

    def running(self):
        return all(n.running() for n in self.nodes)

    def stop(self, sig=None, expect_code=0):
        for node in self.nodes:
            if node.running():
                self.returncode = node.stop(*([sig] if sig else []), expect_code=expect_code)
        return self.returncode

    def kill(self):
        for node in self.nodes:
            self.returncode = node.kill()
        return self.returncode

    def restart(self, args=None):
        if args is not None:
            self.args = list(args)
            for i, node in enumerate(self.nodes):
                node.args = [*self.args, "--index", self.cluster.redis.url, "--index-prefix",
                             self.cluster.prefix, "--node-id", f"n{i}"]
        for node in self.nodes:
            if node.running():
                node.stop()
        return self.start()

    def client(self):
        return SpreadClient([node.client() for node in self.nodes])

    def log(self):
        return "".join(node.log() for node in self.nodes)

    def all_logs(self):
        return self.cluster.logs()

    def wait_for_log(self, needle, timeout=10.0):
        self.cluster.wait_for_log(needle, timeout)
        return self.log()
