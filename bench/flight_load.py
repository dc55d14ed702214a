"""Flight client load from several processes, each running threads with their own connection.

run_load starts `procs` client processes (spawned: fresh interpreters, so no gRPC state is
inherited through fork), each with `threads` threads; every thread opens its own Flight
connection, runs a few warm-up operations, then all threads of all processes are released
together and call the operation on their share of the items: item i goes to thread
i mod (procs x threads), so every thread works through the key space at the same pace.
Either a fixed number of items (a fill, a batch of gets) or as many as fit in `seconds` (a
throughput window). One Python process drives a few thousand requests per second on a core;
several processes keep the client from being the bottleneck on a small machine.

Operations are small picklable objects called as op(client, i):
  PutKey  -- DoPut of a table under key_space.key(i) (Quiver's object protocol)
  GetKey  -- DoGet of key_space.key(i mod stored), checking the row count
A harness may pass any other picklable callable of that shape (small_writes_bench passes
Flame's put).

KeySpace names keys `PREFIX<i // per_session>/o<i % per_session>` (a session of
per_session objects), the layout shared by the fill and the gets of scale_bench.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.flight as flight

from bench_env import log
from bench_servers import do_get, do_put


WARMUP_BASE = 1 << 40  # warm-up items are numbered from here: keys no timed operation uses


@dataclass(frozen=True)
class KeySpace:
    prefix: str = "s"
    per_session: int = 1000

    def key(self, i: int) -> str:
        return f"{self.prefix}{i // self.per_session}/o{i % self.per_session}"


@dataclass(frozen=True)
class PutKey:
    keys: KeySpace
    table: pa.Table

    def __call__(self, client, i: int) -> None:
        do_put(client, self.keys.key(i), self.table)


@dataclass(frozen=True)
class GetKey:
    """DoGet of key i mod `stored` (warm-up items included), expecting `rows` rows."""
    keys: KeySpace
    rows: int
    stored: int

    def __call__(self, client, i: int) -> None:
        do_get(client, self.keys.key(i % self.stored), self.rows)


@dataclass
class LoadResult:
    done: int                 # operations completed (warm-up excluded)
    seconds: float            # from the release to the end of the last thread
    latencies_ms: list        # per operation, if asked for (all threads pooled)
    per_process: list         # operations per process
    client_cpu_s: float       # CPU time of the client processes (start-up included)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else float("nan")


def _thread_main(location, op, items, warmup, seconds, record, ready, go, out, progress):
    try:
        client = flight.connect(location)
        for i in warmup:
            op(client, i)
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        out.append({"error": repr(e)})
        ready.abort()
        return
    ready.wait()
    go.wait()
    try:
        t0 = time.monotonic()
        deadline = t0 + seconds if seconds else None
        lat, done = [], 0
        for i in items:
            if deadline is not None and time.monotonic() >= deadline:
                break
            a = time.perf_counter()
            op(client, i)
            if record:
                lat.append((time.perf_counter() - a) * 1000)
            done += 1
            if done % 64 == 0:
                with progress.get_lock():
                    progress.value += 64
        with progress.get_lock():
            progress.value += done % 64
        out.append({"done": done, "t0": t0, "t1": time.monotonic(), "lat": lat})
        client.close()
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        out.append({"error": repr(e)})


def _unbounded(first: int, step: int):
    i = first
    while True:
        yield i
        i += step


def _process_main(location, op, proc, procs, threads, items, warmup, seconds, record,
                  barrier, results, progress):
    """One client process: `threads` threads; thread t takes item share proc * threads + t
    of procs * threads. Released when every thread of every process is connected and warm."""
    workers = procs * threads
    ready, go = threading.Barrier(threads + 1), threading.Event()
    out: list = []
    ts = []
    for t in range(threads):
        w = proc * threads + t
        mine = (_unbounded(w, workers) if items is None
                else (items[k] for k in range(w, len(items), workers)))
        warm = [WARMUP_BASE + w * warmup + k for k in range(warmup)]
        ts.append(threading.Thread(target=_thread_main, daemon=True,
                                   args=(location, op, mine, warm, seconds, record, ready, go,
                                         out, progress)))
    for t in ts:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        results.put({"proc": proc, "threads": out})
        barrier.abort()
        return
    barrier.wait()
    go.set()
    for t in ts:
        t.join()
    cpu = os.times()
    results.put({"proc": proc, "threads": out, "cpu_s": cpu.user + cpu.system})


def run_load(location: str, op, procs: int, threads: int, items: list | range | None = None,
             seconds: float | None = None, warmup: int = 0, record: bool = False,
             label: str = "load", progress_every: float = 15.0) -> LoadResult:
    """Run op over `items` (or, with items None, over items 0, 1, 2, ... for `seconds`) from
    procs x threads clients; per-operation latencies if `record`. Each thread first runs
    `warmup` operations on items numbered from WARMUP_BASE up (a put: keys no timed
    operation uses; a get op must map them to stored keys, e.g. GetKey over a modulo)."""
    if (items is None) == (seconds is None):
        raise ValueError("give either items or seconds")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs + 1)
    results = ctx.Queue()
    progress = ctx.Value("q", 0)
    item_list = None if items is None else (items if isinstance(items, (range, list)) else list(items))
    ps = [ctx.Process(target=_process_main, daemon=True,
                      args=(location, op, p, procs, threads, item_list, warmup, seconds, record,
                            barrier, results, progress))
          for p in range(procs)]
    for p in ps:
        p.start()
    try:
        barrier.wait(timeout=600)
    except threading.BrokenBarrierError:
        errors = []
        while True:
            try:
                errors += [t["error"] for t in results.get(timeout=1)["threads"] if "error" in t]
            except queue.Empty:
                break
        for p in ps:
            p.kill()
        raise RuntimeError(f"{label}: the client processes did not get ready"
                           + (f": {errors[0]}" if errors else " in 10 minutes"))
    released = time.monotonic()
    got, last_log, last_done = [], released, 0
    while len(got) < procs:
        try:
            got.append(results.get(timeout=1.0))
        except queue.Empty:
            dead = [p for p in ps if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"{label}: a client process exited with code "
                                   f"{dead[0].exitcode}")
        now = time.monotonic()
        if now - last_log >= progress_every:
            done = progress.value
            total = f" of {len(item_list):,}" if item_list is not None else ""
            log(f"{label}: {done:,}{total} done, {(done - last_done) / (now - last_log):,.0f}/s "
                f"over the last {now - last_log:.0f} s")
            last_log, last_done = now, done
    for p in ps:
        p.join(timeout=30)
    threads_out = [t for g in sorted(got, key=lambda g: g["proc"]) for t in g["threads"]]
    errors = [t["error"] for t in threads_out if "error" in t]
    if errors:
        raise RuntimeError(f"{label}: {len(errors)} client threads failed, e.g. {errors[0]}")
    t0 = min(t["t0"] for t in threads_out)
    t1 = max(t["t1"] for t in threads_out)
    return LoadResult(done=sum(t["done"] for t in threads_out), seconds=t1 - t0,
                      latencies_ms=[x for t in threads_out for x in t["lat"]],
                      per_process=[sum(t["done"] for t in g["threads"]) for g in got],
                      client_cpu_s=sum(g.get("cpu_s", 0.0) for g in got))
