"""Serializers: how arbitrary Python objects become bytes, only when asked for.

The SDK stores Arrow data as Arrow and ``bytes`` as bytes. Any other object needs an explicit
``serializer=`` on put and on get. Quiver never picks one by default: unpickling executes
code chosen by whoever wrote the data, so a cache that unpickled whatever it found would
let anyone who can write a key run code in every reader.
"""

from __future__ import annotations

import pickle
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Serializer(Protocol):
    """A named pair of functions. ``name`` is recorded with the object (schema metadata
    ``quiver.serializer``) and checked on get."""

    name: str

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleSerializer:
    """pickle, at ``protocol`` (default: pickle.HIGHEST_PROTOCOL).

    Only for data you wrote yourself: loading a pickle runs code the writer chose.
    """

    name = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=self.protocol)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)  # noqa: S301 - the caller chose this serializer explicitly
