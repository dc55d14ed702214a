"""Reads through a ClientCache: what Client.get, get_with_meta and query do with a cache.

- object get: a cached copy is revalidated with one conditional get (``if_none_match`` = the
  cached version): "not modified" serves the copy (no data is transferred; source
  "revalidated"), new data replaces it (source "server"), NotFound drops it. A get of
  version N may use the copy of the latest version when that copy is version N.
- query: a cached result is checked with one GetFlightInfo of the same request, which on a
  hit returns the stored result's metadata without its data: the same ``key`` and
  ``created_ms`` serve the copy (source "revalidated"); anything else (a newer result, a
  miss, whose execution GetFlightInfo starts) is read with a DoGet of the request (source
  "server"). With ``ClientCache(query_fresh_s=N)`` a copy validated less than N seconds ago,
  before its expiry and after the last invalidation sent through the cache, is served with
  no round trip (source "cache").
- offline (``offline=True``): nothing is sent; cached copies are served with source
  "offline-stale" and ``stale=True``; nothing cached raises NotFound.
- ``allow_stale=True``: when the server is unreachable (Unavailable) or does not answer in
  time (Timeout), a cached copy is served as in offline mode; without it, or with nothing
  cached, the error is raised.

Every server call gets what is left of the caller's timeout, and the caller's Control (the
async client's cancellation) reaches the streams. Thread safety: as ClientCache.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import pyarrow as pa

from quiver._base import Control
from quiver.client_cache import (CacheMeta, CachedEntry, ClientCache, Source, _now_ms,
                                 object_entry_id, query_entry_id)
from quiver.errors import NotFound, Timeout, Unavailable
from quiver.query_result import QueryResult
from quiver.results import ObjectRef

Unreachable = (Unavailable, Timeout)  # what allow_stale covers (Busy is an Unavailable)


@dataclass(frozen=True)
class CachedRead:
    """An object read through the cache: its table, the version's reference, where it came
    from."""

    table: pa.Table
    ref: ObjectRef
    meta: CacheMeta


@dataclass(frozen=True)
class _Call:
    """One read: the client's settings, the deadline of the whole call, its Control."""

    client: Any
    cache: ClientCache
    deadline: float  # time.monotonic()
    control: Optional[Control]

    @classmethod
    def of(cls, client: Any, timeout: Optional[float], control: Optional[Control]) -> _Call:
        return cls(client, client._cache, time.monotonic() + client._timeout(timeout), control)

    @property
    def endpoint(self) -> str:
        return str(self.client.endpoint)

    def left(self) -> float:
        """Seconds left for the next server call."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Timeout("the call's timeout passed (spent waiting for the client cache)")
        return left


def _stale(entry: CachedEntry, cache: ClientCache) -> CachedRead:
    cache.stats.stale_served += 1
    ref = ObjectRef.from_json(entry.info["ref"])
    return CachedRead(entry.table, ref,
                      CacheMeta("offline-stale", stale=True, version=ref.version,
                                validated_ms=entry.validated_ms, tier=entry.tier))


def read_object(call: _Call, key: str, version: Optional[int]) -> CachedRead:
    """Read `key` (at `version`, or the latest) through the cache (see the module docstring)."""
    client, cache = call.client, call.cache
    token = client._token_digest
    entry_id = object_entry_id(call.endpoint, token, key, version)
    entry = cache.lookup(entry_id, call.deadline)
    if entry is None and version is not None:  # the latest copy may be that version
        latest = cache.lookup(object_entry_id(call.endpoint, token, key, None), call.deadline)
        if latest is not None and int(latest.info["version"]) == version:
            entry = latest
    where = f"{key}@{version}" if version is not None else key
    if client.offline:
        if entry is None:
            raise NotFound(f"offline: {where!r} is not in the client cache")
        return _stale(entry, cache)
    cached_version = int(entry.info["version"]) if entry is not None else None
    try:
        result = client._fetch(key, version=version, if_none_match=cached_version,
                               timeout=call.left(), control=call.control)
    except Unreachable as e:
        if client.allow_stale and entry is not None:
            return _stale(entry, cache)
        if client.allow_stale:
            raise type(e)(f"{e.message}; and {where!r} is not in the client cache",
                          details=e.details, cause=e.cause) from e
        raise
    except NotFound:
        cache.drop(entry_id, call.deadline)
        raise
    now = _now_ms()
    if result.status == "not_modified" and entry is not None:
        cache.stats.revalidated += 1
        cache.mark_validated(entry_id, entry, now)
        return CachedRead(entry.table, result.ref,
                          CacheMeta("revalidated", version=result.ref.version,
                                    validated_ms=now, tier=entry.tier))
    if result.table is None:
        raise Unavailable(f"the server answered 'not modified' for {where!r} but the client "
                          "cache has no copy of it")
    cache.stats.fetched += 1
    ref = result.ref
    cache.store(entry_id, result.table,
                {"version": ref.version, "ref": {"endpoint": ref.endpoint, "key": ref.key,
                                                 "version": ref.version}}, now, call.deadline)
    return CachedRead(result.table, ref, CacheMeta("server", version=ref.version,
                                                   validated_ms=now))


def _fresh(call: _Call, entry: CachedEntry, now: int) -> bool:
    """Whether a query copy may be served with no round trip (ClientCache.query_fresh_s)."""
    expires = entry.info["meta"].get("expires_ms")
    return (call.cache.query_fresh_s > 0 and expires is not None and now < int(expires)
            and now - entry.validated_ms < call.cache.query_fresh_s * 1000
            and entry.validated_ms > call.cache.invalidated_ms(call.endpoint))


def _same_result(cached: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether the server's answer is a hit on the very result that was cached."""
    return (current.get("cache") == "hit" and current.get("key") == cached.get("key")
            and current.get("created_ms") is not None
            and current.get("created_ms") == cached.get("created_ms"))


