"""Shared mode in tests: real Redis/Valkey servers and clusters of real quiver nodes.

``RedisServer`` runs ``redis-server`` (or ``valkey-server``) on 127.0.0.1 with a free port
and a temp dir, no persistence (optionally TLS only). ``Cluster`` runs N ``quiver serve``
processes that share one data dir and one index (``--index redis://...`` with a prefix of
its own). ``ClusterServer`` is a two-node cluster that looks like one ``QuiverServer`` to the
existing integration tests: its clients spread their calls over the nodes, and its ``stats``
add up the nodes' counters. ``DataDirFiles``: what a server's or a cluster's data dir holds.
"""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pyarrow.flight as flight
import redis as redis_py

from quiver_util import free_port
from quiver_util import stats as stats_of
from query_util import wait_for
from s3_util import BucketMirror, boto3_client

STARTUP_TIMEOUT_S = 15


def redis_binaries():
    """The Redis-compatible servers installed here, among redis-server and valkey-server."""
    return [b for b in ("redis-server", "valkey-server") if shutil.which(b)]


def self_signed_certificate(directory):
    """(cert.pem, key.pem) in `directory`: a certificate for 127.0.0.1 signed by its own key,
    for a TLS server whose clients trust exactly that certificate. Needs openssl."""
    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


