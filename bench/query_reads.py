"""How bench/query_bench.py reads a query result: through Quiver or directly.

The queries the harness times and the batch size both sides use; Reference (the direct
result to check Quiver's against); quiver_read (a DoGet of a JSON ticket, consuming the
whole stream) and direct_read (the same SQL on the ADBC SQLite driver in this process);
with_cpu (the server's and this process's CPU time around a read); stampede and lone_miss
(N concurrent identical misses from their own threads and connections, and one alone
through the same code).
"""
from __future__ import annotations

import json
import os
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight

from bench_env import machine_busy_seconds, median
from bench_servers import Server

BATCH_ROWS_OPTION = "adbc.sqlite.query.batch_rows"
BATCH_ROWS = "65536"  # what the server sets for SQLite sources

# Each measured miss binds a new negative number: same rows (all of them), new cache key.
SCAN_SQL = "SELECT * FROM events WHERE id > ?"
AGG_SQL = ("SELECT country, count(*) AS n, sum(amount) AS total, avg(duration_ms) AS avg_ms "
           "FROM events WHERE id > ? GROUP BY country ORDER BY country")
SCAN_ALL_SQL = "SELECT * FROM events"

CALL = flight.FlightCallOptions(timeout=900)


def own_cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads; not its children)."""
    t = os.times()
    return t.user + t.system


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
                t_start: float | None = None) -> dict:
    """DoGet of a JSON ticket, consuming the whole stream. With `reference`, each batch is
    compared with the direct result as it arrives (inside the timing)."""
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


def with_cpu(server: Server, fn, *args, **kwargs) -> dict:
    s0, c0 = server.cpu(), own_cpu_seconds()
    out = fn(*args, **kwargs)
    out["server_cpu_s"] = server.cpu() - s0
    out["client_cpu_s"] = own_cpu_seconds() - c0
    return out


def strip(d: dict) -> dict:
    """A result without its table, for the JSON file."""
    return {k: v for k, v in d.items() if k not in ("table",)}


# ---------------------------------------------------------------------------------------
# Stampede


def stampede(server: Server, request: dict, clients: int, reference: Reference,
             keep: bool) -> dict:
    """`clients` threads, each with its own Flight client (connected beforehand), send
    the same request at once; every client consumes the whole stream."""
    conns = [flight.connect(server.location) for _ in range(clients)]
    for c in conns:  # establish each connection before the barrier
        list(c.list_actions(CALL))
    barrier = threading.Barrier(clients + 1)
    results: list = [None] * clients
    release = [0.0]

    def worker(i):
        barrier.wait()
        try:
            results[i] = quiver_read(conns[i], request, keep=keep,
                                     reference=None if keep else reference)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = {"error": repr(e)}

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    stats0 = server.stats()["queries"]
    s0, c0, b0 = server.cpu(), own_cpu_seconds(), machine_busy_seconds()
    time.sleep(0.2)  # let every thread reach the barrier
    release[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    t_all = time.perf_counter()
    server_cpu, client_cpu = server.cpu() - s0, own_cpu_seconds() - c0
    machine_busy = machine_busy_seconds() - b0
    time.sleep(0.3)  # the execution has committed: stats are final
    stats1 = server.stats()["queries"]
    exec_ms = server_exec_ms(server.client, request)
    for c in conns:
        c.close()

    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"{len(errors)} stampede clients failed, e.g. {errors[0]}")
    keys = {r["meta"].get("key") for r in results}
    if len(keys) != 1:
        raise RuntimeError(f"stampede clients saw {len(keys)} different keys")
    key = keys.pop()
    if keep:
        identical = all(r["table"].equals(results[0]["table"]) for r in results)
        equal_direct = results[0]["table"].equals(reference.table)
    else:
        identical = equal_direct = all(r["equal_to_direct"] for r in results)
    ends = [r["end"] - release[0] for r in results]
    starts = [r["start"] - release[0] for r in results]
    firsts = [r["start"] - release[0] + r["first_batch_s"] for r in results]
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
        "wall_s": t_all - release[0],
        "server_cpu_s": server_cpu, "client_cpu_s": client_cpu,
        "machine_busy_s": machine_busy,
    }


def lone_miss(server: Server, request: dict, reference: Reference, keep: bool) -> dict:
    """A lone miss read by the same code path as a stampede client (own thread and
    connection), for the stampede comparison."""
    out = stampede(server, request, 1, reference, keep)
    if out["responses"] != {"miss": 1}:
        raise RuntimeError(f"lone miss was not a miss: {out['responses']}")
    return out
