"""How bench/query_bench.py reads a query result: through Quiver or directly.

The queries the harness times and the batch size both sides use; Reference (the direct
result to check Quiver's against); quiver_read (a DoGet of a JSON ticket, consuming the
whole stream) and direct_read (the same SQL on the ADBC SQLite driver in this process);
with_cpu (the server's and this process's CPU time around a read); concurrent_reads (many
clients, each on its own thread and connection to one of several servers, sending the same
request at once; bench/shared_cluster.py's stampede uses it too), stampede and lone_miss
(N concurrent identical misses on one server, and one alone through the same code);
wait_published and wait_settled (until a query's execution has ended in the cache).
"""
from __future__ import annotations

import json
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight

from bench_env import machine_busy_seconds, median, process_cpu_seconds
from bench_servers import QuiverProcess

BATCH_ROWS_OPTION = "adbc.sqlite.query.batch_rows"
BATCH_ROWS = "65536"  # what the server sets for SQLite sources

# Each measured miss binds a new negative number: same rows (all of them), new cache key.
SCAN_SQL = "SELECT * FROM events WHERE id > ?"
AGG_SQL = ("SELECT country, count(*) AS n, sum(amount) AS total, avg(duration_ms) AS avg_ms "
           "FROM events WHERE id > ? GROUP BY country ORDER BY country")
SCAN_ALL_SQL = "SELECT * FROM events"

CALL = flight.FlightCallOptions(timeout=900)


# ---------------------------------------------------------------------------------------
# Reading a result: through Quiver, or directly through the ADBC driver


class Reference:
    """The direct result of a query, to check what Quiver returns against."""

    def __init__(self, table: pa.Table):
        self.table = table
        self.batches = table.to_batches()

    def check_batch(self, i: int, offset: int, batch: pa.RecordBatch) -> bool:
        if i < len(self.batches) and self.batches[i].num_rows == batch.num_rows:
            return self.batches[i].equals(batch)
        return self.table.slice(offset, batch.num_rows).equals(pa.Table.from_batches([batch]))


def quiver_read(client, request: dict, keep: bool = True, reference: Reference | None = None,
                t_start: float | None = None, on_first_batch=None) -> dict:
    """DoGet of a JSON ticket, consuming the whole stream. With `reference`, each batch is
    compared with the direct result as it arrives (inside the timing). on_first_batch() is
    called when the first record batch has arrived."""
    ticket = flight.Ticket(json.dumps(request).encode())
    t0 = time.perf_counter() if t_start is None else t_start
    reader = client.do_get(ticket, CALL)
    metas, batches = [], []
    t_first = t_last = None
    rows = nbatches = 0
    same = True
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        now = time.perf_counter()
        if chunk.app_metadata is not None and chunk.app_metadata.size:
            metas.append(json.loads(chunk.app_metadata.to_pybytes()))
        if chunk.data is not None:
            if t_first is None:
                t_first = now
                if on_first_batch is not None:
                    on_first_batch()
            t_last = now
            if reference is not None and same:
                same = reference.check_batch(nbatches, rows, chunk.data)
            rows += chunk.data.num_rows
            nbatches += 1
            if keep:
                batches.append(chunk.data)
    t_end = time.perf_counter()
    out = {"start": t0, "end": t_end, "seconds": t_end - t0,
           "first_batch_s": (t_first - t0) if t_first else None,
           "after_last_batch_s": (t_end - t_last) if t_last else None,
           "rows": rows, "batches": nbatches, "meta": metas[0] if metas else {},
           "later_meta": metas[1:]}
    if reference is not None:
        out["equal_to_direct"] = same and rows == reference.table.num_rows
    if keep:
        out["table"] = pa.Table.from_batches(batches, schema=reader.schema)
    return out


