"""Helpers for Quiver's query API in tests: JSON requests over DoGet and GetFlightInfo."""

import json
import time

import pyarrow as pa
import pyarrow.flight as flight

from quiver_util import chunks, stats  # noqa: F401  (stats: for the query tests' imports)


def ticket(**request):
    return flight.Ticket(json.dumps(request).encode())


def run_query(client, on_first_batch=None, **request):
    """DoGet a query. Returns (table, metadata dicts in arrival order). `on_first_batch`,
    if given, is called with the metadata so far when the first record batch arrives."""
    reader = client.do_get(ticket(**request))
    batches, metas = [], []
    for chunk in chunks(reader):
        if chunk.app_metadata is not None:
            metas.append(json.loads(chunk.app_metadata.to_pybytes()))
        if chunk.data is not None:
            if not batches and on_first_batch is not None:
                on_first_batch(metas)
            batches.append(chunk.data)
    return pa.Table.from_batches(batches, schema=reader.schema), metas


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


def assert_failure_reaches_every_reader(server, source, sql, message, readers):
    """`readers` concurrent requests for a query that fails mid-stream all get its error;
    nothing is cached and no temp file remains; the next request executes (and fails) again."""
    import threading

    import pytest

    errors = []

    def read():
        try:
            run_query(server.client(), source=source, sql=sql)
        except pa.ArrowException as e:
            errors.append(str(e))

    threads = [threading.Thread(target=read) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == readers and all(message in e for e in errors), errors
    c = server.client()
    assert stats(c)["entries"] == 0 and not server.tmp_files()
    before = stats(c)["queries"]["executions"]
    with pytest.raises(pa.ArrowException, match=message):
        run_query(c, source=source, sql=sql)
    assert stats(c)["queries"]["executions"] == before + 1, "the failed result was cached"
