"""The processes and clients of bench/shared_bench.py: Quiver nodes, Redis, PostgreSQL.

Everything started here is registered in STARTED and stopped by stop_all (called from the
harness's finally and from atexit), newest first, so an error or Ctrl-C leaves no quiver
node, redis-server or postgres behind. The Redis and PostgreSQL helpers are the test
suite's (tests/cluster_util.RedisServer, tests/pg_util.PostgresCluster); a quiver process
is a bench_servers.QuiverProcess. Also here: the slow PostgreSQL query that counts its own
executions (tests/pg_util's), a reader thread that records when its first batch came, and
the stampede of many clients over several nodes (query_reads.concurrent_reads).
"""
from __future__ import annotations

import atexit
import json
import os
import threading
import time
from pathlib import Path

import pyarrow.flight as flight
import redis as redis_py

from bench_env import log, median, proc_cpu_seconds
from bench_servers import QuiverProcess, Server
from query_reads import CALL, await_parties, concurrent_reads, quiver_read, wait_settled

# The test suite's helpers (bench_env put tests/ on sys.path).
import pg_util
from cluster_util import RedisServer

STARTED: list = []  # everything to stop at the end, in start order


def stop_all() -> None:
    """Stop every process this run started (newest first); safe to call twice."""
    while STARTED:
        thing = STARTED.pop()
        try:
            thing.stop()
        except BaseException as e:  # noqa: BLE001 - go on stopping the others
            log(f"could not stop {type(thing).__name__}: {e!r}")


atexit.register(stop_all)


# ---------------------------------------------------------------------------------------
# Redis and PostgreSQL


def start_redis(work: Path) -> RedisServer:
    r = RedisServer("redis-server", work / "redis")
    STARTED.append(r)
    return r.start()


class Postgres:
    """A private PostgreSQL cluster (tests/pg_util) with a table in which the slow query
    records each execution, so that the database itself counts them."""

    def __init__(self):
        self.pg = pg_util.PostgresCluster()
        STARTED.append(self)
        self.pg.start()
        self.uri = self.pg.uri
        pg_util.install_execution_log(self.pg)
        self.version = self.pg.execute("SELECT current_setting('server_version')")[0][0]

    def executions(self, tag: str) -> int:
        return pg_util.executions(self.pg, tag)

    def cpu(self) -> float:
        """CPU seconds of the postmaster and its live children (the backends), from /proc;
        a backend that has exited takes its CPU time with it."""
        if self.pg.proc is None:
            return 0.0
        parents = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        parents[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    pass
        # runuser (our child) -> postmaster -> backends
        postmasters = {p for p, pp in parents.items() if pp == self.pg.proc.pid}
        total = 0.0
        for pid, ppid in parents.items():
            if pid in postmasters or ppid in postmasters:
                try:
                    total += proc_cpu_seconds(pid)
                except OSError:
                    pass
        return total

    def stop(self):
        self.pg.stop()


def slow_sql(tag: str, seconds: float, rows: int, pauses: int) -> str:
    """pg_util.slow_sql of about `seconds`: a first pause, then `pauses` pauses spread over
    `rows` generated rows, all alike. The database counts its executions under `tag` (a new
    tag is a new cache key)."""
    pause = seconds / (pauses + 1)
    return pg_util.slow_sql(tag, rows, pauses, pause_s=pause, first_s=pause)


HIT_SQL = "SELECT g.i, md5(g.i::text) AS h FROM generate_series(1, 100) AS g(i)"


def write_config(path: Path, pg_uri: str, **extra) -> Path:
    path.write_text(json.dumps(pg_util.source_config(pg_uri, max_queue=512, **extra), indent=2))
    return path


def fresh_tag(counter=[0]) -> str:  # noqa: B006 - a counter on purpose
    """A new tag: a new cache key for the same work."""
    counter[0] += 1
    return f"q{counter[0]}"


def request(sql: str) -> dict:
    return {"source": "pg", "sql": sql, "ttl_s": 3600}


def ticket(sql: str) -> flight.Ticket:
    return flight.Ticket(json.dumps(request(sql)).encode())


# ---------------------------------------------------------------------------------------
# Quiver: an embedded server and clusters of nodes


class Node(QuiverProcess):
    """One `quiver serve` process; in shared mode with --index and --node-id."""

    def __init__(self, binary: Path, name: str, data_dir: Path, config: Path, log_path: Path,
                 shared_args=()):
        self.node_id = name
        STARTED.append(self)
        super().__init__(name, binary, data_dir, log_path, ["--config", str(config), *shared_args],
                         cwd=log_path.parent)


class Cluster:
    """n nodes sharing one data dir and one Redis index under a prefix of their own."""

    def __init__(self, binary: Path, work: Path, name: str, n: int, redis: RedisServer,
                 config: Path):
        self.name, self.redis = name, redis
        self.data_dir = work / name / "data"
        self.data_dir.mkdir(parents=True)
        self.nodes = [Node(binary, f"{name}-n{i}", self.data_dir, config,
                           work / name / f"n{i}.log",
                           ["--index", redis.url, "--index-prefix", name,
                            "--node-id", f"{name}-n{i}"]) for i in range(n)]
        for node in self.nodes:
            state = node.stats()["index"]
            if not state.get("shared"):
                raise RuntimeError(f"{node.node_id} is not in shared mode: {state}")

    def __getitem__(self, i):
        return self.nodes[i]

    def stop(self):
        for n in self.nodes:
            n.stop()


class Target:
    """What bench_servers.PairedRuns times and bench_env.Phase watches: a name, a
    client, the servers' processes (proc and log_path: the first that has exited, else
    the first) and the CPU of every process that serves it (for a shared node: all the
    cluster's nodes and redis-server; `extra_cpu` adds e.g. PostgreSQL's)."""

    def __init__(self, name: str, client, servers: list[Server], pids=(), extra_cpu=None):
        self.name, self.client, self.servers = name, client, servers
        self.pids = [s.proc.pid for s in servers] + list(pids)
        self.extra_cpu = extra_cpu

    def _first(self) -> Server:
        return next((s for s in self.servers if s.proc.poll() is not None), self.servers[0])

    proc = property(lambda self: self._first().proc)
    log_path = property(lambda self: self._first().log_path)

    def cpu(self) -> float:
        total = 0.0
        for p in self.pids:
            try:
                total += proc_cpu_seconds(p)
            except OSError:
                pass
        return total + (self.extra_cpu() if self.extra_cpu else 0.0)


def hammer(clients: list, fn, seconds: float) -> dict:
    """One thread per client calls fn(client) in a loop for `seconds` (released together
    by a barrier); returns the requests done and the wall time until the last one ended."""
    counts = [0] * len(clients)
    errors: list = []
    barrier = threading.Barrier(len(clients) + 1)
    deadline = [0.0]
    ends = [0.0] * len(clients)

    def worker(i):
        barrier.wait()
        try:
            while time.perf_counter() < deadline[0]:
                fn(clients[i])
                counts[i] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        ends[i] = time.perf_counter()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(len(clients))]
    for t in threads:
        t.start()
    await_parties(barrier, len(clients))
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    barrier.wait()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} client threads failed, e.g. {errors[0]}")
    elapsed = max(ends) - t0
    return {"requests": sum(counts), "seconds": elapsed, "rps": sum(counts) / elapsed,
            "per_thread": counts}