def direct_read(con, sql: str, params) -> dict:
    """Run the query on the ADBC SQLite driver in this process, consuming every batch."""
    t0 = time.perf_counter()
    cur = con.cursor()
    cur.adbc_statement.set_options(**{BATCH_ROWS_OPTION: BATCH_ROWS})
    cur.execute(sql, params)
    reader = cur.fetch_record_batch()
    batches = []
    t_first = None
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        if t_first is None:
            t_first = time.perf_counter()
        batches.append(batch)
    t_end = time.perf_counter()
    table = pa.Table.from_batches(batches, schema=reader.schema)
    cur.close()
    return {"seconds": t_end - t0, "first_batch_s": (t_first - t0) if t_first else None,
            "rows": table.num_rows, "batches": len(batches), "table": table}


def server_exec_ms(client, request: dict):
    """How long the server's execution of a cached query took (`exec_ms`), from the
    metadata of GetFlightInfo, which does not stream the result."""
    info = client.get_flight_info(
        flight.FlightDescriptor.for_command(json.dumps(request).encode()), CALL)
    meta = json.loads(info.app_metadata) if info.app_metadata else {}
    return meta.get("exec_ms") if meta.get("cache") == "hit" else None


def with_cpu(server: QuiverProcess, fn, *args, **kwargs) -> dict:
    s0, c0 = server.cpu(), process_cpu_seconds()
    out = fn(*args, **kwargs)
    out["server_cpu_s"] = server.cpu() - s0
    out["client_cpu_s"] = process_cpu_seconds() - c0
    return out


def strip(d: dict) -> dict:
    """A result without its table, for the JSON file."""
    return {k: v for k, v in d.items() if k not in ("table",)}


# ---------------------------------------------------------------------------------------
# Stampede


def await_parties(barrier: threading.Barrier, parties: int) -> None:
    """Wait until `parties` threads wait at the barrier: the next wait() releases them all."""
    while barrier.n_waiting < parties:
        time.sleep(0.001)


def published(server: QuiverProcess, key: str) -> bool:
    """Whether the result of query `key` is in the cache's index (the entries action)."""
    body = json.dumps({"prefix": "@q/" + key}).encode()
    result = next(iter(server.client.do_action(flight.Action("entries", body), CALL)))
    return pa.ipc.open_stream(result.body.to_pybytes()).read_all().num_rows > 0


def wait_published(server: QuiverProcess, key: str, gave_up=None,
                   timeout: float = 120.0) -> None:
    """Wait until the result of query `key` is published (or gave_up() is true)."""
    deadline = time.monotonic() + timeout
    while not (published(server, key) or (gave_up is not None and gave_up())):
        if time.monotonic() > deadline:
            raise RuntimeError(f"query {key[:12]} was not published within {timeout:.0f} s")
        time.sleep(0.01)


def wait_settled(servers: list[QuiverProcess], key: str, before: list[dict]) -> None:
    """Wait until the execution of query `key` has ended in the cache: its result is
    published, or a server counted it as not cached or failed since `before` (each
    server's stats "queries"). Then the servers' counters for it are final."""
    def gave_up():
        return any(q["not_cached"] + q["failures"] > b["not_cached"] + b["failures"]
                   for q, b in zip((s.stats()["queries"] for s in servers), before))

    wait_published(servers[0], key, gave_up)


