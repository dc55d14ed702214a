"""ClientCache: the client-side cache of objects and query results, and offline mode.

A ClientCache is passed to ``quiver.connect(..., cache=ClientCache(...))``. It holds copies of
objects (keyed by endpoint, key and requested version) and of query results (keyed by
endpoint and the canonical JSON of the request) in two tiers:

- memory: private to the process, an LRU bounded by bytes (``memory_bytes``; 0 disables it);
- disk (``disk_dir``): shared by every process of the machine that names the same
  directory, an LRU bounded by ``disk_bytes`` (see _disk_cache.py for the layout).

How a read is answered (docs/python.md, "Client-side cache", is the user's version):

- object get: a cached copy is revalidated with one conditional get (``if_none_match`` = the
  cached version): "not modified" serves the copy (no data is transferred; source
  "revalidated"), new data replaces it (source "server"), NotFound drops it.
- query: a cached result is served without a round trip until its ``expires_ms`` (source
  "cache"); after that the query is sent again.
- offline (``offline=True``): nothing is sent; cached copies are served with source
  "offline-stale" and ``stale=True``; nothing cached raises NotFound.
- ``allow_stale=True``: when the server is unreachable (Unavailable) a cached copy is served as
  in offline mode; without it, or with nothing cached, Unavailable is raised.

Thread safety: a ClientCache may be shared by the threads of a process and by several Clients.
"""

from __future__ import annotations

import hashlib
import os
import json
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

import pyarrow as pa

from quiver._disk_cache import DiskCache
from quiver._memory_cache import MemoryCache
from quiver.errors import NotFound, Unavailable
from quiver.results import ObjectRef

if TYPE_CHECKING:
    from quiver.query_result import QueryResult

Source = Literal["server", "revalidated", "cache", "offline-stale"]

MiB = 1 << 20


@dataclass(frozen=True)
class CacheMeta:
    """Where a result came from.

    source: "server" (data transferred now), "revalidated" (the server answered "not
      modified"; the cached copy was served), "cache" (a query result served from the client
      cache before its expiry, no round trip) or "offline-stale" (served without the server:
      offline mode, or the server was unreachable and ``allow_stale`` was set).
    stale: True when the copy could not be checked against the server (offline-stale), or for
      a query result, when it is past its expiry.
    version: the object's version (None for query results).
    validated_ms: when the server last confirmed this copy (Unix ms).
    tier: "memory" or "disk" when the copy came from the client cache, else None.
    expires_ms: a query result's expiry as the server reported it (None for objects).
    """

    source: Source
    stale: bool = False
    version: Optional[int] = None
    validated_ms: Optional[int] = None
    tier: Optional[str] = None
    expires_ms: Optional[int] = None


@dataclass
class CachedEntry:
    """A cached table and what is known about it."""

    table: pa.Table
    info: dict[str, Any]  # "version", "ref" (objects); "meta" (the query's metadata)
    validated_ms: int
    tier: str = "memory"


