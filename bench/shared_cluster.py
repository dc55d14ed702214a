"""The processes and clients of bench/shared_bench.py: Quiver nodes, Redis, PostgreSQL.

Everything started here is registered in STARTED and stopped by stop_all (called from the
harness's finally and from atexit), newest first, so an error or Ctrl-C leaves no quiver
node, redis-server or postgres behind. The Redis and PostgreSQL helpers are the test
suite's (tests/cluster_util.RedisServer, tests/pg_util.PostgresCluster); a quiver process
is bench_servers.Server. Also here: the slow PostgreSQL query that counts its own
executions, a reader thread that records when its first batch came, and the stampede of
many clients over several nodes.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight

import redis as redis_py

from bench_env import log, median, proc_cpu_seconds
from bench_servers import Server
from query_reads import CALL, own_cpu_seconds, quiver_read

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's Redis and PostgreSQL helpers
from cluster_util import RedisServer  # noqa: E402
from pg_util import PostgresCluster  # noqa: E402

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
        self.pg = PostgresCluster()
        STARTED.append(self)
        self.pg.start()
        self.uri = self.pg.uri
        self.pg.execute("CREATE TABLE bench_executions (n serial PRIMARY KEY, tag text)")
        self.pg.execute("""CREATE FUNCTION bench_count(tag text) RETURNS int LANGUAGE plpgsql
                           VOLATILE AS $$ BEGIN INSERT INTO bench_executions (tag)
                           VALUES (tag); RETURN 1; END $$""")
        self.version = self.pg.execute("SELECT current_setting('server_version')")[0][0]

    def executions(self, tag: str) -> int:
        return self.pg.execute(f"SELECT count(*) FROM bench_executions WHERE tag = '{tag}'")[0][0]

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
    """A query that takes about `seconds`: a first pause, then `pauses` pauses spread over
    `rows` generated rows, so that batches stream out between the pauses. Each execution
    inserts one row tagged `tag` into bench_executions (a new tag is a new cache key)."""
    pause = seconds / (pauses + 1)
    every = max(1, rows // pauses)
    return (f"SELECT g.i, md5(g.i::text) AS h, "
            f"CASE WHEN g.i % {every} = 0 THEN pg_sleep({pause:.3f})::text END AS pause, "
            f"c.one FROM (SELECT bench_count('{tag}') AS one, pg_sleep({pause:.3f})) c, "
            f"generate_series(1, {rows}) AS g(i)")


HIT_SQL = "SELECT g.i, md5(g.i::text) AS h FROM generate_series(1, 100) AS g(i)"


def write_config(path: Path, pg_uri: str, **extra) -> Path:
    path.write_text(json.dumps({
        "sources": {"pg": {"driver": "postgresql", "uri": pg_uri, "max_concurrent": 16,
                           "max_queue": 512, "statement_options": {
                               "adbc.postgresql.batch_size_hint_bytes": "65536"}}},
        **extra}, indent=2))
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


class Node(Server):
    """One `quiver serve` process; in shared mode with --index and --node-id."""

    def __init__(self, binary: Path, name: str, data_dir: Path, config: Path, log_path: Path,
                 shared_args=()):
        self.node_id = name
        argv = [str(binary), "serve", "--listen", "grpc://127.0.0.1:0", "--data-dir",
                str(data_dir), "--config", str(config), "--log-level", "info", *shared_args]
        STARTED.append(self)
        super().__init__(name, argv, log_path, "quiver listening on ", cwd=log_path.parent)

    def stats(self) -> dict:
        result = next(iter(self.client.do_action(flight.Action("stats", b""), CALL)))
        return json.loads(result.body.to_pybytes())


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

    def stats(self) -> list[dict]:
        return [n.stats() for n in self.nodes]

    def queries(self) -> list[dict]:
        return [s["queries"] for s in self.stats()]

    def stop(self):
        for n in self.nodes:
            n.stop()


class Target:
    """What bench_servers.PairedRuns times and query_bench.Phase watches: a name, a
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
    time.sleep(0.05)
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
    """Reads one query through one node on its own connection, recording (perf_counter)
    when it asked, when the first batch came and when the stream ended; `first` is set
    once a batch arrived (or the read failed)."""

    def __init__(self, location: str, sql: str):
        super().__init__(daemon=True)
        self.client = flight.connect(location)
        list(self.client.list_actions(CALL))  # connected before the clock starts
        self.sql = sql
        self.first = threading.Event()
        self.asked = self.first_at = self.end_at = None
        self.meta, self.table, self.error, self.batches = {}, None, None, 0

    def run(self):
        try:
            self.asked = time.perf_counter()
            reader = self.client.do_get(ticket(self.sql), CALL)
            batches = []
            while True:
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    break
                if chunk.app_metadata is not None and chunk.app_metadata.size and not self.meta:
                    self.meta = json.loads(chunk.app_metadata.to_pybytes())
                if chunk.data is not None:
                    if self.first_at is None:
                        self.first_at = time.perf_counter()
                        self.first.set()
                    batches.append(chunk.data)
            self.table = pa.Table.from_batches(batches, schema=reader.schema)
            self.batches = len(batches)
        except Exception as e:  # noqa: BLE001 - reported by the harness
            self.error = e
        finally:
            self.end_at = time.perf_counter()
            self.first.set()
            self.client.close()


