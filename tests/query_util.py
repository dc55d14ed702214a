"""Helpers for Quiver's query API in tests: JSON requests over DoGet and GetFlightInfo."""

import json
import time

import pyarrow as pa
import pyarrow.flight as flight


def ticket(**request):
    return flight.Ticket(json.dumps(request).encode())


def run_query(client, **request):
    """DoGet a query. Returns (table, metadata dicts in arrival order)."""
    reader = client.do_get(ticket(**request))
    batches, metas = [], []
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        if chunk.app_metadata is not None:
            metas.append(json.loads(chunk.app_metadata.to_pybytes()))
        if chunk.data is not None:
            batches.append(chunk.data)
    return pa.Table.from_batches(batches, schema=reader.schema), metas


def stats(client):
    return json.loads(next(iter(client.do_action(flight.Action("stats", b"")))).body.to_pybytes())


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_cached(client, key, timeout=10.0):
    """A fill commits after its last batch is sent; wait until the key's execution is done."""
    return wait_for(lambda: stats(client)["entries"] >= 1 and
                    key in stats(client)["queries"]["executions_by_key"],
                    timeout, f"query {key} to be cached")
