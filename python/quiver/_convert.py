"""Conversion between what users put and get and the Arrow streams Quiver stores.

Arrow data (Table, RecordBatch, RecordBatchReader, anything with ``__arrow_c_stream__``)
is streamed as it is. pandas and polars DataFrames go through Arrow (``Table.from_pandas``,
``polars.DataFrame.to_arrow``); neither library is imported unless the object is one.
``bytes`` and serialized objects are a one-column ``large_binary`` table, column
``bytes``, one row per chunk of at most CHUNK_BYTES, in order, marked in the schema
metadata with ``quiver.kind`` ("bytes" or "serialized") and ``quiver.serializer``.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import pyarrow as pa

from quiver.errors import SerializerError
from quiver.serializers import Serializer

CHUNK_BYTES = 1 << 20
ROWS_PER_BATCH = 8
KIND = b"quiver.kind"
SERIALIZER = b"quiver.serializer"


def _binary_stream(payload: bytes, metadata: dict[bytes, bytes]) -> tuple[Any, Iterator[Any]]:
    schema = pa.schema([pa.field("bytes", pa.large_binary(), nullable=False)],
                       metadata=metadata)
    view = memoryview(payload)

    def batches() -> Iterator[Any]:
        chunks = [view[i:i + CHUNK_BYTES] for i in range(0, len(view), CHUNK_BYTES)] or [view]
        for i in range(0, len(chunks), ROWS_PER_BATCH):
            column = pa.array([bytes(c) for c in chunks[i:i + ROWS_PER_BATCH]],
                              type=pa.large_binary())
            yield pa.record_batch([column], schema=schema)

    return schema, batches()


def _module_of(obj: Any) -> str:
    return type(obj).__module__.split(".", 1)[0]


def to_stream(data: Any, serializer: Optional[Serializer] = None) -> tuple[Any, Iterator[Any]]:
    """(schema, iterator of record batches) for `data`. Batches are produced lazily, so a
    RecordBatchReader is read while the put streams."""
    if serializer is not None:
        try:
            payload = serializer.dumps(data)
        except Exception as exc:
            raise SerializerError(f"serializer {serializer.name!r} could not dump "
                                  f"{type(data).__name__}: {exc}") from exc
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise SerializerError(f"serializer {serializer.name!r} returned "
                                  f"{type(payload).__name__}, not bytes")
        return _binary_stream(bytes(payload), {KIND: b"serialized",
                                               SERIALIZER: serializer.name.encode()})
    if isinstance(data, (bytes, bytearray, memoryview)):
        return _binary_stream(bytes(data), {KIND: b"bytes"})
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatch):
        return data.schema, iter([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    module = _module_of(data)
    if module == "pandas" and type(data).__name__ == "DataFrame":
        table = pa.Table.from_pandas(data)
        return table.schema, iter(table.to_batches())
    if module == "polars" and type(data).__name__ == "DataFrame":
        table = data.to_arrow()
        return table.schema, iter(table.to_batches())
    if hasattr(data, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(data)
        return reader.schema, iter(reader)
    raise TypeError(
        f"cannot store a {type(data).__name__}: pass a pyarrow Table, RecordBatch or "
        "RecordBatchReader, a pandas or polars DataFrame, bytes, or give serializer=... "
        "(e.g. quiver.PickleSerializer() for objects you trust)")


def kind_of(schema: Any) -> tuple[Optional[str], Optional[str]]:
    """(quiver.kind, quiver.serializer) recorded in a stored schema's metadata."""
    meta = schema.metadata or {}
    kind = meta.get(KIND)
    name = meta.get(SERIALIZER)
    return (kind.decode() if kind else None, name.decode() if name else None)


def _joined_bytes(table: Any) -> bytes:
    return b"".join(chunk.as_py() for chunk in table.column("bytes"))


def from_table(table: Any, key: str, serializer: Optional[Serializer] = None) -> Any:
    """What get returns for a stored table: the table, bytes, or the deserialized object."""
    kind, name = kind_of(table.schema)
    if kind == "serialized":
        if serializer is None:
            raise SerializerError(
                f"{key!r} was stored with serializer {name!r}; pass serializer=... to get it "
                "(Quiver never deserializes by default: loading pickles runs code)")
        if serializer.name != name:
            raise SerializerError(f"{key!r} was stored with serializer {name!r}, not "
                                  f"{serializer.name!r}")
        try:
            return serializer.loads(_joined_bytes(table))
        except Exception as exc:
            raise SerializerError(f"serializer {name!r} could not load {key!r}: {exc}") from exc
    if serializer is not None:
        raise SerializerError(f"{key!r} was not stored with a serializer "
                              f"(asked for {serializer.name!r})")
    if kind == "bytes":
        return _joined_bytes(table)
    return table
