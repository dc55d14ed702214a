"""Quiver's Python SDK: an Arrow-native cache for query results and data objects.

    import quiver
    with quiver.connect("grpc://127.0.0.1:8815") as q:
        ref = q.put("session1/obj", table)
        table = q.get("session1/obj")

docs/python.md documents every call. The async client is quiver.aio.
"""

from quiver.client import Client, connect
from quiver.client_cache import CacheMeta, ClientCache
from quiver.errors import (Busy, Cancelled, InvalidRequest, NotAdmitted, NotFound,
                           PermissionDenied, QuiverError, SerializerError, Timeout, TooLarge,
                           Unauthenticated, Unavailable, VersionConflict)
from quiver.query_result import QueryResult
from quiver.results import (ArtifactInfo, FetchResult, ObjectInfo, ObjectRef, ObjectResult,
                            QueryMeta, Removed)
from quiver.serializers import PickleSerializer, Serializer

__version__ = "0.1.0"

__all__ = [
    "Client", "connect", "QueryResult", "ClientCache", "CacheMeta",
    "ArtifactInfo", "FetchResult", "ObjectInfo", "ObjectRef", "ObjectResult", "QueryMeta",
    "Removed", "PickleSerializer", "Serializer",
    "QuiverError", "NotFound", "InvalidRequest", "VersionConflict", "TooLarge", "NotAdmitted",
    "Unavailable", "Busy", "Timeout", "Cancelled", "SerializerError", "Unauthenticated",
    "PermissionDenied",
]