@dataclass
class CacheStats:
    """Counters of one ClientCache in this process."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    revalidated: int = 0  # "not modified" answers
    fetched: int = 0  # results whose data came from the server
    served_without_round_trip: int = 0  # fresh query results
    stale_served: int = 0
    stores: int = 0


class ClientCache:
    """Copies of objects and query results kept by the client, in memory and on disk."""

    def __init__(self, memory_bytes: int = 256 * MiB,
                 disk_dir: Optional[str | os.PathLike[str]] = None,
                 disk_bytes: int = 1024 * MiB) -> None:
        self.memory: MemoryCache[CachedEntry] = MemoryCache(memory_bytes)
        self.disk: Optional[DiskCache] = (DiskCache(disk_dir, disk_bytes)
                                          if disk_dir is not None else None)
        self.stats = CacheStats()

    def lookup(self, entry_id: str) -> Optional[CachedEntry]:
        entry = self.memory.get(entry_id)
        if entry is not None:
            self.stats.memory_hits += 1
            return replace(entry, tier="memory")
        if self.disk is not None:
            found = self.disk.get(entry_id)
            if found is not None:
                self.stats.disk_hits += 1
                entry = CachedEntry(found.table, found.meta, found.validated_ms, "disk")
                self.memory.put(entry_id, entry, entry.table.nbytes)
                return entry
        self.stats.misses += 1
        return None

    def store(self, entry_id: str, table: pa.Table, info: dict[str, Any],
              validated_ms: int) -> None:
        self.stats.stores += 1
        self.memory.put(entry_id, CachedEntry(table, info, validated_ms), table.nbytes)
        if self.disk is not None:
            self.disk.put(entry_id, table, info, validated_ms)

    def mark_validated(self, entry_id: str, entry: CachedEntry, validated_ms: int) -> None:
        entry = replace(entry, validated_ms=validated_ms, tier="memory")
        self.memory.put(entry_id, entry, entry.table.nbytes)
        if self.disk is not None:
            self.disk.mark_validated(entry_id, validated_ms)

    def drop(self, entry_id: str) -> None:
        self.memory.remove(entry_id)
        if self.disk is not None:
            self.disk.remove(entry_id)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def object_entry_id(endpoint: str, key: str, version: Optional[int]) -> str:
    raw = json.dumps(["object", endpoint, key, version])
    return hashlib.sha256(raw.encode()).hexdigest()


def query_entry_id(endpoint: str, request: dict[str, Any]) -> str:
    raw = json.dumps(["query", endpoint, request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class CachedRead:
    """An object read through the cache: its table, the version's reference, where it came
    from."""

    table: pa.Table
    ref: ObjectRef
    meta: CacheMeta


def _stale(entry: CachedEntry, cache: ClientCache) -> CachedRead:
    cache.stats.stale_served += 1
    ref = ObjectRef.from_json(entry.info["ref"])
    return CachedRead(entry.table, ref,
                      CacheMeta("offline-stale", stale=True, version=ref.version,
                                validated_ms=entry.validated_ms, tier=entry.tier))


def read_object(client: Any, cache: ClientCache, key: str, version: Optional[int], *,
                endpoint: str, offline: bool, allow_stale: bool) -> CachedRead:
    """Read `key` (at `version`, or the latest) through `cache` (see the module docstring)."""
    entry_id = object_entry_id(endpoint, key, version)
    entry = cache.lookup(entry_id)
    where = f"{key}@{version}" if version is not None else key
    if offline:
        if entry is None:
            raise NotFound(f"offline: {where!r} is not in the client cache")
        return _stale(entry, cache)
    cached_version = int(entry.info["version"]) if entry is not None else None
    try:
        result = client._fetch(key, version=version, if_none_match=cached_version)
    except Unavailable as e:
        if entry is not None and allow_stale:
            return _stale(entry, cache)
        if entry is None and allow_stale:
            raise Unavailable(f"{e.message}; and {where!r} is not in the client cache",
                              details=e.details, cause=e.cause) from e
        raise
    except NotFound:
        if entry is not None:
            cache.drop(entry_id)
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
                                                 "version": ref.version}}, now)
    return CachedRead(result.table, ref, CacheMeta("server", version=ref.version,
                                                   validated_ms=now))


def read_query(cache: ClientCache, request: dict[str, Any],
               run: Callable[[], tuple[pa.Table, dict[str, Any]]], *, endpoint: str,
               offline: bool, allow_stale: bool) -> tuple[pa.Table, dict[str, Any], CacheMeta]:
    """Answer a query request from `cache` while its result is fresh, else `run()` it and
    keep the result until the expiry the server gives (`expires_ms` of its metadata).
    Returns (table, the server's metadata as JSON, where it came from)."""
    entry_id = query_entry_id(endpoint, request)
    entry = cache.lookup(entry_id)
    now = _now_ms()

    def from_entry(source: Source) -> tuple[pa.Table, dict[str, Any], CacheMeta]:
        assert entry is not None
        meta = entry.info["meta"]
        expires = meta.get("expires_ms")
        stale = expires is None or now >= int(expires)
        if source == "offline-stale":
            cache.stats.stale_served += 1
        else:
            cache.stats.served_without_round_trip += 1
        return entry.table, meta, CacheMeta(source, stale=stale, validated_ms=entry.validated_ms,
                                             tier=entry.tier, expires_ms=expires)

    if entry is not None and not offline:
        expires = entry.info["meta"].get("expires_ms")
        if expires is not None and now < int(expires):
            return from_entry("cache")
    if offline:
        if entry is None:
            raise NotFound(f"offline: the result of this query is not in the client cache: "
                           f"{request.get('sql')!r}")
        return from_entry("offline-stale")
    try:
        table, meta = run()
    except Unavailable as e:
        if entry is not None and allow_stale:
            return from_entry("offline-stale")
        raise
    cache.stats.fetched += 1
    now = _now_ms()
    if (meta.get("cache") in ("hit", "miss") and meta.get("cached", True) is not False
            and meta.get("expires_ms") is not None and now < int(meta["expires_ms"])):
        cache.store(entry_id, table, {"meta": meta}, now)
    return table, meta, CacheMeta("server", validated_ms=now, expires_ms=meta.get("expires_ms"))


def _settings(client: Any) -> tuple[ClientCache, bool, bool]:
    return client._cache, bool(client.offline), bool(client.allow_stale)


def cached_read(client: Any, key: str, version: Optional[int]) -> CachedRead:
    """Client.get_with_meta's path when the client has a cache."""
    cache, offline, allow_stale = _settings(client)
    return read_object(client, cache, key, version, endpoint=client.endpoint, offline=offline,
                       allow_stale=allow_stale)


def cached_get(client: Any, key: str, version: Optional[int]) -> pa.Table:
    """Client.get's path when the client has a cache: the table of `key` (see read_object)."""
    return cached_read(client, key, version).table


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


def cached_query(client: Any, request: dict[str, Any],
                 timeout: Optional[float]) -> QueryResult:
    """Client.query's path when the client has a cache (previews never use it)."""
    from quiver.query_result import QueryResult

    cache, offline, allow_stale = _settings(client)

    def run() -> tuple[pa.Table, dict[str, Any]]:
        result = client._query(request, timeout)
        table = result.read_all()
        return table, result.meta.raw

    table, meta, where = read_query(cache, request, run, endpoint=client.endpoint,
                                    offline=offline, allow_stale=allow_stale)
    result = QueryResult(_TableStream(table, meta))
    result.cache = where
    return result
