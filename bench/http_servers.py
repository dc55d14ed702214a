"""The servers and clients of bench/http_bench.py: Quiver with its HTTP interface, nginx
serving the same IPC bytes as static files, and the HTTP clients.

QuiverHttpProcess is `quiver serve --http 127.0.0.1:0` (bench_servers.QuiverProcess, which
reads the Flight address from the first stdout line; this one also reads the HTTP address
from the second). Nginx starts Debian's nginx in the foreground (`daemon off`,
`master_process off`: one process, whose CPU is the server's) with its own config, logs and
temp dirs in a work dir, on a free loopback port, `sendfile on`: what a user would set up to
serve files. HttpClient is a keep-alive `http.client` connection that reads a body into a
preallocated buffer (one copy from the socket, as Flight's client makes one from gRPC) and
decodes it into a table without copying; http_sha256 hashes a body for the checks. curl_get
and flight_load_get run the native clients (curl, bench/flight_load.cc) once.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

from bench_env import log, proc_cpu_seconds
from bench_servers import QuiverProcess
from load_bench import free_port, listening
from shared_cluster import Target

NGINX_HINT = "install it with `apt-get install nginx-light` (or `nginx`), or pass --nginx PATH"


# ---------------------------------------------------------------------------------------
# Servers


class QuiverHttpProcess(QuiverProcess):
    """`quiver serve` with `--http 127.0.0.1:0`: .location is the Flight address, .http the
    HTTP one (the second line it prints)."""

    def __init__(self, name: str, binary: Path, data_dir: Path, log_path: Path, extra_args=()):
        self.http = ""
        super().__init__(name, binary, data_dir, log_path,
                         ["--http", "127.0.0.1:0", *extra_args])

    def _first_line(self, timeout: float) -> str:
        """The Flight line; reads on until the HTTP line too (Server reads only one)."""
        deadline = time.monotonic() + timeout
        buf, fd = b"", self.proc.stdout.fileno()
        while buf.count(b"\n") < 2:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} did not print its two listening lines (exit "
                                   f"code {self.proc.poll()}, got {buf!r}); see {self.log_path}")
            if select.select([fd], [], [], min(left, 0.5))[0]:
                buf += os.read(fd, 4096)
        first, second = buf.decode().splitlines()[:2]
        if not second.startswith("quiver http listening on http://"):
            raise RuntimeError(f"{self.name}: unexpected second line {second!r} (a binary "
                               f"without --http?); see {self.log_path}")
        self.http = second.split()[-1]
        return first.strip()


# pid -> ({tid: last ns seen}, ns of threads gone since): task_cpu_seconds's memory.
_TASKS: dict[int, tuple[dict[str, int], list[int]]] = {}


def task_cpu_seconds(pid: int) -> float:
    """CPU time of a process in ns precision, summed over its threads'
    /proc/PID/task/*/schedstat, for turns too short for /proc/PID/stat's 10 ms ticks. A
    thread that has exited counts with what it had used when last seen (a pool thread that
    ran and exited between two calls is missed), so the figure never goes back."""
    seen, gone = _TASKS.setdefault(pid, ({}, [0]))
    now = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                now[tid] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    gone[0] += sum(v for tid, v in seen.items() if tid not in now)
    seen.clear()
    seen.update(now)
    return (sum(now.values()) + gone[0]) / 1e9


class PreciseTarget(Target):
    """A shared_cluster.Target whose CPU is task_cpu_seconds of its servers."""

    def cpu(self) -> float:
        return sum(task_cpu_seconds(p) for p in self.pids)


def find_nginx(given: str | None) -> str:
    """The nginx binary to run: `given`, else nginx on PATH, else /usr/sbin/nginx; exits
    with how to install it if there is none."""
    if given:
        if shutil.which(given):
            return shutil.which(given)
        raise SystemExit(f"--nginx {given}: not an executable; {NGINX_HINT}")
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit(f"nginx is not installed (not on PATH, not /usr/sbin/nginx); {NGINX_HINT}")


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    types {{ application/vnd.apache.arrow.stream arrows; }}
    default_type application/octet-stream;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


class Nginx:
    """nginx serving `root` on a free loopback port, in the foreground, one process; its
    config, pid file, error log and temp dirs are in `work`. Same interface as a
    bench_servers.Server for PairedRuns and Phase (name, proc, log_path, cpu, stop)."""

    def __init__(self, binary: str, work: Path, root: Path, name: str = "nginx"):
        self.name, self.root = name, root
        work.mkdir(parents=True, exist_ok=True)
        (work / "tmp").mkdir(exist_ok=True)
        self.port = free_port()
        self.conf = work / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(dir=work, port=self.port, root=root))
        self.log_path = work / "error.log"
        self.version = subprocess.run([binary, "-v"], capture_output=True,
                                      text=True).stderr.strip()
        self._out = open(work / "stderr.log", "wb")
        self.proc = subprocess.Popen([binary, "-p", str(work), "-c", str(self.conf),
                                      "-e", str(self.log_path)],
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while not listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                logs = [p.read_text(errors="replace") for p in (work / "stderr.log",
                                                                self.log_path) if p.exists()]
                raise RuntimeError(f"nginx did not start (exit code {self.proc.poll()}): "
                                   + " ".join(logs).strip())
            time.sleep(0.05)
        self.http = f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


# ---------------------------------------------------------------------------------------
# Clients


class HttpClient:
    """One keep-alive HTTP/1.1 connection (http.client, TCP_NODELAY) to base_url, reading
    bodies into `buf`, allocated once by the caller. A connection the server closed
    while idle (its keep-alive timeout) is opened again once, and counted."""

    def __init__(self, base_url: str, buf: bytearray):
        u = urlsplit(base_url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        self.buf = buf  # may be shared by clients used one at a time
        self.view = memoryview(self.buf)
        self.reconnects = 0

    def _response(self, path: str) -> http.client.HTTPResponse:
        for attempt in (0, 1):
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                self.conn.close()
                if attempt:
                    raise
                self.reconnects += 1
        if resp.status != 200:
            raise RuntimeError(f"GET {self.host}:{self.port}{path}: {resp.status} "
                               f"{resp.read()[:300]!r}")
        return resp

    def get(self, path: str) -> int:
        """GET path into the buffer; the body's length."""
        resp = self._response(path)
        n = 0
        while True:
            k = resp.readinto(self.view[n:])
            if not k:
                break
            n += k
            if n == len(self.buf):
                if resp.read(1):
                    raise RuntimeError(f"GET {path}: body larger than the client's buffer "
                                       f"({len(self.buf)} bytes)")
                break
        return n

    def get_table(self, path: str, expect_rows: int) -> pa.Table:
        """GET path and decode the body (an Arrow IPC stream) into a table without copying:
        the table is only valid until the next request."""
        n = self.get(path)
        table = pa.ipc.open_stream(pa.py_buffer(self.view[:n])).read_all()
        if table.num_rows != expect_rows:
            raise RuntimeError(f"GET {path}: {table.num_rows} rows, expected {expect_rows}")
        return table

    def sha256(self, path: str) -> tuple[str, int, dict]:
        """(sha256 hex, length, headers) of the body of GET path."""
        resp = self._response(path)
        h, n, chunk = hashlib.sha256(), 0, bytearray(1 << 20)
        while True:
            k = resp.readinto(chunk)
            if not k:
                break
            h.update(memoryview(chunk)[:k])
            n += k
        return h.hexdigest(), n, dict(resp.getheaders())

    def close(self) -> None:
        self.conn.close()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def curl_get(url: str, expect_bytes: int) -> dict:
    """One `curl -o /dev/null` of url (a new process and connection): its own transfer time
    (time_total) and the bytes it received."""
    got = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w",
                          "%{http_code} %{size_download} %{time_total}", url],
                         capture_output=True, text=True, timeout=600)
    if got.returncode != 0:
        raise RuntimeError(f"curl {url} failed ({got.returncode}): {got.stderr.strip()}")
    code, size, seconds = got.stdout.split()
    if code != "200" or int(size) != expect_bytes:
        raise RuntimeError(f"curl {url}: status {code}, {size} bytes, expected {expect_bytes}")
    return {"seconds": float(seconds), "bytes": int(size)}


def flight_load_get(client: Path, location: str, key: str, rows: int) -> dict:
    """One run of the C++ Flight client (bench/flight_load.cc): an untimed DoGet of key,
    then one timed; its JSON (seconds, bytes of Arrow buffers, rows, client CPU)."""
    cmd = [str(client), "get", "--endpoint", location, "--ticket", key, "--streams", "1",
           "--reps", "1", "--expect-rows", str(rows)]
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if got.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({got.returncode}): {got.stderr.strip()}")
    runs = [json.loads(line) for line in got.stdout.splitlines() if line.startswith("{")]
    if len(runs) != 1:
        raise RuntimeError(f"{' '.join(cmd)} printed {len(runs)} results, expected 1")
    return runs[0]


def note_missing(tool: str, hint: str) -> None:
    log(f"{tool} not found: its rows are skipped ({hint})")