def redis_calls(redis: RedisServer) -> dict:
    """Calls per command since redis-server started (INFO commandstats; a command a Lua
    script runs counts under its own name, the script's call under EVALSHA), without
    the INFO and HELLO of this harness's connection."""
    with redis_py.Redis(host="127.0.0.1", port=redis.port, protocol=2) as r:
        stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_").upper(): v["calls"] for k, v in stats.items()
            if k not in ("cmdstat_info", "cmdstat_hello")}


def redis_trace(redis: RedisServer, fn, n: int) -> dict:
    """Watch the index with MONITOR while fn() runs n times in sequence: the commands sent
    per request, by name, split into those a node sent (round trips; `during` the request
    or `after` it had returned, by the clocks of this machine) and those run inside Lua
    scripts. MONITOR slows Redis down: nothing is timed meanwhile."""
    end = "quiver-bench-trace-end"
    seen: list = []
    watcher = redis_py.Redis(host="127.0.0.1", port=redis.port).monitor()
    mon = watcher.__enter__()

    def read():
        while True:
            x = mon.next_command()
            seen.append(x)
            if x["command"] == f"ECHO {end}":
                return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    ctl = redis_py.Redis(host="127.0.0.1", port=redis.port)
    ctl.echo("quiver-bench-trace-begin")
    windows = []
    for _ in range(n):
        t0 = time.time()
        fn()
        windows.append((t0, time.time()))
    time.sleep(0.3)  # commands a node defers until after the request
    ctl.echo(end)
    thread.join(30)
    watcher.__exit__(None, None, None)
    ctl.close()
    out = {"requests": n, "during": {}, "after": {}, "in_scripts": {}}
    started = False
    for x in seen:
        name = x["command"].split(" ", 1)[0].upper()
        if name == "ECHO":
            started = started or x["command"].endswith("-begin")
            continue
        if not started or name == "HELLO":
            continue
        if x["client_type"] == "lua":
            where = "in_scripts"
        else:
            inside = any(a <= x["time"] <= b for a, b in windows)
            where = "during" if inside else "after"
        out[where][name] = out[where].get(name, 0) + 1 / n
    return out


# ---------------------------------------------------------------------------------------
# Clients


