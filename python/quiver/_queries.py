"""Query and artifact calls (docs/queries.md): JSON requests as DoGet tickets."""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional, Sequence

import pyarrow as pa
import pyarrow.flight as flight

from quiver._base import ClientBase, Control
from quiver._errors import translated
from quiver.query_result import QueryResult


class QueriesMixin(ClientBase):
    def query(self, sql: str, *, source: str, params: Sequence[Any] = (),
              ttl: Optional[float] = None, preview: bool = False,
              depends_on: Iterable[str] = (), tags: Iterable[str] = (),
              cache_nondeterministic: bool = False,
              timeout: Optional[float] = None) -> QueryResult:
        """Ask for `sql`'s result on `source`: from the cache, or executed once and cached.

        `params` are bound positionally (never pasted into the SQL); `ttl` in seconds;
        `preview` runs it for this caller only, uncached. The timeout bounds the whole call,
        reading the stream included. Returns once the first batch (and its metadata) came.
        """
        request = self._query_request(sql, source, params, ttl, preview, depends_on, tags,
                                      cache_nondeterministic)
        if getattr(self, "_cache", None) is not None and not preview:
            from quiver._cached_reads import cached_query
            return cached_query(self, request, timeout)
        return self._query(request, timeout)

    @staticmethod
    def _query_request(sql: str, source: str, params: Sequence[Any], ttl: Optional[float],
                       preview: bool, depends_on: Iterable[str], tags: Iterable[str],
                       cache_nondeterministic: bool) -> dict[str, Any]:
        request: dict[str, Any] = {"source": source, "sql": sql}
        if params:
            request["params"] = list(params)
        if ttl is not None:
            request["ttl_s"] = ttl
        if preview:
            request["preview"] = True
        if depends_on:
            request["depends_on"] = list(depends_on)
        if tags:
            request["tags"] = list(tags)
        if cache_nondeterministic:
            request["cache_nondeterministic"] = True
        return request

    def _query_info(self, request: dict[str, Any], timeout: Optional[float]) -> dict[str, Any]:
        """The response metadata GetFlightInfo gives for `request` (docs/queries.md): on a
        hit, the stored result's (no data is sent); on a miss it starts the execution,
        which the DoGet of the same request then joins."""
        descriptor = flight.FlightDescriptor.for_command(json.dumps(request).encode())
        with translated():
            info = self._flight.get_flight_info(descriptor, options=self._options(timeout))
        meta = json.loads(info.app_metadata) if info.app_metadata else {}
        return meta if isinstance(meta, dict) else {}

    def _query(self, request: dict[str, Any], timeout: Optional[float],
               control: Optional[Control] = None) -> QueryResult:
        with translated():
            reader = self._flight.do_get(flight.Ticket(json.dumps(request).encode()),
                                         options=self._options(timeout))
        if control is not None:
            control.attach(reader)
        return QueryResult(reader, control)

    def get_artifact(self, url: str, *, timeout: Optional[float] = None) -> Any:
        """The artifact at `url` as a pyarrow Table (fetched and cached by the server)."""
        return self._get_artifact(url, timeout)

    def _get_artifact(self, url: str, timeout: Optional[float],
                      control: Optional[Control] = None) -> Any:
        ticket = flight.Ticket(json.dumps({"artifact": url}).encode())
        with translated(f"artifact {url!r}"):
            reader = self._flight.do_get(ticket, options=self._options(timeout))
            if control is not None:
                control.attach(reader)
            batches = [c.data for c in self._chunks(reader) if c.data is not None]
            return pa.Table.from_batches(batches, schema=reader.schema)
