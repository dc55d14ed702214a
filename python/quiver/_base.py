"""The connection every call goes through: endpoint, TLS, token header, timeouts, actions.

ClientBase owns one pyarrow FlightClient. pyarrow's FlightClient is thread-safe, so one
ClientBase serves any number of threads; the SDK's clients (quiver.Client, the async
client) are built on it.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import pyarrow as pa
import pyarrow.flight as flight

from quiver._errors import translated
from quiver.client_cache import token_digest
from quiver.errors import Cancelled
from quiver.results import Removed

TlsArg = Union[None, bool, str, Path]


def location_of(endpoint: str, tls: TlsArg) -> tuple[str, Optional[bytes]]:
    """(Flight location URI, root certificates PEM or None) for an endpoint and `tls`.

    `endpoint` is grpc://HOST:PORT, grpc+tls://HOST:PORT or HOST:PORT. `tls`: None follows
    the scheme; True asks for TLS with the system's roots; a path names a PEM file of root
    certificates (implies TLS); False refuses a grpc+tls:// endpoint.
    """
    if "://" not in endpoint:
        endpoint = "grpc://" + endpoint
    scheme, rest = endpoint.split("://", 1)
    if scheme not in ("grpc", "grpc+tcp", "grpc+tls"):
        raise ValueError(f"unsupported endpoint scheme {scheme!r} in {endpoint!r}: "
                         "use grpc://HOST:PORT or grpc+tls://HOST:PORT")
    wants_tls = scheme == "grpc+tls" if tls is None else tls is not False
    if tls is False and scheme == "grpc+tls":
        raise ValueError(f"tls=False contradicts the endpoint {endpoint!r}")
    roots = None
    if isinstance(tls, (str, Path)):
        roots = Path(tls).read_bytes()
    return ("grpc+tls://" if wants_tls else "grpc://") + rest, roots


def check_timeout(timeout: float) -> float:
    value = float(timeout)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    return value


class Control:
    """Lets another thread cancel a call running on a worker thread (the async client).

    A stream being read is cancelled at once (FlightStreamReader.cancel; not before DoGet
    has returned, which waits for the stream's schema); a put is aborted before its next
    batch (the {"abort": ...} message: the server stores nothing); a unary call cannot be
    interrupted and is abandoned to its timeout (quiver/aio.py says what each call does).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._reader: Any = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def check(self) -> None:
        if self._cancelled:
            raise Cancelled("cancelled by the caller")

    def attach(self, reader: Any) -> None:
        """Register the stream a worker is about to read; cancels it if already cancelled."""
        with self._lock:
            self._reader = reader
            cancelled = self._cancelled
        if cancelled:
            reader.cancel()
            raise Cancelled("cancelled by the caller")

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            reader = self._reader
        if reader is not None:
            reader.cancel()


class ClientBase:
    """Connection state and the low-level calls shared by every part of the client."""

    def __init__(self, endpoint: str, *, token: Optional[str] = None, tls: TlsArg = None,
                 timeout: float = 30.0) -> None:
        location, roots = location_of(endpoint, tls)
        self.endpoint = location
        self.timeout = check_timeout(timeout)
        kwargs: dict[str, Any] = {}
        if roots is not None:
            kwargs["tls_root_certs"] = roots
        self._flight: Any = flight.FlightClient(location, **kwargs)
        self._headers: list[tuple[bytes, bytes]] = []
        if token is not None:
            self._headers.append((b"authorization", f"Bearer {token}".encode()))
        # Identifies the token in client-cache keys (a digest, never the token itself).
        self._token_digest = token_digest(token)
        self._closed = False

    def _timeout(self, timeout: Optional[float]) -> float:
        return self.timeout if timeout is None else check_timeout(timeout)

    def _options(self, timeout: Optional[float] = None) -> Any:
        return flight.FlightCallOptions(timeout=self._timeout(timeout), headers=self._headers)

    def _action_raw(self, name: str, body: Any = None, *, timeout: Optional[float] = None,
                    context: Optional[str] = None) -> bytes:
        """Run action `name` with a JSON `body` (None: empty); the result's body bytes."""
        payload = b"" if body is None else json.dumps(body).encode()
        with translated(context):
            results = list(self._flight.do_action(flight.Action(name, payload),
                                                  options=self._options(timeout)))
        if len(results) != 1:
            raise RuntimeError(f"action {name!r} returned {len(results)} results, expected 1")
        return bytes(results[0].body.to_pybytes())

    def _action(self, name: str, body: Any = None, *, timeout: Optional[float] = None,
                context: Optional[str] = None) -> Any:
        return json.loads(self._action_raw(name, body, timeout=timeout, context=context))

    def _entries(self, prefix: Optional[str], timeout: Optional[float]) -> Any:
        """The `entries` action's Arrow table (its result body is an IPC stream)."""
        body = None if prefix is None else {"prefix": prefix}
        raw = self._action_raw("entries", body, timeout=timeout)
        with translated():
            return pa.ipc.open_stream(raw).read_all()

    def _forget(self, removed: Removed) -> Removed:
        """Tell the client-side cache (if any) what this client removed on the server
        (client_cache: copies dropped, query copies checked again); returns `removed`."""
        if getattr(self, "_cache", None) is not None:
            from quiver._cached_reads import forget
            forget(self, removed.keys)
        return removed

    @staticmethod
    def _chunks(reader: Any) -> Iterator[Any]:
        while True:
            try:
                yield reader.read_chunk()
            except StopIteration:
                return

    def close(self) -> None:
        """Close the Flight connection. Idempotent."""
        if not self._closed:
            self._closed = True
            self._flight.close()
