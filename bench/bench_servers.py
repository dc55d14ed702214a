"""Server processes under test and the client-side timing shared by the harnesses.

Server starts a Flight server process, reads its location from the first line it prints
and connects a client; QuiverProcess is `quiver serve` (quiver_argv) with its stats action,
serve_flags the options a binary's `quiver serve --help` lists;
start_quiver and start_baseline start the two servers the Flight harness compares
(build/quiver and bench/baseline_server.py). snapshot_binary copies the server binary so a
concurrent rebuild cannot swap it mid-run. do_put and do_get are the client operations,
identical for every server; measure and PairedRuns time a function on each server in turn,
alternating their order, and account for the CPU used meanwhile.
"""
from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight

from bench_env import (git_output, log, machine_busy_seconds, machine_details,
                       proc_cpu_seconds)
from quiver_util import manifest_path  # (tests/ is on sys.path: bench_env)

ROOT = Path(__file__).resolve().parent.parent
BASELINE_SERVER = ROOT / "bench" / "baseline_server.py"


# ---------------------------------------------------------------------------------------
# Servers


class Server:
    """A server process started from argv whose first line on stdout starts with banner
    and ends with its location (within start_timeout seconds); its stderr goes to
    log_path."""

    def __init__(self, name: str, argv: list[str], log_path: Path, banner: str,
                 cwd: Path = ROOT, start_timeout: float = 60):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log,
                                     cwd=cwd, start_new_session=True)
        line = self._first_line(timeout=start_timeout)
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


def quiver_argv(binary: Path, data_dir: Path, *extra_args) -> list[str]:
    """`quiver serve` on a free loopback port with data_dir, logging at info level."""
    return [str(binary), "serve", "--listen", "grpc://127.0.0.1:0", "--data-dir", str(data_dir),
            "--log-level", "info", *extra_args]


class QuiverProcess(Server):
    """A `quiver serve` process (quiver_argv) and its counters (the stats action)."""

    def __init__(self, name: str, binary: Path, data_dir: Path, log_path: Path, extra_args=(),
                 cwd: Path = ROOT, start_timeout: float = 60):
        super().__init__(name, quiver_argv(binary, data_dir, *extra_args), log_path,
                         "quiver listening on ", cwd=cwd, start_timeout=start_timeout)

    def stats(self) -> dict:
        result = next(iter(self.client.do_action(flight.Action("stats", b""), CALL)))
        return json.loads(result.body.to_pybytes())


def serve_flags(binary: Path) -> set[str]:
    """The long options `quiver serve --help` lists (e.g. "--durability"), so a harness can
    use a flag only where the binary has it."""
    out = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out))


def start_quiver(binary: Path, data_dir: Path, log_path: Path, max_object_bytes: int,
                 extra_args=()) -> QuiverProcess:
    return QuiverProcess("quiver", binary, data_dir, log_path,
                         ["--max-object-bytes", str(max_object_bytes), *extra_args])


def start_baseline(log_path: Path, extra_args=()) -> Server:
    """bench/baseline_server.py (the in-memory pyarrow Flight server) on a free port."""
    return Server("baseline",
                  [sys.executable, str(BASELINE_SERVER), "--listen", "grpc://127.0.0.1:0",
                   *extra_args],
                  log_path, "baseline listening on")


def report_dead_servers(servers) -> None:
    """Log how each server that has exited ended, with the last lines of its log."""
    for s in servers:
        code = s.proc.poll()
        if code is not None:
            how = (f"killed by signal {signal.Signals(-code).name}" if code < 0
                   else f"exited with code {code}")
            log(f"the {s.name} server {how} during the run; last lines of {s.log_path}:")
            s._log.flush()
            tail = s.log_path.read_text(errors="replace").splitlines()[-15:]
            print("\n".join("    " + line for line in tail), file=sys.stderr)


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


def snapshot_binary(src: Path, dst: Path, attempts: int = 30) -> None:
    """Copy the server binary so a concurrent rebuild cannot swap it mid-run; tries every
    5 s, `attempts` times."""
    for attempt in range(attempts):
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



def snapshot_with_facts(quiver: str, work: Path, facts: dict) -> Path:
    """Snapshot `quiver` into work/quiver (snapshot_binary); record its path and sha256, the
    commit of the work tree it sits in, and the machine's details in `facts`. Returns the
    snapshot's path."""
    binary = work / "quiver"
    snapshot_binary(Path(quiver), binary, attempts=60)
    facts["quiver_binary"] = {"path": str(quiver),
                              "sha256": hashlib.sha256(binary.read_bytes()).hexdigest()[:16]}
    # The commit is that of the work tree the binary was built in (another one than this
    # harness's, e.g. --quiver /elsewhere/build/quiver), if it is in one.
    top = git_output(Path(quiver).resolve().parent, "rev-parse", "--show-toplevel")
    facts["machine"] = machine_details(work, root=Path(top) if top else ROOT)
    if not top:
        facts["machine"]["quiver_commit"] = "unknown (the binary is not in a git work tree)"
    return binary

def quiver_blob(data_dir: Path, key: str, version: int) -> Path:
    """The stored file holding version `version` of key in Quiver's data dir."""
    return data_dir / json.loads(manifest_path(data_dir, key, version).read_text())["blob"]


# ---------------------------------------------------------------------------------------
# Client operations (identical for all servers)

CALL = flight.FlightCallOptions(timeout=600)


def do_put(client, key: str, table: pa.Table, descriptor: flight.FlightDescriptor | None = None,
           decode=json.loads) -> tuple[float, dict]:
    """DoPut of table under key (a path descriptor of key's segments, unless `descriptor`
    is given) until the PutResult; its wall time and the PutResult's metadata through
    `decode` (Quiver's and the baseline's is JSON)."""
    if descriptor is None:
        descriptor = flight.FlightDescriptor.for_path(*key.split("/"))
    t0 = time.perf_counter()
    writer, meta_reader = client.do_put(descriptor, table.schema, options=CALL)
    for batch in table.to_batches():
        writer.write_batch(batch)
    writer.done_writing()
    meta = meta_reader.read()
    writer.close()
    elapsed = time.perf_counter() - t0
    ref = decode(meta.to_pybytes()) if meta is not None else {}
    return elapsed, ref


def do_get(client, ticket: str | flight.Ticket, expect_rows: int) -> float:
    """DoGet of a key (or any ticket), reading the whole stream; its wall time."""
    if isinstance(ticket, str):
        ticket = flight.Ticket(ticket.encode())
    t0 = time.perf_counter()
    table = client.do_get(ticket, options=CALL).read_all()
    elapsed = time.perf_counter() - t0
    if table.num_rows != expect_rows:
        raise RuntimeError(f"DoGet {ticket.ticket[:80]!r}: {table.num_rows} rows, expected "
                           f"{expect_rows}")
    return elapsed


# ---------------------------------------------------------------------------------------
# Timing on each server in turn


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
    10 ms ticks are too coarse for them). `measure` times one turn (default: measure; one
    that runs a client process must count that process's CPU as the client's).
    """

    def __init__(self, servers, max_noise: float, retries: int | None, measure=measure):
        self.servers, self.max_noise, self.retries = servers, max_noise, retries
        self.measure = measure
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
                pair[s.name] = self.measure(s, lambda: fn(s))
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
