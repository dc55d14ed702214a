"""quiver.aio: the asyncio client. Same calls as quiver.Client, as coroutines.

pyarrow.flight is blocking, so each call runs on a thread of a bounded executor the client
owns (`max_workers`, default 8); calls beyond that wait for a thread. What cancelling the
awaiting task does depends on the call, because Flight can only interrupt streams:

- get, get_with_meta, get_artifact, query and QueryResult reads (with or without a
  client-side cache): once the server has started the stream (sent its schema), the
  stream is cancelled at once (FlightStreamReader.cancel): the server stops sending, and a
  query that nobody else reads is stopped as docs/queries.md says. Before that moment
  pyarrow's DoGet cannot be interrupted (it waits for the schema inside one blocking
  call): e.g. a query miss whose source has not produced its first batch. Then the task is
  cancelled at once, but its thread stays busy until the schema arrives or the call's
  timeout passes. The GetFlightInfo with which a client cache checks a cached query result
  is a unary call: it completes (or times out) first.
- put and update: before its next batch, the put sends the abort message
  ({"abort": ...}, docs/api.md): the server discards it, nothing is stored, the key is
  unchanged. A source blocked inside producing a batch delays this until it returns (or
  the put's deadline, when the server discards the put as well).
- every other call (info, list, delete, actions, fetch_artifacts' futures): the task is
  cancelled at once, but the request already sent completes (or times out) on its thread;
  its result is dropped.

A call still waiting for a thread when cancelled never starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from typing import Any, Awaitable, Callable, Iterable, List, Optional, Sequence, TypeVar

from quiver._base import Control, TlsArg
from quiver._objects import KeyOrRef
from quiver.client import Client
from quiver.query_result import QueryResult
from quiver.results import (ArtifactInfo, FetchResult, ObjectInfo, ObjectRef, ObjectResult,
                            QueryMeta, Removed)
from quiver.serializers import Serializer

T = TypeVar("T")


class AsyncQueryResult:
    """QueryResult for asyncio: ``meta`` at once, the data through coroutines."""

    def __init__(self, result: QueryResult, client: AsyncClient, control: Control) -> None:
        self._result = result
        self._client = client
        self._control = control

    @property
    def meta(self) -> QueryMeta:
        return self._result.meta

    @property
    def schema(self) -> Any:
        return self._result.schema

    @property
    def cache(self) -> Any:
        """What the client-side cache did (QueryResult.cache); None without one."""
        return self._result.cache

    async def read_all(self) -> Any:
        return await self._client._run(self._result.read_all, control=self._control)

    async def to_pandas(self, **kwargs: Any) -> Any:
        table = await self.read_all()
        return table.to_pandas(**kwargs)

    def reader(self) -> Any:
        """The blocking RecordBatchReader (for a thread, not for the event loop)."""
        return self._result.reader()

    def cancel(self) -> None:
        self._control.cancel()


class AsyncClient:
    """An asyncio client for one Quiver endpoint. ``async with``, or ``await close()``."""

    def __init__(self, endpoint: str, *, max_workers: int = 8, **kwargs: Any) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.sync = Client(endpoint, **kwargs)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers, thread_name_prefix="quiver-aio")

    @property
    def endpoint(self) -> str:
        return self.sync.endpoint

    async def _run(self, fn: Callable[..., T], *args: Any, control: Optional[Control] = None,
                   **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        try:
            return await future
        except asyncio.CancelledError:
            if control is not None:
                control.cancel()
            raise

    # -- objects -----------------------------------------------------------------------
    async def put(self, key: str, data: Any, *, if_version: Optional[int] = None,
                  depends_on: Iterable[str] = (), tags: Iterable[str] = (),
                  cost_s: Optional[float] = None, serializer: Optional[Serializer] = None,
                  timeout: Optional[float] = None) -> ObjectRef:
        control = Control()
        return await self._run(functools.partial(
            self.sync._put, key, data, if_version=if_version, depends_on=depends_on,
            tags=tags, cost_s=cost_s, serializer=serializer, timeout=timeout,
            control=control), control=control)

    async def update(self, ref: ObjectRef, data: Any, **kwargs: Any) -> ObjectRef:
        return await self.put(ref.key, data, if_version=ref.version, **kwargs)

    async def _fetch(self, key: str, *, version: Optional[int] = None,
                     if_none_match: Optional[int] = None,
                     timeout: Optional[float] = None) -> FetchResult:
        control = Control()
        return await self._run(functools.partial(
            self.sync._fetch, key, version=version, if_none_match=if_none_match,
            timeout=timeout, control=control), control=control)

    async def get(self, key_or_ref: KeyOrRef, *, version: Optional[int] = None,
                  serializer: Optional[Serializer] = None,
                  timeout: Optional[float] = None) -> Any:
        result = await self.get_with_meta(key_or_ref, version=version, serializer=serializer,
                                          timeout=timeout)
        return result.value

    async def get_with_meta(self, key_or_ref: KeyOrRef, *, version: Optional[int] = None,
                            serializer: Optional[Serializer] = None,
                            timeout: Optional[float] = None) -> ObjectResult[Any]:
        control = Control()
        return await self._run(self.sync._get_with_meta, key_or_ref, version, serializer,
                               timeout, control, control=control)

    async def info(self, key: str, *, timeout: Optional[float] = None,
                   entry: bool = True) -> ObjectInfo:
        return await self._run(functools.partial(self.sync.info, key, timeout=timeout,
                                                 entry=entry))

    async def list(self, prefix: str = "", *,
                   timeout: Optional[float] = None) -> List[ObjectInfo]:
        return await self._run(functools.partial(self.sync.list, prefix, timeout=timeout))

    async def delete(self, key: str, *, timeout: Optional[float] = None) -> Removed:
        return await self._run(functools.partial(self.sync.delete, key, timeout=timeout))

    async def delete_prefix(self, prefix: str, *, timeout: Optional[float] = None) -> Removed:
        return await self._run(functools.partial(self.sync.delete_prefix, prefix,
                                                 timeout=timeout))

    # -- queries and artifacts ---------------------------------------------------------
    async def query(self, sql: str, *, source: str, params: Sequence[Any] = (),
                    ttl: Optional[float] = None, preview: bool = False,
                    depends_on: Iterable[str] = (), tags: Iterable[str] = (),
                    cache_nondeterministic: bool = False,
                    timeout: Optional[float] = None) -> AsyncQueryResult:
        request = self.sync._query_request(sql, source, params, ttl, preview,
                                           depends_on, tags, cache_nondeterministic)
        control = Control()
        if self.sync.cache is not None and not preview:
            from quiver._cached_reads import cached_query
            result = await self._run(functools.partial(cached_query, self.sync, request,
                                                       timeout, control), control=control)
        else:
            result = await self._run(functools.partial(self.sync._query, request, timeout,
                                                       control), control=control)
        return AsyncQueryResult(result, self, control)

    async def get_artifact(self, url: str, *, timeout: Optional[float] = None) -> Any:
        control = Control()
        return await self._run(functools.partial(self.sync._get_artifact, url, timeout,
                                                 control), control=control)

    def fetch_artifacts(self, urls: Iterable[str], *, ttl: Optional[float] = None,
                        timeout: Optional[float] = None) -> List[Awaitable[ArtifactInfo]]:
        """One awaitable per URL (asyncio futures over the sync client's pool); must be
        called from a running event loop."""
        return [asyncio.wrap_future(f)
                for f in self.sync.fetch_artifacts(urls, ttl=ttl, timeout=timeout)]

    # -- management --------------------------------------------------------------------
    async def stats(self, *, timeout: Optional[float] = None) -> dict[str, Any]:
        return await self._run(functools.partial(self.sync.stats, timeout=timeout))

    async def entries(self, prefix: Optional[str] = None, *,
                      timeout: Optional[float] = None) -> Any:
        return await self._run(functools.partial(self.sync.entries, prefix, timeout=timeout))

    async def invalidate(self, key: str, *, cascade: bool = True,
                         timeout: Optional[float] = None) -> Removed:
        return await self._run(functools.partial(self.sync.invalidate, key, cascade=cascade,
                                                 timeout=timeout))

    async def invalidate_tag(self, tag: str, *, timeout: Optional[float] = None) -> Removed:
        return await self._run(functools.partial(self.sync.invalidate_tag, tag,
                                                 timeout=timeout))

    async def shrink(self, *, one: bool = False, below_bytes: Optional[int | str] = None,
                     dry_run: bool = False, timeout: Optional[float] = None) -> Removed:
        return await self._run(functools.partial(self.sync.shrink, one=one,
                                                 below_bytes=below_bytes, dry_run=dry_run,
                                                 timeout=timeout))

    async def config_get(self, name: Optional[str] = None, *,
                         timeout: Optional[float] = None) -> Any:
        return await self._run(functools.partial(self.sync.config_get, name, timeout=timeout))

    async def config_set(self, name: str, value: Any, *,
                         timeout: Optional[float] = None) -> dict[str, Any]:
        return await self._run(functools.partial(self.sync.config_set, name, value,
                                                 timeout=timeout))

    # -- lifecycle ---------------------------------------------------------------------
    async def close(self) -> None:
        """Wait for running calls, then close the connection."""
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.sync.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def connect(endpoint: str, *, token: Optional[str] = None, tls: TlsArg = None,
            timeout: float = 30.0, cache: Any = None, offline: bool = False,
            allow_stale: bool = False, artifact_workers: int = 4,
            max_workers: int = 8) -> AsyncClient:
    """An AsyncClient; the arguments are quiver.connect's, plus `max_workers`: the most
    calls that run at once (each on a thread)."""
    return AsyncClient(endpoint, max_workers=max_workers, token=token, tls=tls,
                       timeout=timeout, cache=cache, offline=offline, allow_stale=allow_stale,
                       artifact_workers=artifact_workers)