class RedisServer:
    """A real Redis-compatible server on 127.0.0.1 (no persistence: a restart empties it).

    ``args`` are added to the server's command line. With ``tls=(cert, key)`` it listens for
    TLS connections only: ``url`` is rediss://..., and its clients trust ``cert``. The port is
    picked at the first start and kept: the server comes back on it after a stop or a kill.
    """

    def __init__(self, binary, work_dir, args=(), tls=None):
        self.binary = binary
        self.dir = Path(work_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.tls = tuple(Path(p) for p in tls) if tls else None
        self.port = None
        self.proc = None

    @property
    def url(self):
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}"

    @property
    def log_path(self):
        return self.dir / f"{self.binary}.log"

    def client(self):
        tls = {"ssl": True, "ssl_ca_certs": str(self.tls[0])} if self.tls else {}
        return redis_py.Redis(host="127.0.0.1", port=self.port, socket_timeout=5,
                              decode_responses=True, **tls)

    def ping(self):
        """Whether the server answers a PING (over TLS for a TLS server)."""
        try:
            with self.client() as c:
                return c.ping()
        except (redis_py.exceptions.ConnectionError, redis_py.exceptions.TimeoutError):
            return False

    def start(self):
        """Start on the server's port; the first time, on a free port (another one if that
        was taken meanwhile)."""
        if self.port is not None:
            if not self._run():
                raise AssertionError(f"{self.binary} did not start on its port {self.port} "
                                     f"(taken by another process?):\n{self.log()}")
            return self
        for _ in range(5):
            self.port = free_port()
            if self._run():
                return self
        self.port = None
        raise AssertionError(f"{self.binary} did not start:\n{self.log()}")

    def _run(self):
        """Run the server on self.port: True once it answers; else it is killed."""
        if self.tls:
            cert, key = self.tls
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                      "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                      "--tls-auth-clients", "no"]
        else:
            listen = ["--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                 "no", "--dir", str(self.dir), *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.ping():
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

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


class DataDirFiles:
    """What a server's (or a cluster's) ``data_dir`` holds, for tests that check nothing is
    left behind."""

    def tmp_files(self, prefix=""):
        """Names of the temp files (those whose name starts with `prefix`: a node's start
        with its node id and "~")."""
        tmp = self.data_dir / ".tmp"
        if not tmp.is_dir():
            return []
        return sorted(p.name for p in tmp.iterdir() if p.name.startswith(prefix))

    def data_files(self):
        root = self.data_dir / "data"
        return sorted(p for p in root.rglob("*.arrows")) if root.is_dir() else []

    def manifest_files(self):
        root = self.data_dir / "manifests"
        return sorted(p for p in root.rglob("*.json")) if root.is_dir() else []


class Cluster(DataDirFiles):
    """N quiver nodes sharing one data dir and one Redis index (a prefix of their own)."""

    def __init__(self, make_server, redis, data_dir, n, args=(), prefix="quiver"):
        self.redis = redis
        self.data_dir = Path(data_dir)
        self.prefix = prefix
        self.nodes = [make_server(args=self.node_args(i, args), data_dir=self.data_dir,
                                  start=False)
                      for i in range(n)]

    def node_args(self, i, args):
        """Node i's command line: `args`, then the shared index and the node's id."""
        return [*args, "--index", self.redis.url, "--index-prefix", self.prefix,
                "--node-id", f"n{i}"]

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
        """The first node that logged `needle` (in any of its starts)."""
        return wait_for(lambda: next((n for n in self.nodes if needle in n.all_logs()), None),
                        timeout, f"a node to log {needle!r}")

    def stats(self):
        return [stats_of(node.client()) for node in self.nodes]


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
            total = add_stats([stats_of(c) for c in self._clients])
            return iter([flight.Result(json.dumps(total).encode())])
        return self._pick().do_action(action, *args, **kwargs)

    def __getattr__(self, name):
        if name in ("close",):
            return lambda: [c.close() for c in self._clients]
        return getattr(self._pick(), name)


PUBLIC_ENDPOINT = "--public-endpoint="


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
        for node in self.nodes:
            node.args = [a for a in node.args if not a.startswith(PUBLIC_ENDPOINT)]
        first, rest = self.nodes[0], self.nodes[1:]
        first.start()
        for node in rest:
            node.args.append(PUBLIC_ENDPOINT + first.location)
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
                node.args = self.cluster.node_args(i, self.args)
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


# -- S3 store: nodes sharing a bucket (and a Redis index), each with its own disk tier ------

def s3_store_args(proxy, bucket, store_prefix):
    """`quiver serve` options for the store s3://bucket/store_prefix on `proxy` (an S3Proxy)."""
    return ["--store", f"s3://{bucket}/{store_prefix}", "--s3-region", proxy.region,
            "--s3-endpoint", proxy.endpoint, "--s3-ca-file", str(proxy.ca_file)]


def s3_env(proxy, sse_key=None):
    """Environment of a node on `proxy`: its credentials, and the SSE-C key (32 bytes) if any."""
    env = {"AWS_ACCESS_KEY_ID": proxy.access_key, "AWS_SECRET_ACCESS_KEY": proxy.secret_key}
    if sse_key is not None:
        env["QUIVER_SSE_C_KEY"] = sse_key.hex()
    return env


class S3Files(DataDirFiles):
    """DataDirFiles of nodes on an S3 store: ``data_dir`` is a local mirror of the bucket
    prefix, brought up to date at each access (s3_util.BucketMirror: data/ and manifests/ as
    the bucket holds them); the temp files are those of the nodes' own data dirs (their disk
    tiers' .tmp)."""

    @property
    def data_dir(self):
        return self.mirror.sync()

    def tmp_files(self, prefix=""):
        return sorted(p.name for node in self.nodes for p in
                      ((node.data_dir / ".tmp").iterdir() if (node.data_dir / ".tmp").is_dir()
                       else []) if p.name.startswith(prefix))

    def disk_tier_files(self):
        """Local paths of the nodes' disk-tier copies."""
        return sorted(p for node in self.nodes for p in node.data_files())


class S3Cluster(S3Files, Cluster):
    """N quiver nodes sharing one S3 bucket (prefix `store_prefix`) and one Redis index; each
    node has a data dir of its own (its disk tier) under `work_dir`. `sse_key`: the SSE-C key
    given to the nodes in QUIVER_SSE_C_KEY (None: no SSE-C); `env`: more environment."""

    def __init__(self, make_server, redis, proxy, bucket, work_dir, n, args=(),
                 prefix="quiver", store_prefix="q", sse_key=None, env=None):
        self.redis = redis
        self.prefix = prefix
        self.proxy = proxy
        self.bucket = bucket
        self.store_prefix = store_prefix
        self.sse_key = sse_key
        self.s3 = boto3_client(proxy)
        self.mirror = BucketMirror(self.s3, bucket, store_prefix, Path(work_dir) / "bucket",
                                   [sse_key])
        self.env = {**s3_env(proxy, sse_key), **(env or {})}
        self.nodes = [make_server(args=self.node_args(i, args),
                                  data_dir=Path(work_dir) / f"node{i}-data", start=False,
                                  env=self.env)
                      for i in range(n)]

    def node_args(self, i, args):
        return [*super().node_args(i, args),
                *s3_store_args(self.proxy, self.bucket, self.store_prefix)]


class S3ClusterServer(S3Files, ClusterServer):
    """Two nodes on one S3 bucket and one Redis index standing in for a QuiverServer (the "s3"
    deployment of the integration suites). ``data_dir``: a mirror of the bucket prefix."""

    def __init__(self, make_server, redis, proxy, bucket, work_dir, args, prefix, sse_key):
        self.cluster = S3Cluster(make_server, redis, proxy, bucket, work_dir, 2, args, prefix,
                                 store_prefix=prefix, sse_key=sse_key)
        self.mirror = self.cluster.mirror
        self.work_dir = Path(work_dir)
        self.args = list(args)
        self.returncode = None
