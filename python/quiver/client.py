"""quiver.Client: the synchronous SDK client, and quiver.connect.

A Client is thread-safe: its calls may run from many threads at once over its one Flight
connection. fetch_artifacts runs on a bounded thread pool the client owns.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, Iterable, List, Optional

from quiver._admin import AdminMixin
from quiver._base import TlsArg, check_timeout
from quiver._objects import ObjectsMixin
from quiver._queries import QueriesMixin
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
        run at once; each has its own `timeout` (default: the client's)."""
        seconds = check_timeout(timeout) if timeout is not None else self.timeout
        pool = self._artifact_pool()
        return [pool.submit(self._fetch_artifact, url, ttl, seconds) for url in urls]

    def _fetch_artifact(self, url: str, ttl: Optional[float], timeout: float) -> ArtifactInfo:
        body: dict[str, Any] = {"artifact": url}
        if ttl is not None:
            body["ttl_s"] = ttl
        out = self._action("artifact-fetch", body, timeout=timeout, context=f"artifact {url!r}")
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
