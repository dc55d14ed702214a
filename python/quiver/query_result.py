"""QueryResult: the streamed answer to a query, read once, batch by batch or whole.

Not thread-safe: one consumer reads it. ``cancel()`` may be called from any thread.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional

import pyarrow as pa

from quiver._base import Control
from quiver._errors import translated
from quiver.results import QueryMeta


class QueryResult:
    """A query's result stream with its response metadata.

    ``meta`` is the first batch's metadata (cache hit/miss/bypass, key, times); it is updated
    if a later batch says the result will not be cached. A result without any batch carries
    no metadata (the server has no message to put it on): its ``meta.cache`` is "".
    The data can be read once: as a RecordBatchReader (``reader()``, streaming), or whole
    (``read_all()``, ``to_pandas()``; after those, both return the same table again).

    ``cache`` says what the client-side cache did (a client_cache.CacheMeta: source "server",
    "revalidated", "cache" or "offline-stale"); None without a client-side cache.
    """

    cache: Optional[Any] = None

    def __init__(self, reader: Any, control: Optional[Control] = None) -> None:
        self._reader = reader
        self._control = control
        self._table: Any = None
        self._consumed = False
        self._meta = QueryMeta(cache="", key="")
        with translated():
            self.schema: Any = reader.schema
            try:
                first = reader.read_chunk()
            except StopIteration:
                first = None
        self._first: Any = first.data if first is not None else None
        if first is not None:
            self._note(first.app_metadata)

    @property
    def meta(self) -> QueryMeta:
        return self._meta

    def _note(self, app_metadata: Any) -> None:
        if app_metadata is None:
            return
        value = json.loads(app_metadata.to_pybytes())
        if isinstance(value, dict):
            self._meta = QueryMeta.from_json({**self._meta.raw, **value})

    def _batches(self) -> Iterator[Any]:
        if self._consumed:
            raise RuntimeError("this QueryResult was already read; call query() again")
        self._consumed = True
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while True:
            with translated():
                try:
                    chunk = self._reader.read_chunk()
                except StopIteration:
                    return
            self._note(chunk.app_metadata)
            if chunk.data is not None:
                yield chunk.data

    def reader(self) -> Any:
        """A pyarrow RecordBatchReader over the result, streaming from the server."""
        if self._table is not None:
            return self._table.to_reader()
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def read_all(self) -> Any:
        """The whole result as a pyarrow Table."""
        if self._table is None:
            self._table = pa.Table.from_batches(list(self._batches()), schema=self.schema)
        return self._table

    def to_pandas(self, **kwargs: Any) -> Any:
        """The whole result as a pandas DataFrame (Table.to_pandas's keyword arguments)."""
        return self.read_all().to_pandas(**kwargs)

    def cancel(self) -> None:
        """Stop the stream (the server stops sending; see docs/queries.md for what happens
        to the execution). Reading afterwards raises Cancelled."""
        if self._control is not None:
            self._control.cancel()
        else:
            self._reader.cancel()

    def __enter__(self) -> QueryResult:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._consumed:
            self._reader.cancel()