def read_query(call: _Call, request: dict[str, Any]
               ) -> tuple[pa.Table, dict[str, Any], CacheMeta]:
    """Answer a query request through the cache (see the module docstring). Returns (table,
    the server's metadata as JSON, where it came from)."""
    client, cache = call.client, call.cache
    entry_id = query_entry_id(call.endpoint, client._token_digest, request)
    entry = cache.lookup(entry_id, call.deadline)
    now = _now_ms()

    def from_entry(source: Source, meta: Optional[dict[str, Any]] = None,
                   validated_ms: Optional[int] = None
                   ) -> tuple[pa.Table, dict[str, Any], CacheMeta]:
        assert entry is not None
        meta = entry.info["meta"] if meta is None else meta
        expires = meta.get("expires_ms")
        stale = expires is None or _now_ms() >= int(expires)
        if source == "offline-stale":
            cache.stats.stale_served += 1
        elif source == "cache":
            cache.stats.served_without_round_trip += 1
        validated = entry.validated_ms if validated_ms is None else validated_ms
        return entry.table, meta, CacheMeta(source, stale=stale, validated_ms=validated,
                                            tier=entry.tier, expires_ms=expires)

    if client.offline:
        if entry is None:
            raise NotFound(f"offline: the result of this query is not in the client cache: "
                           f"{request.get('sql')!r}")
        return from_entry("offline-stale")
    if entry is not None and _fresh(call, entry, now):
        return from_entry("cache")
    try:
        if entry is not None:
            current = client._query_info(request, call.left())
            if _same_result(entry.info["meta"], current):
                now = _now_ms()
                cache.stats.revalidated += 1
                cache.mark_validated(entry_id, entry, now)
                return from_entry("revalidated", current, now)
        result = client._query(request, call.left(), call.control)
        table = result.read_all()
        meta = result.meta.raw
    except Unreachable:
        if entry is not None and client.allow_stale:
            return from_entry("offline-stale")
        raise
    cache.stats.fetched += 1
    now = _now_ms()
    if (meta.get("cache") in ("hit", "miss") and meta.get("cached", True) is not False
            and meta.get("expires_ms") is not None and now < int(meta["expires_ms"])):
        cache.store(entry_id, table, {"meta": meta}, now, call.deadline)
    return table, meta, CacheMeta("server", validated_ms=now, expires_ms=meta.get("expires_ms"))


def cached_read(client: Any, key: str, version: Optional[int], timeout: Optional[float],
                control: Optional[Control] = None) -> CachedRead:
    """Client.get and get_with_meta's path when the client has a cache."""
    return read_object(_Call.of(client, timeout, control), key, version)


def cached_query(client: Any, request: dict[str, Any], timeout: Optional[float],
                 control: Optional[Control] = None) -> QueryResult:
    """Client.query's path when the client has a cache (previews never use it)."""
    table, meta, where = read_query(_Call.of(client, timeout, control), request)
    result = QueryResult(_TableStream(table, meta))
    result.cache = where
    return result


def forget(client: Any, removed_keys: Iterable[str]) -> None:
    """After this client removed entries on the server (delete, invalidate, shrink, ...):
    drop the copies of those keys' latest versions, and make every query copy validated
    before now be checked with the server before it is served again."""
    cache: Optional[ClientCache] = client._cache
    if cache is None:
        return
    cache.note_invalidation(client.endpoint)
    for key in removed_keys:
        cache.drop(object_entry_id(client.endpoint, client._token_digest, key, None))


class _TableStream:
    """A finished table presented as the Flight stream QueryResult reads: the first chunk
    carries the query's metadata, as the server's first batch does."""

    def __init__(self, table: pa.Table, meta: dict[str, Any]) -> None:
        self.schema = table.schema
        batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
        first = pa.py_buffer(json.dumps(meta).encode())
        self._chunks = [_Chunk(b, first if i == 0 else None) for i, b in enumerate(batches)]

    def read_chunk(self) -> _Chunk:
        if not self._chunks:
            raise StopIteration
        return self._chunks.pop(0)

    def cancel(self) -> None:
        self._chunks.clear()


@dataclass
class _Chunk:
    data: Any
    app_metadata: Any