class StreamReader(threading.Thread):
    """Reads one query through one node on its own connection (connected beforehand):
    `out` is quiver_read's result (start, first_batch_s, end: perf_counter; meta, table,
    batches), or `error` what went wrong; `first` is set once a batch arrived (or the read
    failed)."""

    def __init__(self, location: str, sql: str):
        super().__init__(daemon=True)
        self.client = flight.connect(location)
        list(self.client.list_actions(CALL))  # connected before the clock starts
        self.sql = sql
        self.first = threading.Event()
        self.out = self.error = None

    def run(self):
        try:
            self.out = quiver_read(self.client, request(self.sql), on_first_batch=self.first.set)
        except Exception as e:  # noqa: BLE001 - reported by the harness
            self.error = e
        finally:
            self.first.set()
            self.client.close()


def stampede(nodes: list[Node], sql: str, per_node: int, pg: Postgres, tag: str) -> dict:
    """per_node clients on each node (own thread and connection, connected beforehand)
    send the same new query at once (barrier); every client reads the whole stream.
    Executions are counted by every node's stats and by the database."""
    plan = [n for n in nodes for _ in range(per_node)]
    run = concurrent_reads(plan, request(sql))
    results, release, key = run["results"], run["release"], run["key"]
    before, after = run["before"], run["after"]

    def delta(field):
        return [a.get(field, 0) - b.get(field, 0) for a, b in zip(after, before)]

    kinds: dict = {}
    for r in results:
        m = r["meta"]
        k = f"{m.get('cache', '?')}{'/joined' if m.get('joined') else ''} from {m.get('node')}"
        kinds[k] = kinds.get(k, 0) + 1
    ends = [r["end"] - release for r in results]
    firsts = [r["start"] - release + r["first_batch_s"] for r in results]
    reference = results[0]["table"]
    return {
        "clients": len(plan), "per_node": per_node, "nodes": [n.node_id for n in nodes],
        "tag": tag, "key": key, "rows": reference.num_rows,
        "executions_by_key": [a["executions_by_key"].get(key, 0)
                              - b["executions_by_key"].get(key, 0)
                              for a, b in zip(after, before)],
        "executions": delta("executions"), "remote_joins": delta("remote_joins"),
        "waits": delta("waits"), "joins": delta("joins"), "takeovers": delta("takeovers"),
        "db_executions": pg.executions(tag),
        "identical": all(r["table"].equals(reference) for r in results),
        "responses": kinds,
        "slowest_s": max(ends), "median_client_s": median(ends), "fastest_s": min(ends),
        "first_batch_min_s": min(firsts), "first_batch_max_s": max(firsts),
        "slowest_by_node": {n.node_id: max(e for e, p in zip(ends, plan) if p is n)
                            for n in nodes},
        "node_cpu_s": run["server_cpu_s"], "client_cpu_s": run["client_cpu_s"],
    }


def cross_node(a: Node, b: Node, sql: str, pg: Postgres, tag: str,
               config_label: str) -> dict:
    """Node a's client starts a slow streaming query; as soon as its first batch came, a
    client of node b asks for the same query. Times are relative to a's request."""
    qa0, qb0 = a.stats()["queries"], b.stats()["queries"]
    ra = StreamReader(a.location, sql)
    rb = StreamReader(b.location, sql)
    ra.start()
    if not ra.first.wait(120) or ra.error is not None:
        raise RuntimeError(f"{a.node_id}'s client got no first batch: {ra.error!r}")
    rb.start()
    ra.join(300)
    rb.join(300)
    for r, n in ((ra, a), (rb, b)):
        if r.error is not None or r.is_alive():
            raise RuntimeError(f"{n.node_id}'s client failed: {r.error!r}")
    x, y = ra.out, rb.out
    equal = y["table"].equals(x["table"])
    if not equal:
        raise RuntimeError(f"{b.node_id}'s client got another result than {a.node_id}'s "
                           f"({y['rows']} and {x['rows']} rows)")
    wait_settled([a, b], x["meta"]["key"], [qa0, qb0])
    qa1, qb1 = a.stats()["queries"], b.stats()["queries"]
    t0 = x["start"]
    a_first, b_first = t0 + x["first_batch_s"], y["start"] + y["first_batch_s"]
    return {
        "config": config_label, "tag": tag, "a": a.node_id, "b": b.node_id,
        "rows": x["rows"], "batches_a": x["batches"], "batches_b": y["batches"],
        "equal": equal,
        "a_first_s": a_first - t0, "a_end_s": x["end"] - t0,
        "b_asked_s": y["start"] - t0, "b_first_s": b_first - t0, "b_end_s": y["end"] - t0,
        # the figures the section reports
        "b_first_minus_a_end_s": b_first - x["end"],
        "b_wait_for_first_s": b_first - y["start"],
        "b_end_minus_a_end_s": y["end"] - x["end"],
        "meta_a": x["meta"], "meta_b": y["meta"],
        "b_remote_joins": qb1["remote_joins"] - qb0["remote_joins"],
        "b_waits": qb1["waits"] - qb0["waits"],
        "executions": (qa1["executions"] - qa0["executions"])
                      + (qb1["executions"] - qb0["executions"]),
        "db_executions": pg.executions(tag),
    }
