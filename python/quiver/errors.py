"""The SDK's exceptions: one class per way a Quiver call can fail.

Every exception the SDK raises for a failed call is a QuiverError; the pyarrow exception it
came from is chained (``raise ... from``) and kept as ``.cause``. Which server condition
gives which class is the error contract of docs/api.md ("Errors").
"""

from __future__ import annotations

from typing import Any, Optional


class QuiverError(Exception):
    """Base of every error the SDK raises for a failed call.

    ``message`` is the server's message without gRPC's debug context; ``details`` the JSON
    object the server attached to the error (``{}`` when none); ``cause`` the pyarrow
    exception, if any.
    """

    def __init__(self, message: str, *, details: Optional[dict[str, Any]] = None,
                 cause: Optional[BaseException] = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.cause = cause


class NotFound(QuiverError):
    """No such key or version (gRPC NOT_FOUND)."""


class InvalidRequest(QuiverError):
    """The request is malformed: a bad key, option, ticket or query, an unknown source
    (gRPC INVALID_ARGUMENT)."""


class VersionConflict(QuiverError):
    """A compare-and-set (``if_version``) did not hold (gRPC ALREADY_EXISTS).

    ``current_version`` is the key's version when the put was refused (0: the key had none),
    or None if the server's message did not say.
    """

    def __init__(self, message: str, *, current_version: Optional[int] = None,
                 details: Optional[dict[str, Any]] = None,
                 cause: Optional[BaseException] = None) -> None:
        super().__init__(message, details=details, cause=cause)
        self.current_version = current_version


class TooLarge(QuiverError):
    """The object or entry is larger than a limit of the server.

    ``limit`` is the limit in bytes and ``setting`` its name (``max_object_bytes``,
    ``max_entry_bytes`` or ``cache_size``), when the server said.
    """

    def __init__(self, message: str, *, limit: Optional[int] = None,
                 setting: Optional[str] = None, details: Optional[dict[str, Any]] = None,
                 cause: Optional[BaseException] = None) -> None:
        super().__init__(message, details=details, cause=cause)
        self.limit = limit
        self.setting = setting


class NotAdmitted(TooLarge):
    """The cache could not make room for the entry (larger than ``cache_size``, or only
    protected entries could be evicted)."""


class Unavailable(QuiverError):
    """The server cannot be reached, or cannot reach its shared index or store."""


class Busy(Unavailable):
    """The server is reachable but a queue is full (e.g. a source's ``max_queue``); retry."""


class Timeout(QuiverError):
    """The call's timeout passed (client side), or work on the server passed its limit."""


class Cancelled(QuiverError):
    """The call was cancelled: by the caller, or by the server (e.g. a put whose dependency
    was invalidated while it streamed: "not committed")."""


class Unauthenticated(QuiverError):
    """The server wants a token (``connect(token=...)``) and got none, a malformed one, or an
    unknown or revoked one (docs/security.md)."""


class PermissionDenied(QuiverError):
    """The token is valid but lacks what the call needs: a role, a source grant, or (a
    tenant's token) access to the feature (docs/security.md)."""


class SerializerError(QuiverError):
    """An object stored through a serializer was read without it (or with another one), or
    a serializer failed. Nothing reaches the server: this is raised by the client."""


__all__ = [
    "QuiverError", "NotFound", "InvalidRequest", "VersionConflict", "TooLarge",
    "NotAdmitted", "Unavailable", "Busy", "Timeout", "Cancelled", "SerializerError",
    "Unauthenticated", "PermissionDenied",
]
