"""Machine and environment helpers shared by the benchmark harnesses under bench/.

Sizes and summary statistics, progress logging, CPU and memory accounting from /proc (a
process's CPU time and memory figures, the machine's busy and steal time, other work's share
of the machine during a phase), waiting for the machine to go idle, page cache residency of a file, and the machine
details (CPU, RAM, kernel, library versions, git commit) recorded with each run. Linux only
(reads /proc).

Importing this module puts tests/ on sys.path: the test suite's helpers (tests/*_util.py:
manifests, Redis and PostgreSQL servers) serve the harnesses too.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = ROOT / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.append(str(TESTS_DIR))

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


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


def spread(xs):
    """(min, max) of xs, or None if there are none."""
    return (min(xs), max(xs)) if xs else None


# The name in log lines' prefix; a harness may set it (bench_env.LOG_NAME = "...").
LOG_NAME = "bench"


def log(msg: str) -> None:
    print(f"[{LOG_NAME} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

# ---------------------------------------------------------------------------------------
# CPU accounting (/proc)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, field: str) -> int:
    """A memory figure of a process in KiB from /proc/PID/status (VmRSS, VmHWM, RssAnon,
    RssFile, ...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


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


def process_cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads; not its children)."""
    t = os.times()
    return t.user + t.system


class Phase:
    """Other work's share of the machine while one phase ran (not this harness or the
    servers it measures), so that a noisy phase can be told from a quiet one; recorded in
    facts["phase_other_cpu_share"][name]. `server` has proc and log_path (to report a server
    that exited before the phase) and cpu() (the CPU seconds of everything it runs)."""

    def __init__(self, server, name: str, facts: dict):
        self.server, self.name, self.facts = server, name, facts

    def __enter__(self):
        if self.server.proc.poll() is not None:
            raise RuntimeError(f"quiver exited with code {self.server.proc.returncode} before "
                               f"the {self.name} phase; see {self.server.log_path}")
        self.t0, self.b0 = time.perf_counter(), machine_busy_seconds()
        self.o0, self.s0 = process_cpu_seconds(), self.server.cpu()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            wall = time.perf_counter() - self.t0
            mine = process_cpu_seconds() - self.o0 + self.server.cpu() - self.s0
            other = max(0.0, machine_busy_seconds() - self.b0 - mine)
            self.facts.setdefault("phase_other_cpu_share", {})[self.name] = (
                other / max(1e-9, wall) / (os.cpu_count() or 1))
        return False


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


def wait_for_idle_accounted(max_wait: float) -> None:
    """wait_for_idle(max_wait) if max_wait > 0, adding the time and CPU spent waiting to
    WAITED so that a run's "other CPU" figure can leave the waits out."""
    if max_wait > 0:
        b0, o0, w0 = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()
        s0 = machine_steal_seconds()
        wait_for_idle(max_wait)
        WAITED["steal"] += machine_steal_seconds() - s0
        WAITED["busy"] += machine_busy_seconds() - b0
        WAITED["own"] += own_cpu_seconds() - o0
        WAITED["wall"] += time.perf_counter() - w0


# ---------------------------------------------------------------------------------------
# Page cache residency of a file



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


# ---------------------------------------------------------------------------------------
# Machine details


def git_output(root: Path, *args) -> str:
    """Output of `git ARGS` in root, stripped; "" if git fails."""
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def git_commit(root: Path = ROOT,
               paths=("src", "cmake", "CMakeLists.txt")) -> str:
    """Short HEAD commit of root, noting uncommitted changes under paths."""
    commit = git_output(root, "rev-parse", "--short=12", "HEAD") or "unknown"
    if git_output(root, "status", "--porcelain", "--", *paths):
        commit += " (plus uncommitted changes in src/ or the build files)"
    return commit


def machine_details(data_dir: Path, root: Path = ROOT) -> dict:
    """CPU, cores, RAM, kernel, OS, data_dir's file system, library versions, the git
    commit of root and the load average now."""
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

    commit = git_commit(root)
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

