"""Mapping of pyarrow/Flight exceptions to the SDK's typed exceptions (quiver.errors).

The server's side of the contract: docs/api.md, section "Errors". A server older than the
contract sends no JSON details; its messages are recognised instead ("exceeds
max_object_bytes", "not admitted", a source's full queue), so both kinds of server give the
same classes.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import pyarrow as pa
import pyarrow.flight as flight

from quiver.errors import (Busy, Cancelled, InvalidRequest, NotAdmitted, NotFound,
                           PermissionDenied, QuiverError, Timeout, TooLarge, Unauthenticated,
                           Unavailable, VersionConflict)

_FLIGHT_PREFIX = re.compile(r"^Flight returned [a-z ]+ error, with message: ")
_ARROW_PREFIX = re.compile(r"^(Unknown|Invalid|Key error|Cancelled|IOError): ")
_CONFLICT = re.compile(r"version conflict: '[^']*' is at version (\d+)")
_TOO_LARGE = re.compile(r"exceeds (max_object_bytes|max_entry_bytes|cache_size)")
_QUEUE_FULL = re.compile(r"resource exhausted: .* queued")


def clean_message(text: str) -> str:
    """The server's message without gRPC's debug context and pyarrow's prefixes."""
    for marker in (". gRPC client debug context:", " gRPC client debug context:",
                   ". Client context:", ". Detail:"):
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    text = _FLIGHT_PREFIX.sub("", text)
    return _ARROW_PREFIX.sub("", text).strip()


def _details(exc: BaseException) -> dict[str, Any]:
    raw = getattr(exc, "extra_info", None)
    if not raw:
        return {}
    try:
        value = json.loads(bytes(raw))
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _text(exc: BaseException) -> str:
    # KeyError's str() is the repr of its argument; take the argument itself.
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def translate(exc: BaseException, context: Optional[str] = None) -> BaseException:
    """The QuiverError for a pyarrow exception; anything else is returned unchanged.

    `context` (e.g. "artifact 's3://b/x'") is put in front of the message.
    """
    if isinstance(exc, QuiverError) or not isinstance(exc, (pa.ArrowException,
                                                             flight.FlightError)):
        return exc
    details = _details(exc)
    message = clean_message(_text(exc))
    if context and context not in message:
        message = f"{context}: {message}"
    name = details.get("error")
    kwargs: dict[str, Any] = {"details": details, "cause": exc}
    if isinstance(exc, flight.FlightTimedOutError):
        return Timeout(message, **kwargs)
    if isinstance(exc, flight.FlightUnauthenticatedError):
        return Unauthenticated(message, **kwargs)
    if isinstance(exc, flight.FlightUnauthorizedError):
        return PermissionDenied(message, **kwargs)
    if isinstance(exc, flight.FlightCancelledError) or isinstance(exc, pa.ArrowCancelled):
        return Cancelled(message, **kwargs)
    if isinstance(exc, flight.FlightUnavailableError):
        return (Busy if name == "busy" else Unavailable)(message, **kwargs)
    if isinstance(exc, pa.ArrowKeyError):
        return NotFound(message, **kwargs)
    conflict = _CONFLICT.search(message)
    if conflict is not None or name == "version_conflict":
        current = details.get("current_version")
        if current is None and conflict is not None:
            current = int(conflict.group(1))
        return VersionConflict(message, current_version=current, **kwargs)
    if isinstance(exc, pa.ArrowInvalid):
        return InvalidRequest(message, **kwargs)
    if name == "not_admitted" or (name is None and "not admitted" in message):
        return NotAdmitted(message, limit=details.get("limit"), setting=details.get("setting"),
                           **kwargs)
    too_large = _TOO_LARGE.search(message)
    if name == "too_large" or (name is None and too_large is not None):
        setting = details.get("setting") or (too_large.group(1) if too_large else None)
        return TooLarge(message, limit=details.get("limit"), setting=setting, **kwargs)
    if name == "busy" or (name is None and _QUEUE_FULL.search(message)):
        return Busy(message, **kwargs)
    return QuiverError(message, **kwargs)


@contextmanager
def translated(context: Optional[str] = None) -> Iterator[None]:
    """Re-raise pyarrow exceptions of the block as QuiverErrors, chained."""
    try:
        yield
    except (pa.ArrowException, flight.FlightError) as exc:
        mapped = translate(exc, context)
        if mapped is exc:
            raise
        raise mapped from exc
