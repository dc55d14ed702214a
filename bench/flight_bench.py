#!/usr/bin/env python3
"""Flight benchmark: Quiver against the in-memory pyarrow Flight server a user would write.

One run starts both servers (build/quiver on a fresh data dir, bench/baseline_server.py),
loads the same generated tables into both with the same client code, and measures:

  * DoGet throughput of a large table in large batches (default 1 GiB in 64 MiB batches),
  * DoGet throughput of a table in many small batches (default 256 MiB in 64 KiB batches),
  * DoGet p50/p99 latency of small objects (default 1 KiB and 64 KiB, one batch each),
  * DoPut throughput of both tables,
  * a Quiver-only DoGet of the large table with its file evicted from the page cache.

Requests alternate between the servers so drift hits both; figures are medians over
repetitions after a warm-up, and a repetition disturbed by other work on the machine
(measured from /proc/stat) is run again. It prints a table (metric | quiver | baseline |
ratio) and rewrites the flight-bench section of docs/benchmarks.md (not with --quick
unless --docs is given). Raw per-repetition numbers go to bench/results/ (git-ignored);
--render rewrites the docs section from such a file without measuring.

Run it with scripts/bench.sh [ARGS] (sets up and builds first) or directly with
.venv/bin/python bench/flight_bench.py [ARGS].
"""
from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import hashlib
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN_MARK = "<!-- flight-bench:begin -->"
END_MARK = "<!-- flight-bench:end -->"

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
# Bytes per row of the generated schema: four 8-byte numeric columns, a 4-byte string
# offset and on average 16 bytes of string data.
ROW_BYTES = 4 * 8 + 4 + 16

DOCS_INTRO = """\
# Benchmarks

Performance figures for Quiver, each section written by a harness under `bench/` and
rewritten in place when that harness runs again (between its `<!-- ...:begin -->` and
`<!-- ...:end -->` markers; text outside the markers is kept).

Methodology common to all sections:

* Quiver is compared with the baseline a user would otherwise write, measured in the same
  run on the same machine with the same client code and the same data; the ratio column
  is Quiver divided by the baseline.
* Timings are medians over repetitions after a warm-up, with requests alternating between
  the systems under test so that machine noise hits both. The spread (min-max) is
  reported next to the medians.
* Throughput is in decimal units (1 GB/s = 10^9 bytes/s) of the Arrow table's in-memory
  size (`pa.Table.nbytes`, the sum of its buffers), unless a section says otherwise.
* The machine details (CPU, cores, RAM, kernel, library versions, Quiver commit) are
  recorded with each section. Small cloud VMs are noisy: treat differences under ~10% as
  noise unless they repeat across runs.

"""


# ---------------------------------------------------------------------------------------
# Sizes and small helpers


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size (e.g. 64MiB, 1GiB, 4096)")
    number, unit = float(m.group(1)), m.group(2).lower().rstrip("b")
    scale = {"": 1, "k": 1e3, "ki": KiB, "m": 1e6, "mi": MiB, "g": 1e9, "gi": GiB,
             "t": 1e12, "ti": 1 << 40}.get(unit)
    if scale is None:
        raise argparse.ArgumentTypeError(f"'{text}' has an unknown unit")
    return int(round(number * scale))


def fmt_size(n: float) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 0.05 else f"{v:.1f} {unit}"
    return f"{int(n)} B"


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def percentile(xs, p):
    return float(np.percentile(np.asarray(xs), p)) if xs else float("nan")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Data


def make_table(total_bytes: int, batch_bytes: int, seed: int) -> pa.Table:
    """A table of ~total_bytes in record batches of ~batch_bytes (by nbytes).

    Columns: id int64 (sequential), key int64, x float64, y float64 (numpy random),
    s string (random lowercase, 4-28 characters). Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    rows_per_batch = max(1, batch_bytes // ROW_BYTES)
    total_rows = max(1, total_bytes // ROW_BYTES)
    batches, start = [], 0
    schema = pa.schema([("id", pa.int64()), ("key", pa.int64()), ("x", pa.float64()),
                        ("y", pa.float64()), ("s", pa.string())])
    while start < total_rows:
        n = min(rows_per_batch, total_rows - start)
        lens = rng.integers(4, 29, n, dtype=np.int32)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lens, out=offsets[1:])
        chars = rng.integers(ord("a"), ord("z") + 1, int(offsets[-1]), dtype=np.uint8)
        strings = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))
        batches.append(pa.record_batch([
            pa.array(np.arange(start, start + n, dtype=np.int64)),
            pa.array(rng.integers(0, 1 << 40, n, dtype=np.int64)),
            pa.array(rng.standard_normal(n)),
            pa.array(rng.random(n)),
            strings,
        ], schema=schema))
        start += n
    return pa.Table.from_batches(batches, schema=schema)


def ipc_stream_size(table: pa.Table) -> int:
    sink = pa.MockOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        for b in table.to_batches():
            w.write_batch(b)
    return sink.size()


@dataclass
class Dataset:
    name: str          # key segment, e.g. "big"
    label: str         # human description, e.g. "1 GiB table, 64 MiB batches"
    table: pa.Table
    nbytes: int = 0
    ipc_bytes: int = 0
    batches: int = 0

    def __post_init__(self):
        self.nbytes = self.table.nbytes
        self.ipc_bytes = ipc_stream_size(self.table)
        self.batches = len(self.table.to_batches())


# ---------------------------------------------------------------------------------------
# Servers


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, name: str, argv: list[str], log_path: Path, banner: str):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log,
                                     cwd=ROOT, start_new_session=True)
        line = self._first_line(timeout=60)
        if not line.startswith(banner):
            self.stop()
            raise RuntimeError(f"{name}: unexpected first line {line!r}; see {log_path}")
        self.location = line.split()[-1]
        self.client = flight.connect(self.location)

    def _first_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} did not start (exit code {self.proc.poll()}); "
                                   f"see {self.log_path}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buf += chunk
        return buf.split(b"\n", 1)[0].decode().strip()

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if getattr(self, "client", None) is not None:
            try:
                self.client.close()
            except Exception:
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


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat), steal included."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def machine_steal_seconds() -> float:
    """CPU seconds the hypervisor gave to other guests since boot (/proc/stat 'steal')."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[7] / os.sysconf("SC_CLK_TCK") if len(v) > 7 else 0.0


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children (the servers, once stopped)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# Time spent in --wait-idle waits, left out of the "other CPU during the run" figure.
WAITED = {"busy": 0.0, "own": 0.0, "steal": 0.0, "wall": 0.0}


def wait_for_idle(max_wait: float, threshold: float = 0.10) -> float:
    """Wait (up to max_wait s) until the machine is below threshold busy over 3 s."""
    deadline = time.monotonic() + max_wait
    cores = os.cpu_count() or 1
    while True:
        b0 = machine_busy_seconds()
        time.sleep(3)
        busy = (machine_busy_seconds() - b0) / 3 / cores
        if busy < threshold:
            return busy
        if time.monotonic() > deadline:
            log(f"machine still {busy:.0%} busy after waiting {max_wait:.0f} s; running anyway")
            return busy
        log(f"machine is {busy:.0%} busy with other work; waiting for it to go idle")


