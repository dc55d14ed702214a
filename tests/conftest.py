"""Shared fixtures for the Quiver integration tests.

Every test talks to the real ``build/quiver`` binary over Arrow Flight on 127.0.0.1.
The ``quiver`` fixture is a factory: ``srv = quiver()`` starts a server on a free port
with a fresh data dir; ``quiver(data_dir=..., args=[...])`` customises it. Servers are
killed and their data dirs removed when the test ends, whatever happened.

The object, query and management suites (CLUSTER_SUITES) run three times: against one
embedded server, against a two-node cluster sharing a data dir and a real redis-server index
(``deployment`` = "cluster"; see cluster_util.ClusterServer), and against two nodes sharing
that index and an S3 bucket on a real s3proxy with SSE-C, each with a data dir of its own for
its disk tier (``deployment`` = "s3"; cluster_util.S3ClusterServer, whose ``data_dir`` is the
bucket prefix as an s3_util.S3Path). A test whose subject is a single process's own files or
lifecycle is marked ``embedded_only``; one whose subject is the local store's file layout
(which an S3 store does not have) ``local_store_only(reason)``.

``s3proxy`` is one s3proxy server for the session (tests/s3proxy.py); tests that must stop
their S3 server start an S3Proxy of their own.

Shared-mode tests use ``redis_server`` (a real Redis/Valkey of their own) and ``cluster``
(N quiver nodes on it).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow.flight as flight
import pytest

from cluster_util import (Cluster, ClusterServer, DataDirFiles, RedisServer, S3Cluster,
                          S3ClusterServer, redis_binaries)
from s3_util import boto3_client, new_sse_key, remove_bucket
from s3proxy import S3Proxy, s3proxy_jar

REPO = Path(__file__).resolve().parent.parent
QUIVER_BIN = Path(os.environ.get("QUIVER_BIN", REPO / "build" / "quiver"))

STARTUP_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30


def quiver_binary() -> Path:
    """Path of the quiver binary; waits briefly if a concurrent rebuild replaced it."""
    deadline = time.monotonic() + 60
    while not (QUIVER_BIN.is_file() and os.access(QUIVER_BIN, os.X_OK)):
        if time.monotonic() > deadline:
            pytest.fail(f"quiver binary not found at {QUIVER_BIN}; build it first "
                        "(scripts/setup.sh, then ninja -C build)", pytrace=False)
        time.sleep(0.5)
    return QUIVER_BIN


class QuiverServer(DataDirFiles):
    """One real ``quiver serve`` process on 127.0.0.1 with its own data dir.

    Attributes: ``location`` (grpc://127.0.0.1:PORT), ``port``, ``data_dir`` (Path),
    ``log_path`` (stderr of the current process), ``log_paths`` (one per start),
    ``proc`` (the Popen) and ``returncode`` after stop/kill.
    """

    def __init__(self, data_dir: Path, work_dir: Path, args=(), env=None):
        self.data_dir = Path(data_dir)
        self.work_dir = Path(work_dir)
        self.args = list(args)
        self.env = dict(env or {})  # added to this process's environment
        self.proc = None
        self.location = None
        self.port = None
        self.http_url = None  # http://127.0.0.1:PORT when started with --http
        self.log_path = None
        self.log_paths = []
        self.returncode = None
        self._clients = []
        self._starts = 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._starts += 1
        self.log_path = self.work_dir / f"quiver-{self._starts}.stderr.log"
        self.log_paths.append(self.log_path)
        out_path = self.work_dir / f"quiver-{self._starts}.stdout.log"
        cmd = [str(quiver_binary()), "serve", "--listen", "grpc://127.0.0.1:0",
               "--data-dir", str(self.data_dir), *self.args]
        with open(out_path, "wb") as out, open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=self.work_dir,
                                         env={**os.environ, **self.env} if self.env else None)
        self.returncode = None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        first = self._stdout_lines(out_path, 1, deadline, cmd)[0]
        prefix = "quiver listening on "
        assert first.startswith(prefix), f"unexpected first stdout line: {first!r}"
        self.location = first[len(prefix):].strip()
        assert self.location.startswith(("grpc://127.0.0.1:", "grpc+tls://127.0.0.1:")), \
            self.location
        self.port = int(self.location.rsplit(":", 1)[1])
        assert self.port > 0
        self.http_url = None
        if any(a == "--http" or a.startswith("--http=") for a in self.args):
            line = self._stdout_lines(out_path, 2, deadline, cmd)[1]  # after the Flight line
            prefix = "quiver http listening on "
            assert line.startswith(prefix), f"unexpected second stdout line: {line!r}"
            self.http_url = line[len(prefix):].strip()
        return self

    def _stdout_lines(self, out_path, count, deadline, cmd):
        """The first `count` complete lines the server printed on stdout (its addresses),
        once it has printed them; fails if it exits or the deadline passes first."""
        while True:
            text = out_path.read_text(errors="replace")
            if text.count("\n") >= count:
                return text.split("\n")[:count]
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"quiver exited with {self.proc.returncode} before listening: {cmd}\n"
                    f"stderr:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"quiver did not print its address within "
                                     f"{STARTUP_TIMEOUT_S}s\nstderr:\n{self.log()}")
            time.sleep(0.02)  # polls a file the server writes; the loop ends on the line

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _close_clients(self):
        for c in self._clients:
            try:
                c.close()
            except Exception:
                pass
        self._clients = []

    def stop(self, sig=signal.SIGTERM, expect_code=0):
        """Graceful stop (SIGTERM by default); asserts the exit code."""
        self._close_clients()
        assert self.running(), "server is not running"
        self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"quiver did not stop within {STOP_TIMEOUT_S}s of {sig!r}\n"
                                 f"stderr:\n{self.log()}")
        if expect_code is not None:
            assert self.returncode == expect_code, (
                f"quiver exited with {self.returncode}, expected {expect_code}\n"
                f"stderr:\n{self.log()}")
        return self.returncode

    def kill(self):
        """SIGKILL, no cleanup by the server (a crash)."""
        self._close_clients()
        if self.running():
            self.proc.kill()
            self.returncode = self.proc.wait(timeout=STOP_TIMEOUT_S)
        return self.returncode

    def restart(self, args=None):
        """Stop gracefully if running, then start again on the same data dir."""
        if self.running():
            self.stop()
        if args is not None:
            self.args = list(args)
        return self.start()

    # -- helpers -----------------------------------------------------------------------
    def client(self) -> flight.FlightClient:
        c = flight.connect(self.location)
        self._clients.append(c)
        return c

    def log(self) -> str:
        """stderr of the current (or last) process."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def all_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def wait_for_log(self, needle: str, timeout=10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{self.log()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _test_failed(request) -> bool:
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


@pytest.fixture
def workdir(request):
    """A private temp dir for the test, removed afterwards (even on failure)."""
    path = Path(tempfile.mkdtemp(prefix="quiver-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# Suites that also run against a two-node shared cluster.
CLUSTER_SUITES = {
    "test_roundtrip", "test_versions", "test_metadata_and_actions", "test_concurrency",
    "test_query_sqlite", "test_query_postgres", "test_budget", "test_invalidation",
    "test_management_actions", "test_runtime_settings", "test_object_patches", "test_data_views",
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "local_store_only(reason): the test's subject is the local store's file "
        "layout (files, directories, inotify); it does not run in the s3 deployment")


def pytest_generate_tests(metafunc):
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in CLUSTER_SUITES and "quiver" in metafunc.fixturenames:
        metafunc.parametrize("deployment", ["embedded", "cluster", "s3"], indirect=True)


@pytest.fixture
def deployment(request):
    """"embedded" (one server), "cluster" (two nodes sharing a Redis index and a data dir) or
    "s3" (two nodes sharing a Redis index and an S3 bucket)."""
    kind = getattr(request, "param", "embedded")
    if kind != "embedded" and request.node.get_closest_marker("embedded_only"):
        pytest.skip("the subject of this test is one process's own files or lifecycle")
    if kind == "s3":
        mark = request.node.get_closest_marker("local_store_only")
        if mark is not None:
            pytest.skip("not applicable to an S3 store: " +
                        (mark.args[0] if mark.args else "its subject is the local file layout"))
        if s3proxy_jar() is None:
            pytest.skip("s3proxy is not available (no java, or no jar in .tools/s3proxy: "
                        "run scripts/setup.sh)")
    if kind != "embedded" and not redis_binaries():
        pytest.skip("no redis-server installed")
    return kind


@pytest.fixture(scope="session")
def s3proxy(tmp_path_factory):
    """One real s3proxy (HTTPS, SSE-C enforced, in-memory) for the session; tests make a
    bucket each (``s3proxy.make_bucket()``). Skips when java or the jar is missing."""
    if s3proxy_jar() is None:
        pytest.skip("s3proxy is not available (no java, or no jar in .tools/s3proxy: "
                    "run scripts/setup.sh)")
    # s3proxy's in-memory backend holds every object in the JVM heap: the suites store
    # 256 MiB objects (and completing a multipart upload copies the parts).
    proxy = S3Proxy(work_dir=tmp_path_factory.mktemp("s3proxy"), heap="3g").start()
    proxy.client = boto3_client(proxy)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def session_redis(tmp_path_factory):
    """One redis-server for the cluster runs of the integration suites (a prefix each)."""
    server = RedisServer(redis_binaries()[0], tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()


_cluster_prefixes = iter(range(10**9))

# Under the sanitizers (scripts/sanitize.sh sets it) every node still running at the end of a
# test is stopped gracefully, so that LeakSanitizer checks it at exit: a leak, or any other
# sanitizer report, makes the exit code non-zero and fails the test.
GRACEFUL_STOP = os.environ.get("QUIVER_TEST_GRACEFUL_STOP") == "1"


@pytest.fixture
def quiver(request, workdir, deployment):
    """Factory: quiver(args=[...], data_dir=None, start=True) -> QuiverServer (or, in the
    cluster deployment, a ClusterServer of two nodes that behaves like one)."""
    servers = []
    counter = [0]

    def make_node(args=(), data_dir=None, start=True, env=None):
        counter[0] += 1
        sdir = workdir / f"server{counter[0]}"
        sdir.mkdir()
        srv = QuiverServer(data_dir or sdir / "data", sdir, args, env)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    def make(args=(), data_dir=None, start=True):
        if deployment == "embedded":
            return make_node(args, data_dir, start)
        counter[0] += 1
        cdir = workdir / f"cluster{counter[0]}"
        cdir.mkdir()
        redis = request.getfixturevalue("session_redis")
        if deployment == "s3":
            assert data_dir is None, "an s3 deployment keeps its entries in a bucket"
            proxy = request.getfixturevalue("s3proxy")
            buckets.append((proxy, proxy.make_bucket()))
            srv = S3ClusterServer(make_node, redis, proxy, buckets[-1][1], cdir, args,
                                  prefix=f"t{next(_cluster_prefixes)}", sse_key=new_sse_key())
        else:
            srv = ClusterServer(make_node, redis, data_dir or cdir / "data", cdir, args,
                                prefix=f"t{next(_cluster_prefixes)}")
        if start:
            srv.start()
        return srv

    make.servers = servers
    make.node = make_node
    make.buckets = buckets = []
    yield make

    failed = _test_failed(request)
    unclean = []
    for srv in servers:
        if failed:
            print(f"---- quiver stderr ({srv.data_dir}) ----\n{srv.all_logs()[-20000:]}")
        if GRACEFUL_STOP and srv.running():
            try:
                srv.stop()
            except AssertionError as e:
                unclean.append(str(e))
        else:
            srv.kill()
    for proxy, bucket in buckets:
        if proxy.proc is not None:  # a test's private s3proxy may be stopped already
            remove_bucket(proxy.client, bucket)
    assert not unclean, "a node did not stop cleanly:\n" + "\n".join(unclean)


@pytest.fixture
def server(quiver):
    """A running server with default options and a fresh data dir."""
    return quiver()


@pytest.fixture
def redis_server(workdir):
    """Factory: redis_server(binary="redis-server", args=(), tls=None) -> a started RedisServer
    of this test (tls=(cert, key): TLS only, see cluster_util.RedisServer)."""
    started = []

    def make(binary="redis-server", args=(), tls=None):
        if not shutil.which(binary):
            pytest.skip(f"{binary} is not installed")
        server = RedisServer(binary, workdir / f"{binary}-{len(started)}", args, tls).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def cluster(quiver, redis_server, workdir):
    """Factory: cluster(n=3, args=[...], redis=None, binary="redis-server") -> a started
    Cluster of n quiver nodes sharing a data dir and a Redis index."""
    made = [0]

    def make(n=3, args=(), redis=None, binary="redis-server", start=True):
        made[0] += 1
        redis = redis or redis_server(binary)
        c = Cluster(quiver.node, redis, workdir / f"shared{made[0]}", n, args,
                    prefix=f"c{made[0]}")
        return c.start() if start else c

    return make


@pytest.fixture
def client(server):
    return server.client()


@pytest.fixture
def s3_cluster(quiver, request, workdir):
    """Factory: s3_cluster(n=2, args=[...], proxy=None, sse_key=<new>, env=None, start=True)
    -> a Cluster of n nodes on a fresh bucket of `proxy` (default: the session s3proxy) and
    the session redis (a fresh prefix); each node has a data dir (disk tier) of its own.
    The bucket is removed afterwards."""
    made = [0]

    def make(n=2, args=(), proxy=None, sse_key="new", env=None, start=True):
        if not redis_binaries():
            pytest.skip("no redis-server installed")
        made[0] += 1
        proxy = proxy or request.getfixturevalue("s3proxy")
        if not hasattr(proxy, "client"):
            proxy.client = boto3_client(proxy)
        bucket = proxy.make_bucket()
        quiver.buckets.append((proxy, bucket))
        redis = request.getfixturevalue("session_redis")
        c = S3Cluster(quiver.node, redis, proxy, bucket, workdir / f"s3cluster{made[0]}", n,
                      args, prefix=f"s{next(_cluster_prefixes)}",
                      sse_key=new_sse_key() if sse_key == "new" else sse_key, env=env)
        return c.start() if start else c

    return make