def stampede(nodes: list[Node], sql: str, per_node: int, pg: Postgres, tag: str) -> dict:
    """per_node clients on each node (own thread and connection, connected beforehand)
    send the same new query at once (barrier); every client reads the whole stream.
    Executions are counted by every node's stats and by the database."""
    plan = [n for n in nodes for _ in range(per_node)]
    conns = [flight.connect(n.location) for n in plan]
    for c in conns:
        list(c.list_actions(CALL))
    barrier = threading.Barrier(len(plan) + 1)
    results: list = [None] * len(plan)
    req = request(sql)

    def worker(i):
        barrier.wait()
        try:
            results[i] = quiver_read(conns[i], req)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = {"error": repr(e)}

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(len(plan))]
    for t in threads:
        t.start()
    before = [n.stats()["queries"] for n in nodes]
    cpu0 = [n.cpu() for n in nodes]
    c0 = own_cpu_seconds()
    time.sleep(0.2)  # every thread reaches the barrier
    release = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    cpu = [n.cpu() - x for n, x in zip(nodes, cpu0)]
    client_cpu = own_cpu_seconds() - c0
    time.sleep(0.3)  # the fill has been published: counters are final
    after = [n.stats()["queries"] for n in nodes]
    for c in conns:
        c.close()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(plan)} clients failed, e.g. {errors[0]}")
    keys = {r["meta"].get("key") for r in results}
    if len(keys) != 1:
        raise RuntimeError(f"the clients saw {len(keys)} different keys: {keys}")
    key = keys.pop()

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
        "node_cpu_s": cpu, "client_cpu_s": client_cpu,
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
    time.sleep(0.3)
    qa1, qb1 = a.stats()["queries"], b.stats()["queries"]
    t0 = ra.asked
    return {
        "config": config_label, "tag": tag, "a": a.node_id, "b": b.node_id,
        "rows": ra.table.num_rows, "batches_a": ra.batches, "batches_b": rb.batches,
        "equal": rb.table.equals(ra.table),
        "a_first_s": ra.first_at - t0, "a_end_s": ra.end_at - t0,
        "b_asked_s": rb.asked - t0, "b_first_s": rb.first_at - t0, "b_end_s": rb.end_at - t0,
        # the figures the section reports
        "b_first_minus_a_end_s": rb.first_at - ra.end_at,
        "b_wait_for_first_s": rb.first_at - rb.asked,
        "b_end_minus_a_end_s": rb.end_at - ra.end_at,
        "meta_a": ra.meta, "meta_b": rb.meta,
        "b_remote_joins": qb1["remote_joins"] - qb0["remote_joins"],
        "b_waits": qb1["waits"] - qb0["waits"],
        "executions": (qa1["executions"] - qa0["executions"])
                      + (qb1["executions"] - qb0["executions"]),
        "db_executions": pg.executions(tag),
    }
