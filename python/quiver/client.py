"""quiver.Client: the synchronous SDK client, and quiver.connect.

A Client is thread-safe: its calls may run from many threads at once over its one Flight
connection. fetch_artifacts runs on a bounded thread pool the client owns.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import time
from typing import Any, Iterable, List, Optional

from quiver._admin import AdminMixin
from quiver._base import TlsArg, check_timeout
from quiver._objects import ObjectsMixin
from quiver._queries import QueriesMixin
from quiver.errors import Cancelled, Timeout
from quiver.results import ArtifactInfo


class Client(ObjectsMixin, QueriesMixin, AdminMixin):
    """A connection to one Quiver endpoint. Use as a context manager, or close()."""

    def __init__(self, endpoint: str, *, token: Optional[str] = None, tls: TlsArg = None,
                 timeout: float = 30.0, cache: Any = None, offline: bool = False,
                 allow_stale: bool = False, artifact_workers: int = 4) -> None:
        super().__init__(endpoint, token=token, tls=tls, timeout=timeout)
        self._cache = cache
        self.offline = offline
        self.allow_stale = allow_stale
        if artifact_workers < 1:
            raise ValueError(f"artifact_workers must be >= 1, got {artifact_workers}")
        self._artifact_workers = artifact_workers
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._pool_lock = threading.Lock()

    @property
    def cache(self) -> Any:
        """The client-side cache given to connect (None: every get asks the server)."""
        return self._cache

    def fetch_artifacts(self, urls: Iterable[str], *, ttl: Optional[float] = None,
                        timeout: Optional[float] = None
                        ) -> List[concurrent.futures.Future[ArtifactInfo]]:
        """Ask the server to fetch and cache each artifact; one Future per URL, in order,
        resolving to its ArtifactInfo once it is cached, or raising the QuiverError that
        says which artifact failed and why. At most `artifact_workers` (connect's argument)
        run at once; each has its own `timeout` (default: the client's), counted from this
        call: time spent waiting for a worker counts. A fetch not started when the client
        is closed raises Cancelled naming its artifact."""
        seconds = check_timeout(timeout) if timeout is not None else self.timeout
        deadline = time.monotonic() + seconds
        pool = self._artifact_pool()
        futures = []
        for url in urls:
            outer: concurrent.futures.Future[ArtifactInfo] = concurrent.futures.Future()
            inner = pool.submit(self._fetch_artifact, url, ttl, deadline, seconds)
            inner.add_done_callback(functools.partial(_settle, outer, url))
            outer.add_done_callback(functools.partial(_cancel_if_cancelled, inner))
            futures.append(outer)
        return futures

    def _fetch_artifact(self, url: str, ttl: Optional[float], deadline: float,
                        seconds: float) -> ArtifactInfo:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout(f"artifact {url!r}: its timeout ({seconds:g} s) passed while it "
                          "waited for a worker (artifact_workers)")
        body: dict[str, Any] = {"artifact": url}
        if ttl is not None:
            body["ttl_s"] = ttl
        out = self._action("artifact-fetch", body, timeout=left, context=f"artifact {url!r}")
        return ArtifactInfo.from_json(url, out)

    def _artifact_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self._artifact_workers, thread_name_prefix="quiver-artifact")
            return self._pool

    def close(self) -> None:
        """Cancel artifact fetches not started yet, wait for running ones, close the
        connection. Idempotent."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        super().close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _settle(outer: concurrent.futures.Future[ArtifactInfo], url: str,
            inner: concurrent.futures.Future[ArtifactInfo]) -> None:
    """Pass the pool's outcome on to the caller's future; a fetch the pool cancelled (close()
    before it started) becomes an error naming its artifact."""
    if outer.done():  # the caller cancelled it
        return
    if inner.cancelled():
        outer.set_exception(Cancelled(f"artifact {url!r}: not fetched: the client was closed "
                                      "before the fetch started"))
        return
    error = inner.exception()
    if error is not None:
        outer.set_exception(error)
    else:
        outer.set_result(inner.result())


def _cancel_if_cancelled(inner: concurrent.futures.Future[ArtifactInfo],
                         outer: concurrent.futures.Future[ArtifactInfo]) -> None:
    if outer.cancelled():
        inner.cancel()  # the caller gave up: don't start it


def connect(endpoint: str, *, token: Optional[str] = None, tls: TlsArg = None,
            timeout: float = 30.0, cache: Any = None, offline: bool = False,
            allow_stale: bool = False, artifact_workers: int = 4) -> Client:
    """A Client for `endpoint` (grpc://HOST:PORT, grpc+tls://HOST:PORT or HOST:PORT).

    `token` is sent as ``authorization: Bearer TOKEN`` on every call. `tls`: True for TLS
    with the system's roots, or the path of a PEM file of root certificates. `timeout`
    (seconds) bounds every call unless the call gives its own. `cache`, `offline`,
    `allow_stale`: the client-side cache (quiver.client_cache). Connecting is lazy: an
    unreachable server shows at the first call, as Unavailable.
    """
    return Client(endpoint, token=token, tls=tls, timeout=timeout, cache=cache,
                  offline=offline, allow_stale=allow_stale, artifact_workers=artifact_workers)
