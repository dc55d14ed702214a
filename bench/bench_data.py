"""Generated Arrow tables for the benchmark harnesses.

make_table builds a deterministic table of a given size in batches of a given size;
ipc_bytes gives a table as an IPC stream; Dataset wraps one with its name, label and sizes
(in memory and as an IPC stream).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# Bytes per row of the generated schema: four 8-byte numeric columns, a 4-byte string
# offset and on average 16 bytes of string data.
ROW_BYTES = 4 * 8 + 4 + 16


def make_table(total_bytes: int, batch_bytes: int, seed: int) -> pa.Table:
    """A table of ~total_bytes in record batches of ~batch_bytes (by nbytes).

    Columns: id int64 (sequential), key int64, x float64, y float64 (numpy random),
    s string (random lowercase, 4-28 characters). Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    rows_per_batch = max(1, batch_bytes // ROW_BYTES)
    total_rows = max(1, total_bytes // ROW_BYTES)
    batches, start = [], 0
    schema = pa.schema([("id", pa.int64()), ("key", pa.int64()), ("x", pa.float64()),
                        ("y", pa.float64()), ("s", pa.string())])
    while start < total_rows:
        n = min(rows_per_batch, total_rows - start)
        lens = rng.integers(4, 29, n, dtype=np.int32)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lens, out=offsets[1:])
        chars = rng.integers(ord("a"), ord("z") + 1, int(offsets[-1]), dtype=np.uint8)
        strings = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))
        batches.append(pa.record_batch([
            pa.array(np.arange(start, start + n, dtype=np.int64)),
            pa.array(rng.integers(0, 1 << 40, n, dtype=np.int64)),
            pa.array(rng.standard_normal(n)),
            pa.array(rng.random(n)),
            strings,
        ], schema=schema))
        start += n
    return pa.Table.from_batches(batches, schema=schema)


def ipc_bytes(table: pa.Table) -> bytes:
    """table as an Arrow IPC stream (what a put sends and Quiver stores)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        for b in table.to_batches():
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


def ipc_stream_size(table: pa.Table) -> int:
    sink = pa.MockOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        for b in table.to_batches():
            w.write_batch(b)
    return sink.size()


@dataclass
class Dataset:
    name: str          # key segment, e.g. "big"
    label: str         # human description, e.g. "1 GiB table, 64 MiB batches"
    table: pa.Table
    nbytes: int = 0
    ipc_bytes: int = 0
    batches: int = 0

    def __post_init__(self):
        self.nbytes = self.table.nbytes
        self.ipc_bytes = ipc_stream_size(self.table)
        self.batches = len(self.table.to_batches())