def wait_for_binary(path: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    warned = False
    while not (path.is_file() and os.access(path, os.X_OK)):
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} does not exist; build Quiver first (bash scripts/setup.sh)")
        if not warned:
            log(f"waiting for {path} to appear (a build may be running)")
            warned = True
        time.sleep(2)


def snapshot_binary(src: Path, dst: Path) -> None:
    """Copy the server binary so a concurrent rebuild cannot swap it mid-run."""
    for attempt in range(30):
        wait_for_binary(src)
        try:
            shutil.copy2(src, dst)
            out = subprocess.run([str(dst), "--version"], capture_output=True, text=True,
                                 timeout=30)
            if out.returncode == 0:
                return
        except (OSError, subprocess.TimeoutExpired):
            pass
        log(f"{src} is not runnable yet (being rebuilt?); retrying")
        time.sleep(5)
    raise SystemExit(f"could not get a runnable copy of {src}")


# ---------------------------------------------------------------------------------------
# Client operations (identical for both servers)

CALL = flight.FlightCallOptions(timeout=600)


def do_put(client, key: str, table: pa.Table) -> tuple[float, dict]:
    descriptor = flight.FlightDescriptor.for_path(*key.split("/"))
    t0 = time.perf_counter()
    writer, meta_reader = client.do_put(descriptor, table.schema, options=CALL)
    for batch in table.to_batches():
        writer.write_batch(batch)
    writer.done_writing()
    meta = meta_reader.read()
    writer.close()
    elapsed = time.perf_counter() - t0
    ref = json.loads(meta.to_pybytes()) if meta is not None else {}
    return elapsed, ref


def do_get(client, key: str, expect_rows: int) -> float:
    t0 = time.perf_counter()
    table = client.do_get(flight.Ticket(key.encode()), options=CALL).read_all()
    elapsed = time.perf_counter() - t0
    if table.num_rows != expect_rows:
        raise RuntimeError(f"DoGet {key}: {table.num_rows} rows, expected {expect_rows}")
    return elapsed


# ---------------------------------------------------------------------------------------
# Page cache residency of Quiver's stored file


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]


def resident_fraction(path: Path) -> float:
    """Fraction of the file's pages in the page cache (mincore on a private mapping)."""
    size = path.stat().st_size
    if size == 0:
        return 1.0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            pages = (size + os.sysconf("SC_PAGE_SIZE") - 1) // os.sysconf("SC_PAGE_SIZE")
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return float((np.frombuffer(vec, dtype=np.uint8) & 1).sum()) / pages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def evict_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def quiver_blob(data_dir: Path, key: str, version: int) -> Path:
    manifest = data_dir / "manifests" / key / "@v" / f"{version:020d}.json"
    return data_dir / json.loads(manifest.read_text())["blob"]


# ---------------------------------------------------------------------------------------
# Machine details


def machine_details(data_dir: Path) -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
                break
    except OSError:
        pass
    os_name = platform.system()
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    fs = "unknown"
    try:
        out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE,TARGET", "--target",
                              str(data_dir)], capture_output=True, text=True).stdout.split()
        if len(out) >= 3:
            fs = f"{out[0]} on {out[1]} (mounted at {out[2]})"
    except OSError:
        pass

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src", "cmake", "CMakeLists.txt")
    if dirty:
        commit += " (plus uncommitted changes in src/ or the build files)"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram": mem,
        "kernel": platform.release(),
        "os": os_name,
        "data_dir_fs": fs,
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "quiver_commit": commit,
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# ---------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Row:
    metric: str
    unit: str
    higher_is_better: bool
    quiver: float
    baseline: float | None
    q_spread: tuple[float, float] | None = None
    b_spread: tuple[float, float] | None = None
    note: str = ""
    diag: bool = False  # a diagnostic (where the CPU goes), shown in a second table

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or self.quiver != self.quiver:
            return None
        return self.quiver / self.baseline

    @property
    def quiver_better(self) -> str:
        r = self.ratio
        if r is None:
            return "n/a"
        if 0.95 <= r <= 1.05:
            return "tie (within 5%)"
        return "yes" if (r > 1) == self.higher_is_better else "no"


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    raw: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)


def alternate(servers, rep):
    """Both servers, the order flipped every repetition."""
    return servers if rep % 2 == 0 else servers[::-1]


@dataclass
class Sample:
    wall: float          # seconds
    server_cpu: float    # CPU seconds of the server process
    client_cpu: float    # CPU seconds of this (client) process
    other: float         # share of the machine used by other work meanwhile (0..1)
    result: object = None  # what the timed function returned


def measure(server, fn) -> Sample:
    """Run fn() against one server and account for where the CPU went meanwhile."""
    b0, c0, k0 = machine_busy_seconds(), server.cpu(), time.process_time()
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    srv, cli = server.cpu() - c0, time.process_time() - k0
    busy = machine_busy_seconds() - b0
    other = max(0.0, busy - srv - cli) / (wall * (os.cpu_count() or 1))
    return Sample(wall, srv, cli, other, result)


class PairedRuns:
    """Repetitions of one measurement on both servers, alternating their order.

    A repetition during which other work used more than max_noise of the machine (on either
    server's turn) is discarded and run again, up to `retries` times per phase; the
    discarded ones are counted. Turns shorter than 0.2 s are not judged (/proc/stat's
    10 ms ticks are too coarse for them).
    """

    def __init__(self, servers, max_noise: float, retries: int | None):
        self.servers, self.max_noise, self.retries = servers, max_noise, retries
        self.discarded = {}  # phase label -> repetitions discarded

    def run(self, label: str, reps: int, fn) -> dict:
        """Time fn(server) `reps` times per server; {server name: [Sample, ...]}."""
        out = {s.name: [] for s in self.servers}
        retries = reps if self.retries is None else self.retries
        done, turn = 0, 0
        self.discarded[label] = 0
        while done < reps:
            pair = {}
            for s in alternate(self.servers, turn):
                if gc.isenabled():
                    gc.collect()
                pair[s.name] = measure(s, lambda: fn(s))
            turn += 1
            noise = max(x.other for x in pair.values())
            # /proc/stat counts in 10 ms ticks: too coarse to judge turns shorter than 0.2 s.
            judged = min(x.wall for x in pair.values()) >= 0.2
            if judged and noise > self.max_noise and retries > 0:
                retries -= 1
                self.discarded[label] += 1
                log(f"{label}: other work used {noise:.0%} of the machine during a "
                    f"repetition; discarded, running it again")
                continue
            for name, sample in pair.items():
                out[name].append(sample)
            done += 1
        return out


