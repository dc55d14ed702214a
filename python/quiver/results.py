"""What the SDK's calls return: object references and metadata, as frozen dataclasses.

All are plain values, safe to share between threads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, Literal, Optional, TypeVar

import pyarrow as pa

T = TypeVar("T")


def ms_to_datetime(ms: Any) -> Optional[datetime]:
    """Unix milliseconds (or None) as an aware UTC datetime (or None)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(int(ms) / 1000.0, tz=timezone.utc)


@dataclass(frozen=True)
class ObjectRef:
    """One version of one object: where it lives (``endpoint``), its key and version.

    ``str(ref)`` is the ``key@version`` form a DoGet ticket accepts.
    """

    endpoint: str
    key: str
    version: int

    @classmethod
    def from_json(cls, raw: Any) -> ObjectRef:
        value = json.loads(bytes(raw)) if not isinstance(raw, dict) else raw
        return cls(str(value.get("endpoint", "")), str(value["key"]), int(value["version"]))

    def __str__(self) -> str:
        return f"{self.key}@{self.version}"


@dataclass(frozen=True)
class FetchResult:
    """The answer to a conditional get (Client._fetch): ``status`` "ok" with the table, or
    "not_modified" (the version asked about with ``if_none_match`` is current) without one.
    ``ref`` is the version the server would send."""

    status: Literal["ok", "not_modified"]
    table: Optional[pa.Table]
    ref: ObjectRef


@dataclass(frozen=True)
class ObjectResult(Generic[T]):
    """An object read together with the reference of the version that was read.

    ``cache`` says what the client-side cache did (a client_cache.CacheMeta: source "server",
    "revalidated" or "offline-stale", stale, version, validated_ms); None without a cache.
    """

    value: T
    ref: ObjectRef
    cache: Optional[Any] = None


@dataclass(frozen=True)
class ObjectInfo:
    """What the cache knows about an object's latest version (Client.info, Client.list).

    ``rows`` and ``bytes`` are the latest version's (``bytes``: its stored IPC stream);
    ``created``, ``last_access``, ``accesses``, ``cost_s``, ``depends_on``, ``tags`` and
    ``expires`` come from the cache's entry metadata and are None/empty in Client.list.
    """

    key: str
    version: int
    rows: int
    bytes: int
    schema: pa.Schema
    ref: ObjectRef
    created: Optional[datetime] = None
    last_access: Optional[datetime] = None
    expires: Optional[datetime] = None
    accesses: Optional[int] = None
    cost_s: Optional[float] = None
    depends_on: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueryMeta:
    """The response metadata of a query (docs/queries.md, "The response").

    ``cache`` is "hit", "miss" or "bypass"; ``exec_s`` is None on a miss (still running);
    ``stale`` is a hit past its expiry served within the stale-while-revalidate window, and
    ``refreshing`` a hit while a background refresh of the key runs (docs/queries.md,
    "Freshness"); ``raw`` is the JSON object as sent, for fields this class does not name.
    """

    cache: str
    key: str
    joined: bool = False
    node: Optional[str] = None
    created: Optional[datetime] = None
    expires: Optional[datetime] = None
    exec_s: Optional[float] = None
    cached: bool = False
    reason: Optional[str] = None
    stale: bool = False
    refreshing: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def hit(self) -> bool:
        return self.cache == "hit"

    @property
    def miss(self) -> bool:
        return self.cache == "miss"

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> QueryMeta:
        exec_ms = value.get("exec_ms")
        return cls(cache=str(value.get("cache", "")), key=str(value.get("key", "")),
                   joined=bool(value.get("joined", False)), node=value.get("node"),
                   created=ms_to_datetime(value.get("created_ms")),
                   expires=ms_to_datetime(value.get("expires_ms")),
                   exec_s=None if exec_ms is None else float(exec_ms) / 1000.0,
                   cached=bool(value.get("cached", False)), reason=value.get("reason"),
                   stale=bool(value.get("stale", False)),
                   refreshing=bool(value.get("refreshing", False)), raw=dict(value))


@dataclass(frozen=True)
class ArtifactInfo:
    """An artifact that is cached (the result of the ``artifact-fetch`` action)."""

    url: str
    key: str
    cache: str
    rows: int
    bytes: int
    etag: Optional[str] = None
    mtime: Optional[datetime] = None
    expires: Optional[datetime] = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, url: str, value: dict[str, Any]) -> ArtifactInfo:
        return cls(url=url, key=str(value.get("key", "")), cache=str(value.get("cache", "")),
                   rows=int(value.get("rows", 0)), bytes=int(value.get("bytes", 0)),
                   etag=value.get("etag"), mtime=ms_to_datetime(value.get("mtime_ms")),
                   expires=ms_to_datetime(value.get("expires_ms")), raw=dict(value))


@dataclass(frozen=True)
class Removed:
    """Keys removed by a delete, an invalidation or a shrink. ``versions`` is the number of
    versions deleted (delete calls only); ``dry_run``: a shrink that only said which."""

    keys: tuple[str, ...]
    versions: Optional[int] = None
    dry_run: bool = False

    def __bool__(self) -> bool:
        return bool(self.keys)
