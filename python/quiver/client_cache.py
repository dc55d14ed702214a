"""ClientCache: the client-side cache of objects and query results, and offline mode.

A ClientCache is passed to ``quiver.connect(..., cache=ClientCache(...))``. It holds copies of
objects (keyed by endpoint, a digest of the client's token, key and requested version) and of
query results (keyed by endpoint, token digest and the canonical JSON of the request) in two
tiers:

- memory: private to the process, an LRU bounded by bytes (``memory_bytes``; 0 disables it);
- disk (``disk_dir``): shared by every process of the machine that names the same
  directory, an LRU bounded by ``disk_bytes`` (see _disk_cache.py for the layout).

How reads are answered is _cached_reads.py (docs/python-cache.md is the user's version).
The disk tier never fails a read: its I/O errors and a busy lock make a miss or a skipped
store (DiskCache.io_errors, .lock_timeouts).

Thread safety: a ClientCache may be shared by the threads of a process and by several Clients.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Literal, Optional

import pyarrow as pa

from quiver._disk_cache import DiskCache
from quiver._memory_cache import MemoryCache

Source = Literal["server", "revalidated", "cache", "offline-stale"]

MiB = 1 << 20


@dataclass(frozen=True)
class CacheMeta:
    """Where a result came from.

    source: "server" (data transferred now), "revalidated" (the server confirmed the cached
      copy, which was served: "not modified" for an object, the same stored result for a
      query), "cache" (a query result served without a round trip: validated less than
      ``query_fresh_s`` ago) or "offline-stale" (served without the server: offline mode, or
      the server was unreachable or timed out and ``allow_stale`` was set).
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
    revalidated: int = 0  # copies the server confirmed ("not modified", same query result)
    fetched: int = 0  # results whose data came from the server
    served_without_round_trip: int = 0  # fresh query results
    stale_served: int = 0
    stores: int = 0


class ClientCache:
    """Copies of objects and query results kept by the client, in memory and on disk.

    `query_fresh_s`: a cached query result that the server confirmed less than this many
    seconds ago (and before its expiry, and not before an invalidation sent through this
    cache) is served without a round trip; 0 (the default): every query is checked with
    the server (one GetFlightInfo, no data) before its copy is served.
    """

    def __init__(self, memory_bytes: int = 256 * MiB,
                 disk_dir: Optional[str | os.PathLike[str]] = None,
                 disk_bytes: int = 1024 * MiB, query_fresh_s: float = 0.0) -> None:
        if not math.isfinite(query_fresh_s) or query_fresh_s < 0:
            raise ValueError(f"query_fresh_s must be a finite number >= 0, got {query_fresh_s}")
        self.memory: MemoryCache[CachedEntry] = MemoryCache(memory_bytes)
        self.disk: Optional[DiskCache] = (DiskCache(disk_dir, disk_bytes)
                                          if disk_dir is not None else None)
        self.query_fresh_s = float(query_fresh_s)
        self.stats = CacheStats()
        self._invalidated: dict[str, int] = {}
        self._lock = threading.Lock()

    def lookup(self, entry_id: str, deadline: Optional[float] = None) -> Optional[CachedEntry]:
        """The entry (memory first, then disk), or None. `deadline` (time.monotonic()) bounds
        any wait for the disk tier's lock."""
        entry = self.memory.get(entry_id)
        if entry is not None:
            self.stats.memory_hits += 1
            return replace(entry, tier="memory")
        if self.disk is not None:
            found = self.disk.get(entry_id, deadline)
            if found is not None:
                self.stats.disk_hits += 1
                entry = CachedEntry(found.table, found.meta, found.validated_ms, "disk")
                self.memory.put(entry_id, entry, entry.table.nbytes)
                return entry
        self.stats.misses += 1
        return None

    def store(self, entry_id: str, table: pa.Table, info: dict[str, Any],
              validated_ms: int, deadline: Optional[float] = None) -> None:
        self.stats.stores += 1
        self.memory.put(entry_id, CachedEntry(table, info, validated_ms), table.nbytes)
        if self.disk is not None:
            self.disk.put(entry_id, table, info, validated_ms, deadline)

    def mark_validated(self, entry_id: str, entry: CachedEntry, validated_ms: int) -> None:
        entry = replace(entry, validated_ms=validated_ms, tier="memory")
        self.memory.put(entry_id, entry, entry.table.nbytes)
        if self.disk is not None:
            self.disk.mark_validated(entry_id, validated_ms)

    def drop(self, entry_id: str, deadline: Optional[float] = None) -> None:
        self.memory.remove(entry_id)
        if self.disk is not None:
            self.disk.remove(entry_id, deadline)

    # -- invalidations sent by clients of this cache --------------------------------------
    def note_invalidation(self, endpoint: str) -> None:
        """Record that a client of this cache sent an invalidation (invalidate, delete, ...)
        to `endpoint` now: query copies validated before it are checked with the server
        before they are served again (in every process sharing the disk directory)."""
        marker = _digest("endpoint", endpoint)
        now = _now_ms()
        with self._lock:
            self._invalidated[marker] = now
        if self.disk is not None:
            self.disk.note_invalidation(marker, now)

    def invalidated_ms(self, endpoint: str) -> int:
        """When a client of this cache (or of its disk directory) last sent an invalidation
        to `endpoint` (Unix ms; 0: never)."""
        marker = _digest("endpoint", endpoint)
        with self._lock:
            mine = self._invalidated.get(marker, 0)
        theirs = self.disk.invalidated_ms(marker) if self.disk is not None else 0
        return max(mine, theirs)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _digest(*parts: Any) -> str:
    raw = json.dumps(list(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def token_digest(token: Optional[str]) -> Optional[str]:
    """What identifies a token in cache keys: a SHA-256 digest, never the token itself.
    Clients with different tokens (or none) never share copies."""
    if token is None:
        return None
    return hashlib.sha256(b"quiver client cache token\0" + token.encode()).hexdigest()


def object_entry_id(endpoint: str, token: Optional[str], key: str,
                    version: Optional[int]) -> str:
    """`token` is a token_digest."""
    return _digest("object", endpoint, token, key, version)


def query_entry_id(endpoint: str, token: Optional[str], request: dict[str, Any]) -> str:
    """`token` is a token_digest."""
    return _digest("query", endpoint, token, request)