def run(args) -> Results:
    res = Results()
    seed = args.seed

    log("generating data")
    t0 = time.perf_counter()
    big = Dataset("big", f"{fmt_size(args.big)} table, {fmt_size(args.big_batch)} batches",
                  make_table(args.big, args.big_batch, seed))
    small = Dataset("small",
                    f"{fmt_size(args.small)} table, {fmt_size(args.small_batch)} batches",
                    make_table(args.small, args.small_batch, seed + 1))
    lat = [Dataset(f"lat-{fmt_size(s).replace(' ', '')}", f"{fmt_size(s)} object",
                   make_table(s, s, seed + 2 + i)) for i, s in enumerate(args.latency_sizes)]
    log(f"data ready in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{d.name}: {d.table.num_rows} rows, {d.batches} batches, "
                    f"nbytes {d.nbytes}, IPC {d.ipc_bytes}" for d in [big, small, *lat]))
    res.facts["datasets"] = {d.name: {"label": d.label, "rows": d.table.num_rows,
                                      "batches": d.batches, "nbytes": d.nbytes,
                                      "ipc_bytes": d.ipc_bytes} for d in [big, small, *lat]}

    def gate():
        """With --wait-idle, let other work on the machine finish before each phase."""
        if args.wait_idle > 0:
            b0, o0, w0 = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()
            s0 = machine_steal_seconds()
            wait_for_idle(args.wait_idle)
            WAITED["steal"] += machine_steal_seconds() - s0
            WAITED["busy"] += machine_busy_seconds() - b0
            WAITED["own"] += own_cpu_seconds() - o0
            WAITED["wall"] += time.perf_counter() - w0

    work = Path(tempfile.mkdtemp(prefix="flight-bench-", dir=args.work_dir))
    data_dir = work / "quiver-data"
    res.facts["machine"] = machine_details(work)
    quiver_bin = work / "quiver"
    snapshot_binary(Path(args.quiver), quiver_bin)
    res.facts["quiver_version"] = subprocess.run([str(quiver_bin), "--version"],
                                                 capture_output=True, text=True).stdout.strip()
    res.facts["quiver_binary"] = {
        "path": str(args.quiver),
        "sha256": hashlib.sha256(quiver_bin.read_bytes()).hexdigest()[:16],
        "mtime": dt.datetime.fromtimestamp(Path(args.quiver).stat().st_mtime)
                   .astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }
    max_object = max(8 * GiB, 2 * big.ipc_bytes, 2 * small.ipc_bytes)
    servers = []
    failed = True
    try:
        quiver = Server("quiver",
                        [str(quiver_bin), "serve", "--listen", "grpc://127.0.0.1:0",
                         "--data-dir", str(data_dir), "--max-object-bytes", str(max_object),
                         "--log-level", "info"],
                        work / "quiver.log", "quiver listening on")
        servers.append(quiver)
        baseline = Server("baseline",
                          [sys.executable, str(ROOT / "bench" / "baseline_server.py"),
                           "--listen", "grpc://127.0.0.1:0"],
                          work / "baseline.log", "baseline listening on")
        servers.append(baseline)
        both = [quiver, baseline]
        log(f"quiver at {quiver.location}, baseline at {baseline.location}, work dir {work}")

        paired = PairedRuns(both, args.max_noise, args.retries)
        # --- DoPut ------------------------------------------------------------------
        put_samples = {s.name: {} for s in both}
        versions = {}

        def put(s, key, d):
            _, ref = do_put(s.client, key, d.table)
            if s is quiver:
                versions[key] = ref["version"]

        for d in (big, small):
            gate()
            log(f"DoPut {d.label}: {args.put_reps} repetitions per server")
            key = f"bench/{d.name}"
            got = paired.run(f"DoPut {d.label}", args.put_reps, lambda s: put(s, key, d))
            for name, samples in got.items():
                put_samples[name][d.name] = samples
        put_times = {n: {k: [x.wall for x in v] for k, v in per.items()}
                     for n, per in put_samples.items()}
        put_cpu = {n: {k: [x.server_cpu for x in v] for k, v in per.items()}
                   for n, per in put_samples.items()}
        for d in lat:
            for s in both:
                _, ref = do_put(s.client, f"bench/{d.name}", d.table)
                if s is quiver:
                    versions[f"bench/{d.name}"] = ref["version"]
        res.raw["put_seconds"] = put_times
        res.raw["put_server_cpu_seconds"] = put_cpu

        # --- correctness check and warm-up ------------------------------------------
        log("checking that both servers return the stored tables (also the warm-up)")
        for d in [big, small, *lat]:
            for s in both:
                got = s.client.do_get(flight.Ticket(f"bench/{d.name}".encode()),
                                      options=CALL).read_all()
                if not got.equals(d.table):
                    raise RuntimeError(f"{s.name} returned a different bench/{d.name}")
                del got
        big_blob = quiver_blob(data_dir, "bench/big", versions["bench/big"])
        resident = resident_fraction(big_blob)
        res.facts["quiver_big_file"] = {"bytes": big_blob.stat().st_size,
                                        "resident_before_gets": resident}
        log(f"Quiver's file for bench/big: {big_blob.stat().st_size} bytes, "
            f"{resident:.1%} in the page cache")

        # --- DoGet throughput -------------------------------------------------------
        get_samples = {s.name: {} for s in both}
        for d in (big, small):
            gate()
            log(f"DoGet {d.label}: {args.reps} repetitions per server")
            key = f"bench/{d.name}"
            for s in both:
                do_get(s.client, key, d.table.num_rows)  # warm-up
            got = paired.run(f"DoGet {d.label}", args.reps,
                             lambda s: do_get(s.client, key, d.table.num_rows))
            for name, samples in got.items():
                get_samples[name][d.name] = samples
        get_times = {n: {k: [x.wall for x in v] for k, v in per.items()}
                     for n, per in get_samples.items()}
        get_cpu = {n: {k: [x.server_cpu for x in v] for k, v in per.items()}
                   for n, per in get_samples.items()}
        client_cpu = {n: {k: [x.client_cpu for x in v] for k, v in per.items()}
                      for n, per in get_samples.items()}
        res.raw["get_other_share"] = {n: {k: [x.other for x in v] for k, v in per.items()}
                                      for n, per in get_samples.items()}
        res.raw["put_other_share"] = {n: {k: [x.other for x in v] for k, v in per.items()}
                                      for n, per in put_samples.items()}
        res.raw["get_seconds"] = get_times
        res.raw["get_server_cpu_seconds"] = get_cpu
        res.raw["get_client_cpu_seconds"] = client_cpu
        res.facts["quiver_big_file"]["resident_after_gets"] = resident_fraction(big_blob)

        # --- DoGet latency ----------------------------------------------------------
        # Blocks of `block` sequential requests, alternating servers block by block.
        lat_us = {s.name: {} for s in both}
        lat_cpu = {s.name: {} for s in both}
        block = max(1, min(50, args.latency_requests))
        for d in lat:
            gate()
            log(f"DoGet latency {d.label}: {args.latency_requests} requests per server")
            key = f"bench/{d.name}"
            rows = d.table.num_rows
            for s in both:
                for _ in range(min(50, args.latency_requests)):
                    do_get(s.client, key, rows)  # warm-up

            def timed_block(s):
                return [do_get(s.client, key, rows) * 1e6 for _ in range(block)]

            gc.disable()
            try:
                got = paired.run(f"DoGet latency {d.label} (blocks of {block})",
                                 -(-args.latency_requests // block), timed_block)
            finally:
                gc.enable()
            for s in both:
                lat_us[s.name][d.name] = [t for x in got[s.name] for t in x.result]
                lat_cpu[s.name][d.name] = sum(x.server_cpu for x in got[s.name])
        res.raw["latency_us"] = lat_us
        res.raw["latency_server_cpu_seconds_total"] = lat_cpu

        # --- cold DoGet (Quiver only) -----------------------------------------------
        cold, cold_other, cold_resident = [], [], []
        if args.cold_reps > 0:
            gate()
            log(f"DoGet {big.label} with Quiver's file evicted from the page cache: "
                f"{args.cold_reps} repetitions")
            for _ in range(args.cold_reps):
                evict_from_page_cache(big_blob)
                cold_resident.append(resident_fraction(big_blob))
                gc.collect()
                sample = measure(quiver,
                                 lambda: do_get(quiver.client, "bench/big", big.table.num_rows))
                cold.append(sample.wall)
                cold_other.append(sample.other)
        res.raw["cold_get_seconds"] = cold
        res.raw["cold_other_share"] = cold_other
        res.facts["cold_resident_before_get"] = cold_resident

        res.facts["discarded_for_noise"] = paired.discarded
        shares = [x for per in (get_samples, put_samples) for srv in per.values()
                  for v in srv.values() for x in (s.other for s in v)] + cold_other
        res.facts["timed_other_share"] = {"median": median(shares), "max": max(shares)}
        stats = quiver.client.do_action(flight.Action("stats", b""), options=CALL)
        res.facts["quiver_stats"] = json.loads(next(iter(stats)).body.to_pybytes())
    except BaseException:
        failed = True
        for s in servers:
            code = s.proc.poll()
            if code is not None:
                how = (f"killed by signal {signal.Signals(-code).name}" if code < 0
                       else f"exited with code {code}")
                log(f"the {s.name} server {how} during the run; last lines of {s.log_path}:")
                s._log.flush()
                tail = s.log_path.read_text(errors="replace").splitlines()[-15:]
                print("\n".join("    " + line for line in tail), file=sys.stderr)
        raise
    else:
        failed = False
    finally:
        for s in servers:
            s.stop()
        res.facts["machine"]["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        if args.keep_data or failed:
            log(f"kept the work dir {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # --- rows ---------------------------------------------------------------------
    def gbps(nbytes, secs):
        return [nbytes / t / 1e9 for t in secs]

    def spread(xs):
        return (min(xs), max(xs)) if xs else None

    for d in (big, small):
        q = gbps(d.nbytes, get_times["quiver"][d.name])
        b = gbps(d.nbytes, get_times["baseline"][d.name])
        res.rows.append(Row(f"DoGet {d.label}", "GB/s", True, median(q), median(b),
                            spread(q), spread(b)))
    for d in lat:
        q, b = lat_us["quiver"][d.name], lat_us["baseline"][d.name]
        for p in (50, 99):
            res.rows.append(Row(f"DoGet {d.label}, p{p}", "µs", False,
                                percentile(q, p), percentile(b, p)))
    for d in (big, small):
        q = gbps(d.nbytes, put_times["quiver"][d.name])
        b = gbps(d.nbytes, put_times["baseline"][d.name])
        res.rows.append(Row(f"DoPut {d.label}", "GB/s", True, median(q), median(b),
                            spread(q), spread(b)))
    if cold:
        q = gbps(big.nbytes, cold)
        res.rows.append(Row(f"DoGet {big.label}, Quiver's file evicted from the page "
                            "cache (vs. baseline from RAM)", "GB/s", True, median(q),
                            res.rows[0].baseline, spread(q), None))

    def per_gb(cpu, d):
        return {s: [c / (d.nbytes / 1e9) for c in cpu[s][d.name]]
                for s in ("quiver", "baseline")}

    for what, cpu, sets in (("Server CPU per GB served by DoGet", get_cpu, (big, small)),
                            ("Client CPU per GB received by DoGet", client_cpu, (big, small)),
                            ("Server CPU per GB stored by DoPut", put_cpu, (big, small))):
        for d in sets:
            x = per_gb(cpu, d)
            res.rows.append(Row(f"{what}, {d.label}", "CPU-s/GB", False,
                                median(x["quiver"]), median(x["baseline"]),
                                spread(x["quiver"]), spread(x["baseline"]), diag=True))
    for d in lat:
        n = len(lat_us["quiver"][d.name])
        res.rows.append(Row(f"Server CPU per DoGet request, {d.label}", "µs", False,
                            lat_cpu["quiver"][d.name] / n * 1e6,
                            lat_cpu["baseline"][d.name] / n * 1e6, diag=True))
    return res


# ---------------------------------------------------------------------------------------
# Output


def fmt_value(v: float | None, unit: str) -> str:
    if v is None or v != v:
        return "n/a"
    if unit == "GB/s":
        return f"{v:.2f}"
    if unit == "CPU-s/GB":
        return f"{v:.3f}"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}"


def text_table(rows: list[Row]) -> str:
    header = ["metric", "quiver", "baseline", "ratio Q/B", "Quiver better?"]
    body = [[f"{r.metric} ({r.unit}, {'higher' if r.higher_is_better else 'lower'} "
             f"is better)", fmt_value(r.quiver, r.unit), fmt_value(r.baseline, r.unit),
             fmt_ratio(r.ratio), r.quiver_better] for r in rows]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths)),
             "-+-".join("-" * w for w in widths)]
    for row in body:
        lines.append(" | ".join([row[0].ljust(widths[0])]
                                + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    out = ["| metric | Quiver | baseline | ratio Quiver/baseline | Quiver better? |",
           "|---|---:|---:|---:|---|"]
    for r in rows:
        better = "higher" if r.higher_is_better else "lower"
        out.append(f"| {r.metric} ({r.unit}, {better} is better) | "
                   f"{fmt_value(r.quiver, r.unit)} | {fmt_value(r.baseline, r.unit)} | "
                   f"**{fmt_ratio(r.ratio)}** | {r.quiver_better} |")
    return "\n".join(out)


def spread_lines(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.q_spread is None and r.b_spread is None:
            continue
        parts = []
        if r.q_spread:
            parts.append(f"Quiver {fmt_value(r.q_spread[0], r.unit)}–"
                         f"{fmt_value(r.q_spread[1], r.unit)}")
        if r.b_spread:
            parts.append(f"baseline {fmt_value(r.b_spread[0], r.unit)}–"
                         f"{fmt_value(r.b_spread[1], r.unit)}")
        out.append(f"* {r.metric}: " + ", ".join(parts) + f" {r.unit}")
    return out


def analysis(res: Results, args) -> str:
    """Analysis text, worded from this run's figures (the mechanisms are fixed facts)."""
    rows, raw = res.rows, res.raw
    big_get, small_get = rows[0], rows[1]
    lat_rows = [r for r in rows if r.metric.startswith("DoGet") and ", p" in r.metric]
    puts = [r for r in rows if r.metric.startswith("DoPut")]
    cold = next((r for r in rows if "evicted from the page cache" in r.metric), None)
    srv = {r.metric: r for r in rows if r.diag}
    cores = res.facts["machine"]["cores"]
    resident = res.facts.get("quiver_big_file", {}).get("resident_before_gets", float("nan"))

    def diag(prefix, dataset):
        return srv.get(f"{prefix}, {res.facts['datasets'][dataset]['label']}")

    def busy(kind, server, dataset):
        """Median CPU time / wall time of one process over the timed gets."""
        cpu = raw[f"get_{kind}_cpu_seconds"][server][dataset]
        wall = raw["get_seconds"][server][dataset]
        return median([c / w for c, w in zip(cpu, wall)])

    def history_sentence(metric):
        v = res.facts.get("history", {}).get(metric)
        if not v or len(v) < 3:
            return ""
        med = median(v)
        where = ("Quiver ahead" if med >= 1.05 else "Quiver behind" if med < 0.95 else
                 "the two on par")
        return (f"Across the {len(v)} runs listed above the ratio's median is {med:.2f} "
                f"(range {min(v):.2f}–{max(v):.2f}), which puts {where}. ")

    def verdict(r):
        x = r.ratio
        if x is None:
            return "could not be compared"
        if x >= 1.05:
            return f"is faster than the baseline ({x:.2f}×)"
        if x >= 0.95:
            return f"is on par with the baseline ({x:.2f}×, within noise)"
        return f"is slower than the baseline ({x:.2f}×)"

    def cpu_cmp(r):
        return (f"{fmt_value(r.quiver, r.unit)} CPU-s/GB for Quiver vs. "
                f"{fmt_value(r.baseline, r.unit)} for the baseline "
                f"(ratio {fmt_ratio(r.ratio)})") if r else "not measured"

    paras = []
    r = big_get.ratio
    goal = ("not measured" if r is None else "met" if r >= 1.05 else
            "met, but only within noise" if r >= 1.0 else
            "missed, but only within noise" if r >= 0.95 else "not met")
    client_busy = busy("client", "quiver", "big")
    srv_busy_q, srv_busy_b = busy("server", "quiver", "big"), busy("server", "baseline", "big")
    paras.append(
        f"**Large gets.** Serving the {big_get.metric[6:]} from its stored file, Quiver "
        f"{verdict(big_get)}: the goal (ratio ≥ 1.0) is {goal} in this run. "
        + history_sentence(big_get.metric)
        + f"\"From disk\" here means from a memory-mapped file in the OS page "
        f"cache ({resident:.0%} of its pages were resident before the gets, because the put "
        f"had just written it), not from the device; the row with the file evicted shows "
        f"the other case. Quiver sends each stored IPC message as a Flight payload whose "
        f"body is a zero-copy slice of the mapping, without decoding or re-encoding. The "
        f"baseline re-encodes its table on every request, but for these column types that "
        f"re-encode is also zero-copy: it builds a small flatbuffer header per batch and "
        f"points at the buffers it already holds. Neither server copies payload bytes in "
        f"user space; a perf profile taken while writing this harness showed both spending "
        f"about two thirds of their CPU in the kernel copying the bytes into the loopback "
        f"socket. What differs is small: Quiver maps the file anew for every DoGet, so the "
        f"kernel takes minor page faults as it reads through the mapping (perf stat: about "
        f"4 per MiB served, a few percent of the server's CPU), and the baseline builds IPC "
        f"headers and makes one trip through Python per request. During a large get the client process was busy {client_busy:.0%} of the "
        f"wall time (CPU time over wall time, its gRPC threads included), Quiver's process "
        f"{srv_busy_q:.0%} and the baseline's {srv_busy_b:.0%}. "
        + ("The bottleneck is therefore the client; the same profile put its time into "
           "page faults on freshly allocated buffers, the copy out of the socket and the "
           "copy of gRPC's slices into contiguous Arrow buffers. "
           if client_busy >= 0.8 else
           "No process was busy most of the time, so the gets were mostly waiting, most "
           "likely for CPU taken by other work on the machine (see the noise figure "
           "above). ")
        + f"With {cores} cores shared by client and server, the GB/s ratio says how fast "
        f"one pyarrow client drains either server (and carries the client's noise); the "
        f"direct comparison of the servers is their CPU per GB served: "
        f"{cpu_cmp(diag('Server CPU per GB served by DoGet', 'big'))}.")
    paras.append(
        f"**Many small batches.** With the {small_get.metric[6:]}, Quiver "
        f"{verdict(small_get)}. Per batch, Quiver reads the next IPC message header from "
        f"the mapping and wraps it as a payload, where the baseline builds the header from "
        f"the batch in memory; both are cheap next to the per-message gRPC and HTTP/2 work, "
        f"which is the same for the two servers and makes each GB cost more CPU than with "
        f"large batches: {cpu_cmp(diag('Server CPU per GB served by DoGet', 'small'))}.")
    if lat_rows:
        desc = "; ".join(f"{r.metric[6:]}: {fmt_value(r.quiver, r.unit)} µs vs. "
                         f"{fmt_value(r.baseline, r.unit)} µs ({fmt_ratio(r.ratio)}×)"
                         for r in lat_rows)
        p50s = [r for r in lat_rows if r.metric.endswith("p50")]
        worse = [r for r in p50s if r.ratio is not None and r.ratio > 1.05]
        better = [r for r in p50s if r.ratio is not None and r.ratio < 0.95]
        cpu_req = next((r for r in rows if r.metric.startswith("Server CPU per DoGet request")),
                       None)
        if worse:
            summary = ("Quiver is slower at the median for the "
                       + " and the ".join(r.metric[6:].rsplit(",", 1)[0] for r in worse)
                       + ".")
        elif better:
            summary = ("Quiver is a little faster at the median for the "
                       + " and the ".join(r.metric[6:].rsplit(",", 1)[0] for r in better)
                       + (" and on par otherwise." if len(better) < len(p50s) else "."))
        else:
            summary = "The medians are on par (within 5%)."
        paras.append(
            f"**Small objects** (Quiver vs. baseline — {desc}). {summary} A request of this "
            f"size is almost all fixed cost: the gRPC round trip over loopback, stream setup "
            f"and teardown on both sides, and the client building a table. The servers' own "
            f"work differs: Quiver looks the key up in its index, stat()s and memory-maps the "
            f"stored file, decodes the schema message, and unmaps the file when the stream "
            f"ends; the baseline's do_get takes the GIL to run a few lines of Python and "
            f"hands back a table already in memory. "
            + ("" if not (cpu_req and cpu_req.ratio) else
               f"Quiver's extra file work shows in its server CPU per request "
               f"({fmt_value(cpu_req.quiver, cpu_req.unit)} µs vs. "
               f"{fmt_value(cpu_req.baseline, cpu_req.unit)} µs for the first object). "
               if cpu_req.ratio > 1.1 else
               f"Quiver's server CPU per request is lower "
               f"({fmt_value(cpu_req.quiver, cpu_req.unit)} µs vs. "
               f"{fmt_value(cpu_req.baseline, cpu_req.unit)} µs for the first object): its "
               f"file work costs less than the baseline's trip through Python. "
               if cpu_req.ratio < 0.9 else
               f"Measured as server CPU per request the two come out at similar cost "
               f"({fmt_value(cpu_req.quiver, cpu_req.unit)} µs vs. "
               f"{fmt_value(cpu_req.baseline, cpu_req.unit)} µs for the first object; "
               f"this includes gRPC's own work). ")
            + f"The p99 figures on a {cores}-core VM are dominated by scheduling noise.")
    if puts:
        desc = "; ".join(f"{r.metric[6:]}: Quiver {fmt_value(r.quiver, r.unit)} GB/s vs. "
                         f"baseline {fmt_value(r.baseline, r.unit)} GB/s "
                         f"({fmt_ratio(r.ratio)}×)" for r in puts)
        put_big = puts[0]
        cpu_put = diag("Server CPU per GB stored by DoPut", "big")
        cpu_note = ""
        if cpu_put and put_big.quiver and put_big.quiver == put_big.quiver:
            wall_per_gb = 1 / put_big.quiver
            share = cpu_put.quiver / wall_per_gb
            cpu_note = (
                f" Quiver's process used {fmt_value(cpu_put.quiver, cpu_put.unit)} CPU-s per "
                f"GB stored against {wall_per_gb:.2f} s of wall time per GB (the baseline "
                f"{fmt_value(cpu_put.baseline, cpu_put.unit)} CPU-s), so "
                + ("the put is mostly CPU-bound in the server rather than waiting for the "
                   "disk. A perf profile taken while writing this harness put Quiver's extra "
                   "CPU, beyond the receive path both servers share, into copying the "
                   "stream into the page cache with write() (about a fifth of its CPU), "
                   "full validation (about a sixth, mostly checking that every string is "
                   "UTF-8) and the checksum (under a tenth); the fsync itself costs little "
                   "CPU."
                   if share >= 0.6 else
                   "much of Quiver's put time is spent waiting for the disk to absorb and "
                   "flush the data rather than computing."))
        paras.append(
            f"**DoPut** ({desc}). Quiver is slower here, and the comparison is not like for "
            f"like: the baseline keeps the received batches in RAM and is done, while Quiver "
            f"fully validates every batch (`ValidateFull`, including UTF-8 checks of every "
            f"string), writes it as an IPC stream into a temporary file while checksumming "
            f"it (XXH3), fsyncs the file and its directory, renames it into place and "
            f"publishes a manifest, so a put that returns is durable and survives a "
            f"restart.{cpu_note}")
    if cold:
        cold_res = res.facts.get("cold_resident_before_get") or [float("nan")]
        paras.append(
            f"**Not in the page cache.** With the file evicted before each get "
            f"(posix_fadvise DONTNEED; {max(cold_res):.0%} of it still resident according to "
            f"mincore), Quiver delivered {fmt_value(cold.quiver, 'GB/s')} GB/s, "
            f"{fmt_ratio(cold.ratio)}× the baseline serving from RAM: the pages now come from "
            f"the block device through page faults on the mapping, with the kernel's "
            f"readahead. This VM's virtual disk may itself be cached by the host, so treat "
            f"this as an optimistic figure for a truly cold read.")
    return "\n\n".join(paras)


def run_history(res: Results, args, this_json: Path) -> tuple[int, dict]:
    """Ratios of this run and of earlier runs in bench/results/ with the same sizes on the
    same kind of machine: (number of runs, {metric: [ratio, ...]})."""
    sizes = (args.big, args.big_batch, args.small, args.small_batch)
    machine = (res.facts["machine"]["cpu"], res.facts["machine"]["cores"])
    out = {r.metric: [r.ratio] for r in res.rows if not r.diag and r.ratio is not None}
    runs = 1
    for f in sorted(RESULTS_DIR.glob("flight-bench-*.json")):
        if f.resolve() == this_json.resolve():
            continue
        try:
            d = json.loads(f.read_text())
            a, m = d["args"], d["facts"]["machine"]
            if (a["big"], a["big_batch"], a["small"], a["small_batch"]) != sizes:
                continue
            if (m["cpu"], m["cores"]) != machine:
                continue
            rows = d["rows"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        runs += 1
        for row in rows:
            if not row.get("diagnostic") and row.get("ratio") is not None \
                    and row.get("metric") in out:
                out[row["metric"]].append(row["ratio"])
    return runs, out


def history_lines(runs: int, hist: dict) -> list[str]:
    return [f"* {metric}: {min(v):.2f} – {median(v):.2f} – {max(v):.2f} ({len(v)} runs)"
            for metric, v in hist.items()]


def docs_section(res: Results, args, command: str, runtime_s: float) -> str:
    m = res.facts["machine"]
    ds = res.facts["datasets"]
    lines = [
        BEGIN_MARK,
        "## Flight: Quiver vs. an in-memory pyarrow Flight server",
        "",
        "_Written by `bench/flight_bench.py`; do not edit by hand between the markers._",
        "",
        f"* Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"* Command: `{command}` (the run took {runtime_s:.0f} s"
        + (f", plus {res.facts['waited_for_idle_seconds']:.0f} s waiting for other work on "
           f"the machine to finish)" if res.facts.get("waited_for_idle_seconds", 0) >= 1
           else ")"),
        f"* Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, kernel {m['kernel']} "
        f"({m['os']}); load average at start {m['loadavg_start']}, at end "
        f"{m.get('loadavg_end', '?')}; CPU used by other work during the run "
        f"{res.facts.get('other_cpu_share', float('nan')):.0%} of the machine, hypervisor "
        f"steal {res.facts.get('steal_share', float('nan')):.0%}",
        f"* Software: Python {m['python']}, pyarrow {m['pyarrow']}, numpy {m['numpy']}; "
        f"{res.facts.get('quiver_version', 'quiver')} at commit {m['quiver_commit']}",
        f"* Quiver's data dir: {m['data_dir_fs']}",
        "",
        *([f"**Noisy run:** other work used {res.facts['other_cpu_share']:.0%} of the "
           f"machine's CPU while this ran, so the figures below are less reliable than "
           f"usual; rerun on a quiet machine (`--wait-idle`) before drawing conclusions.",
           ""] if res.facts.get("other_cpu_share", 0) > 0.10 else []),
        "Setup: both servers run on this machine, each in its own process, and one Python "
        "client (`pyarrow.flight`, one connection per server, default options, no "
        "compression) drives both with the same code over loopback gRPC. The baseline is "
        "`bench/baseline_server.py`, a `FlightServerBase` that keeps each put's "
        "`read_all()` table in a dict and answers DoGet with `RecordBatchStream(table)`. "
        "Quiver is `quiver serve` on a fresh data dir. Data: columns id/key int64, x/y "
        "float64 (numpy random, fixed seed) and s string (random 4-28 letters); "
        "datasets:",
        "",
    ]
    for name, d in ds.items():
        lines.append(f"  * `{name}`: {d['label']} — {d['rows']:,} rows, {d['batches']:,} "
                     f"batch{'es' if d['batches'] != 1 else ''}, {d['nbytes']:,} bytes (nbytes), {d['ipc_bytes']:,} bytes as "
                     f"an IPC stream")
    qf = res.facts.get("quiver_big_file", {})
    disc = {k: v for k, v in res.facts.get("discarded_for_noise", {}).items() if v}
    tos = res.facts.get("timed_other_share", {})
    noise_text = (
        (f"This run discarded {', '.join(f'{v} in {k}' for k, v in disc.items())}. "
         if disc else "This run discarded none. ")
        + (f"Across the kept throughput repetitions other work used a median "
           f"{tos['median']:.0%} of the machine (max {tos['max']:.0%})."
           if tos else ""))
    lines += [
        "",
        f"Gets consume the whole stream (`reader.read_all()`) and check the row count; "
        f"GB/s is the table's nbytes per second of wall time from the DoGet call to the "
        f"last batch (the IPC stream on the wire is larger by "
        f"{(ds['big']['ipc_bytes'] / ds['big']['nbytes'] - 1) * 100:.2f}% for `big` and "
        f"{(ds['small']['ipc_bytes'] / ds['small']['nbytes'] - 1) * 100:.2f}% for `small`: "
        f"message headers and padding). Large and small-batch gets: "
        f"median of {args.reps} repetitions per server after one warm-up get each, "
        f"alternating servers. Puts: median of {args.put_reps} repetitions, timed from the "
        f"DoPut call until the server's metadata reply. Latency: {args.latency_requests} "
        f"sequential DoGets per object and server after 50 warm-up requests, in blocks of "
        f"50 alternating between servers. Before the gets, every stored table was read "
        f"back from both servers and compared with the original. Quiver's file for the "
        f"large table was {qf.get('resident_before_gets', float('nan')):.0%} resident in "
        f"the page cache before the warm gets (mincore). Server CPU is user+system time of "
        f"the server process from /proc (10 ms resolution) over the timed requests. "
        f"Interference check: a throughput or put repetition (both servers' turns) during "
        f"which other work used more than {args.max_noise:.0%} of the machine's CPU "
        f"(/proc/stat busy time, hypervisor steal included, minus the client's and the "
        f"server's own) is discarded and run again, at most as many times as the phase has "
        f"repetitions; latency blocks are too short for /proc/stat's 10 ms ticks and are "
        f"not checked. {noise_text}",
        "",
        markdown_table([r for r in res.rows if not r.diag]),
        "",
        "Spread (min–max over repetitions):",
        "",
        *spread_lines([r for r in res.rows if not r.diag]),
        "",
        *([f"Ratio Quiver/baseline across the {res.facts['history_runs']} runs with "
           f"these sizes on this machine, this one included (min – median – max; raw "
           f"results in `bench/results/`, not committed; earlier runs may have used earlier "
           f"builds of Quiver and of this harness). Single runs on a shared VM vary from run "
           f"to run, so the medians are the better guide:",
           "",
           *history_lines(res.facts["history_runs"], res.facts["history"]),
           ""] if res.facts.get("history_runs", 0) >= 3 else []),
        "Where the CPU goes (medians; user+system CPU of the server process and of the "
        "client process, which includes its gRPC threads):",
        "",
        markdown_table([r for r in res.rows if r.diag]),
        "",
        "### Analysis",
        "",
        analysis(res, args),
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def write_docs(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else DOCS_INTRO
    if BEGIN_MARK in text and END_MARK in text:
        before = text.split(BEGIN_MARK, 1)[0]
        after = text.split(END_MARK, 1)[1]
        text = before + section.rstrip("\n") + after
        if not text.endswith("\n"):
            text += "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/flight_bench.py",
        description="Benchmark Quiver's Flight DoGet/DoPut against an in-memory pyarrow "
                    "Flight server (bench/baseline_server.py) in one run, print a table "
                    "with the ratio Quiver/baseline, and write the figures with machine "
                    "details into docs/benchmarks.md.",
        epilog="Sizes accept B, KiB, MiB, GiB (and KB, MB, GB). The full run takes a few "
               "minutes on 2 cores; --quick is a smoke run that does not touch the docs "
               "unless --docs is given.",
)
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repetitions (64 MiB large table, 16 MiB "
                        "small-batch table, 2 reps, 100 latency requests, 1 cold get)")
    p.add_argument("--big", type=parse_size, default=None,
                   help="size of the large table [default: 1GiB, --quick: 64MiB]")
    p.add_argument("--big-batch", type=parse_size, default=None,
                   help="batch size of the large table [default: 64MiB, --quick: 8MiB]")
    p.add_argument("--small", type=parse_size, default=None,
                   help="size of the many-small-batches table [default: 256MiB, --quick: "
                        "16MiB]")
    p.add_argument("--small-batch", type=parse_size, default=parse_size("64KiB"),
                   help="batch size of the many-small-batches table [default: 64KiB]")
    p.add_argument("--latency-sizes", default="1KiB,64KiB",
                   help="comma-separated sizes of the single-batch objects timed for latency [default: 1KiB,64KiB]")
    p.add_argument("--reps", type=int, default=None,
                   help="timed repetitions per server of each throughput get [default: 7, "
                        "--quick: 2]")
    p.add_argument("--put-reps", type=int, default=None,
                   help="timed repetitions per server of each put [default: 3, --quick: 1]")
    p.add_argument("--latency-requests", type=int, default=None,
                   help="timed requests per server and object [default: 1000, --quick: 100]")
    p.add_argument("--cold-reps", type=int, default=None,
                   help="Quiver-only gets of the large table with its file evicted from the "
                        "page cache; 0 skips them [default: 3, --quick: 1]")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before starting and before each phase, wait up to SECONDS for the "
                        "machine to be idle (under 10%% busy over 3 s); for shared machines "
                        "[default: 0, do not wait]")
    p.add_argument("--max-noise", type=float, default=0.25, metavar="FRACTION",
                   help="discard and repeat a repetition (both servers' turns) during which "
                        "other work used more than FRACTION of the machine's CPU "
                        "[default: 0.25; 1 disables]")
    p.add_argument("--retries", type=int, default=None,
                   help="most repetitions discarded per phase for noise [default: as many "
                        "as the phase has]")
    p.add_argument("--seed", type=int, default=20251121, help="data generator seed [default: %(default)s]")
    p.add_argument("--quiver", default=str(ROOT / "build" / "quiver"),
                   help="the Quiver server binary, copied into the work dir before use "
                        "[default: build/quiver]")
    p.add_argument("--work-dir", default=str(RESULTS_DIR),
                   help="where the run's temporary dir (Quiver's data dir, server logs) is "
                        "created; it should be on the disk you want to measure [default: "
                        "bench/results]")
    p.add_argument("--keep-data", action="store_true",
                   help="keep the run's temporary dir (data and server logs)")
    p.add_argument("--docs", default=None,
                   help=f"markdown file whose flight-bench section is rewritten [default: "
                        f"{DEFAULT_DOCS.relative_to(ROOT)}; not written with --quick]")
    p.add_argument("--no-docs", action="store_true", help="do not write the docs file")
    p.add_argument("--render", metavar="JSON", default=None,
                   help="do not measure: rewrite the docs section from the raw results of "
                        "an earlier run (a bench/results/flight-bench-*.json file)")
    p.add_argument("--json", default=None,
                   help="where to write the raw results as JSON [default: "
                        "bench/results/flight-bench-<time>.json]")
    args = p.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    args.big = pick(args.big, GiB, 64 * MiB)
    args.big_batch = pick(args.big_batch, 64 * MiB, 8 * MiB)
    args.small = pick(args.small, 256 * MiB, 16 * MiB)
    args.reps = pick(args.reps, 7, 2)
    args.put_reps = pick(args.put_reps, 3, 1)
    args.latency_requests = pick(args.latency_requests, 1000, 100)
    if args.latency_requests > 50:  # whole blocks of 50 (see run())
        args.latency_requests = -(-args.latency_requests // 50) * 50
    args.cold_reps = pick(args.cold_reps, 3, 1)
    args.latency_sizes = [parse_size(s) for s in args.latency_sizes.split(",") if s.strip()]
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(DEFAULT_DOCS)
    if min(args.reps, args.put_reps, args.latency_requests) < 1:
        p.error("--reps, --put-reps and --latency-requests must be at least 1")
    if not args.latency_sizes:
        p.error("--latency-sizes needs at least one size")
    return args


def load_results(path: Path):
    """Results, arguments, command and runtime of a run saved as JSON by this harness."""
    d = json.loads(path.read_text())
    res = Results(raw=d["raw"], facts=d["facts"])
    for r in d["rows"]:
        res.rows.append(Row(r["metric"], r["unit"], r["higher_is_better"], r["quiver"],
                            r["baseline"],
                            tuple(r["quiver_spread"]) if r.get("quiver_spread") else None,
                            tuple(r["baseline_spread"]) if r.get("baseline_spread") else None,
                            diag=r.get("diagnostic", False)))
    args = argparse.Namespace(**d["args"])
    args.max_noise = getattr(args, "max_noise", 0.25)
    return res, args, d["command"], d["runtime_s"]


def render(path: Path, docs: str | None) -> int:
    """Rewrite the docs section from a saved run (e.g. after improving the wording)."""
    res, args, command, runtime = load_results(path)
    print(text_table([r for r in res.rows if not r.diag]))
    runs, hist = run_history(res, args, path)
    if runs >= 3:
        res.facts["history_runs"], res.facts["history"] = runs, hist
    if docs:
        write_docs(Path(docs), docs_section(res, args, command, runtime))
        print(f"wrote the flight-bench section of {docs} from {path}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        return render(Path(args.render), args.docs)
    command = os.environ.get("QUIVER_BENCH_COMMAND") or shlex.join(
        ["bench/flight_bench.py", *argv])
    if args.wait_idle > 0:
        wait_for_idle(args.wait_idle)
    start = time.perf_counter()
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"note: 1-minute load average is {load:.2f}; other work on this machine will "
            f"add noise")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    busy0, own0, steal0 = machine_busy_seconds(), own_cpu_seconds(), machine_steal_seconds()
    res = run(args)
    runtime = time.perf_counter() - start - WAITED["wall"]
    other = max(0.0, (machine_busy_seconds() - busy0 - WAITED["busy"])
                - (own_cpu_seconds() - own0 - WAITED["own"]))
    res.facts["other_cpu_seconds"] = other
    res.facts["other_cpu_share"] = other / max(1e-9, runtime) / (
        os.cpu_count() or 1)
    res.facts["waited_for_idle_seconds"] = WAITED["wall"]
    res.facts["steal_share"] = (machine_steal_seconds() - steal0 - WAITED["steal"]) / runtime / (
        os.cpu_count() or 1)

    print()
    print(f"Quiver vs. in-memory pyarrow Flight server ({runtime:.0f} s, plus "
          f"{WAITED['wall']:.0f} s waiting for idle; medians; GB = 1e9 "
          f"bytes of table nbytes)")
    print(text_table([r for r in res.rows if not r.diag]))
    print("\nWhere the CPU goes (user+system CPU seconds from /proc, 10 ms resolution):")
    print(text_table([r for r in res.rows if r.diag]))
    qf = res.facts.get("quiver_big_file", {})
    print(f"\nQuiver's file for the large table was "
          f"{qf.get('resident_before_gets', float('nan')):.0%} in the page cache before the "
          f"warm gets: 'from disk' means from a memory-mapped file in the OS page cache. "
          f"The cold row evicts it first (posix_fadvise DONTNEED).")

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = Path(args.json) if args.json else RESULTS_DIR / f"flight-bench-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({
        "command": command, "runtime_s": runtime, "args": {
            k: v for k, v in vars(args).items()}, "facts": res.facts, "raw": res.raw,
        "rows": [{"metric": r.metric, "unit": r.unit, "higher_is_better": r.higher_is_better,
                  "quiver": r.quiver, "baseline": r.baseline, "ratio": r.ratio,
                  "quiver_spread": r.q_spread, "baseline_spread": r.b_spread,
                  "diagnostic": r.diag}
                 for r in res.rows]}, indent=2, default=str))
    print(f"Other CPU use on the machine during the run (not the harness or its servers, "
          f"including kernel interrupt time not charged to a process): {other:.1f} CPU-s, "
          f"{res.facts['other_cpu_share']:.0%} of the machine (hypervisor steal "
          f"{res.facts['steal_share']:.0%})"
          + ("  <-- noisy run; consider --wait-idle" if res.facts["other_cpu_share"] > 0.1
             else ""))
    print(f"raw results: {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}")
    runs, hist = run_history(res, args, json_path)
    if runs >= 3:
        res.facts["history_runs"], res.facts["history"] = runs, hist
        print(f"\nRatio Quiver/baseline over {runs} runs with these sizes on this machine "
              f"(min – median – max):")
        print("\n".join(history_lines(runs, hist)))
    if args.docs:
        write_docs(Path(args.docs), docs_section(res, args, command, runtime))
        print(f"wrote the flight-bench section of {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