def concurrent_reads(plan: list[QuiverProcess], request: dict, keep: bool = True,
                     reference: Reference | None = None) -> dict:
    """One client per entry of `plan`, each on its own thread with its own Flight connection
    to that server (connected beforehand), sends `request` at the same moment (a barrier)
    and consumes the whole stream (quiver_read; `keep` and `reference` as there).

    Returns "results" (each client's quiver_read, in plan order), "key", "release" (when the
    barrier let them go, perf_counter), "wall_s" (until the last one ended), "servers" (the
    distinct servers of the plan, in order) and, per server, its stats "queries" "before"
    the requests and "after" the execution settled (wait_settled) and its "server_cpu_s";
    also "client_cpu_s" (this process) and "machine_busy_s". Raises if a client failed or
    the clients saw different keys."""
    servers = list(dict.fromkeys(plan))
    conns = [flight.connect(s.location) for s in plan]
    for c in conns:  # establish each connection before the barrier
        list(c.list_actions(CALL))
    barrier = threading.Barrier(len(plan) + 1)
    results: list = [None] * len(plan)

    def worker(i):
        barrier.wait()
        try:
            results[i] = quiver_read(conns[i], request, keep=keep, reference=reference)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = {"error": repr(e)}

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(len(plan))]
    for t in threads:
        t.start()
    before = [s.stats()["queries"] for s in servers]
    cpu0, c0, b0 = [s.cpu() for s in servers], process_cpu_seconds(), machine_busy_seconds()
    await_parties(barrier, len(plan))
    release = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - release
    server_cpu = [s.cpu() - x for s, x in zip(servers, cpu0)]
    client_cpu, machine_busy = process_cpu_seconds() - c0, machine_busy_seconds() - b0
    for c in conns:
        c.close()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(plan)} clients failed, e.g. {errors[0]}")
    keys = {r["meta"].get("key") for r in results}
    if len(keys) != 1:
        raise RuntimeError(f"the clients saw {len(keys)} different keys: {keys}")
    key = keys.pop()
    wait_settled(servers, key, before)
    return {"results": results, "key": key, "release": release, "wall_s": wall,
            "servers": servers, "before": before,
            "after": [s.stats()["queries"] for s in servers], "server_cpu_s": server_cpu,
            "client_cpu_s": client_cpu, "machine_busy_s": machine_busy}


def stampede(server: QuiverProcess, request: dict, clients: int, reference: Reference,
             keep: bool) -> dict:
    """`clients` threads, each with its own Flight client (connected beforehand), send
    the same request at once; every client consumes the whole stream."""
    run = concurrent_reads([server] * clients, request, keep, None if keep else reference)
    results, release, key = run["results"], run["release"], run["key"]
    stats0, stats1 = run["before"][0], run["after"][0]
    exec_ms = server_exec_ms(server.client, request)
    if keep:
        identical = all(r["table"].equals(results[0]["table"]) for r in results)
        equal_direct = results[0]["table"].equals(reference.table)
    else:
        identical = equal_direct = all(r["equal_to_direct"] for r in results)
    ends = [r["end"] - release for r in results]
    starts = [r["start"] - release for r in results]
    firsts = [r["start"] - release + r["first_batch_s"] for r in results]
    kinds = {}
    for r in results:
        k = r["meta"].get("cache", "?") + ("/joined" if r["meta"].get("joined") else "")
        kinds[k] = kinds.get(k, 0) + 1
    return {
        "clients": clients, "key": key,
        "executions_of_key": stats1["executions_by_key"].get(key, 0)
                             - stats0["executions_by_key"].get(key, 0),
        "executions_delta": stats1["executions"] - stats0["executions"],
        "joins_delta": stats1.get("joins", 0) - stats0.get("joins", 0),
        "responses": kinds,
        "identical": identical, "equal_to_direct": equal_direct,
        "rows": results[0]["rows"],
        "slowest_s": max(ends), "median_client_s": median(ends), "fastest_s": min(ends),
        "exec_ms": exec_ms,
        "start_spread_s": max(starts) - min(starts),
        "first_batch_min_s": min(firsts), "first_batch_max_s": max(firsts),
        "wall_s": run["wall_s"],
        "server_cpu_s": run["server_cpu_s"][0], "client_cpu_s": run["client_cpu_s"],
        "machine_busy_s": run["machine_busy_s"],
    }


def lone_miss(server: QuiverProcess, request: dict, reference: Reference, keep: bool) -> dict:
    """A lone miss read by the same code path as a stampede client (own thread and
    connection), for the stampede comparison."""
    out = stampede(server, request, 1, reference, keep)
    if out["responses"] != {"miss": 1}:
        raise RuntimeError(f"lone miss was not a miss: {out['responses']}")
    return out
