"""quiver.dask.Cache: keep expensive dask task results in Quiver, reuse them in any process.

Like ``dask.cache.Cache`` (a scheduler callback over cachey), but the store is a Quiver server
shared by processes and machines, and what is kept is weighed by its compute time:

- ``_pretask``/``_posttask`` time each task. Its cost is its own time plus the largest cost
  of its dependencies (the time to recompute it from scratch along the longest chain, the
  measure dask.cache uses). A result whose cost is at least ``min_cost_s`` and that can be
  encoded (below) is put under ``PREFIX/<sha256 of the task key>`` with that cost
  (``cost_s``: the server's ``cost_ms`` put option, which its eviction score weighs).
- ``_start`` walks the graph from its outputs towards its inputs; a task whose result is in
  Quiver is replaced by that result, and its inputs are then not looked up or computed.

Encodings: pyarrow Tables and RecordBatches as they are; pandas DataFrames and Series
through Arrow (``pa.Table.from_pandas``, index kept). Any other result, or a frame Arrow
cannot convert, is cached only when a ``serializer`` (quiver.serializers.Serializer, e.g.
``quiver.PickleSerializer()``) is given, and stored the way ``Client.put(...,
serializer=...)`` stores it. Pickle is not the default because loading a pickle runs code chosen by
whoever wrote it, and a Quiver server is shared: anyone who can put under the prefix could
run code in every process that reads from it. Opt in when you trust every writer.

Task keys: dask names a task by a token of its function and arguments (``tokenize``) for
``dask.delayed(pure=True)``, dask.array, dask.dataframe and other collections built from
the same inputs, so the same computation has the same keys in every process. Keys that
include a random part (``delayed`` without ``pure=True``, ``uuid``-named tasks) differ
between runs and never hit. The Quiver key is ``PREFIX/`` followed by the SHA-256 of the
task key's JSON form (tuples as lists), so it is the same on every machine.

Thread safety: one Cache may be used by one computation at a time (like dask.cache.Cache).
A failure to reach Quiver never fails the computation: the task is computed (or its result
not stored) and the error is counted in ``errors`` and logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from timeit import default_timer
from typing import Any, Optional

import pyarrow as pa
from dask._task_spec import DataNode
from dask.callbacks import Callback

from quiver._convert import from_table, kind_of
from quiver.errors import InvalidRequest, NotFound, QuiverError
from quiver.serializers import Serializer

_LOG = logging.getLogger("quiver.dask")
_META_KEY = b"quiver.dask"
_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass
class CacheCounters:
    """What one Cache did in this process."""

    hits: int = 0  # tasks replaced by a stored result
    stores: int = 0  # results put
    skipped: int = 0  # results worth storing that have no encoding (no serializer)
    errors: int = 0  # Quiver calls that failed (the computation went on)


def task_key_digest(task_key: Hashable) -> str:
    """SHA-256 (hex) of a dask task key's JSON form: the same in every process."""
    def plain(k: Any) -> Any:
        if isinstance(k, tuple):
            return [plain(x) for x in k]
        if isinstance(k, (str, int, float, bool)) or k is None:
            return k
        raise TypeError(f"dask task key part {k!r} is not a str, number or tuple")

    return hashlib.sha256(json.dumps(plain(task_key)).encode()).hexdigest()


class Cache(Callback):
    """A dask callback storing results that cost at least ``min_cost_s`` in Quiver.

    Use it around a compute (``with Cache(client): x.compute()``) or ``register()`` it.
    """

    def __init__(self, client: Any, min_cost_s: float = 0.1, prefix: str = "dask/tasks",
                 serializer: Optional[Serializer] = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        segments = prefix.split("/")
        if not 1 <= len(segments) <= 2 or not all(
                _SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
            raise ValueError(f"prefix {prefix!r} must be one or two key segments of "
                             "[A-Za-z0-9._-] (the task's digest is the last segment)")
        if min_cost_s < 0:
            raise ValueError(f"min_cost_s must be >= 0, got {min_cost_s}")
        if serializer is not None and not isinstance(serializer, Serializer):
            raise TypeError("serializer must be a quiver.serializers.Serializer (name, dumps, "
                            f"loads), got {type(serializer).__name__}")
        self.client = client
        self.min_cost_s = float(min_cost_s)
        self.prefix = prefix
        self.serializer = serializer
        self.counters = CacheCounters()
        self._starts: dict[Hashable, float] = {}
        self._costs: dict[Hashable, float] = {}
        self._send_cost = True  # off after a server refused the cost_ms option

    def quiver_key(self, task_key: Hashable) -> str:
        """The Quiver key a task's result is stored under."""
        return f"{self.prefix}/{task_key_digest(task_key)}"

    def discard(self, task_keys: Iterable[Hashable]) -> list[str]:
        """Remove the stored results of these task keys; returns the Quiver keys deleted."""
        deleted = []
        for task_key in task_keys:
            key = self.quiver_key(task_key)
            if self.client.delete(key):
                deleted.append(key)
        return deleted

    # -- dask callbacks ----------------------------------------------------------------------
    def _start(self, dsk: dict[Hashable, Any]) -> None:
        self._starts.clear()
        self._costs.clear()
        dependents: set[Hashable] = set()
        for node in dsk.values():
            dependents.update(getattr(node, "dependencies", ()))
        stack = [k for k in dsk if k not in dependents]
        seen: set[Hashable] = set()
        while stack:
            key = stack.pop()
            if key in seen or key not in dsk:
                continue
            seen.add(key)
            node = dsk[key]
            if isinstance(node, DataNode):
                continue
            found, value = self._load(key)
            if found:
                dsk[key] = DataNode(key, value)
                self.counters.hits += 1
            else:
                stack.extend(getattr(node, "dependencies", ()))

    def _pretask(self, key: Hashable, dsk: dict[Hashable, Any], state: dict[str, Any]) -> None:
        self._starts[key] = default_timer()

    def _posttask(self, key: Hashable, value: Any, dsk: dict[Hashable, Any], state: dict[str, Any], id: Any) -> None:
        cost = default_timer() - self._starts.pop(key, default_timer())
        deps = state["dependencies"][key]
        if deps:
            cost += max(self._costs.get(d, 0.0) for d in deps)
        self._costs[key] = cost
        if cost < self.min_cost_s:
            return
        encoded = self._encode(key, value)
        if encoded is None:
            self.counters.skipped += 1
            return
        self._store(key, encoded, cost)

    def _finish(self, dsk: dict[Hashable, Any], state: dict[str, Any], errored: bool) -> None:
        self._starts.clear()
        self._costs.clear()

    # -- storing and loading -----------------------------------------------------------------
    def _store(self, key: Hashable, value: Any, cost: float) -> None:
        qkey = self.quiver_key(key)
        serializer = self.serializer if not isinstance(value, pa.Table) else None
        try:
            try:
                self.client.put(qkey, value, serializer=serializer,
                                cost_s=cost if self._send_cost else None)
            except InvalidRequest as e:
                if not (self._send_cost and "cost_ms" in str(e)):
                    raise
                _LOG.warning("the server does not take the cost_ms put option; storing "
                             "task results without their cost: %s", e)
                self._send_cost = False
                self.client.put(qkey, value, serializer=serializer)
            self.counters.stores += 1
        except QuiverError as e:
            self.counters.errors += 1
            _LOG.warning("could not store dask task %r as %s: %s", key, qkey, e)

    def _load(self, key: Hashable) -> tuple[bool, Any]:
        qkey = self.quiver_key(key)
        try:
            table = self.client._fetch(qkey).table
        except NotFound:
            return False, None
        except QuiverError as e:
            self.counters.errors += 1
            _LOG.warning("could not read dask task %r from %s: %s", key, qkey, e)
            return False, None
        try:
            return True, self._decode(qkey, table)
        except (QuiverError, ValueError, KeyError, TypeError, pa.ArrowException) as e:
            _LOG.warning("ignoring %s for dask task %r: %s", qkey, key, e)
            return False, None

    def _encode(self, key: Hashable, value: Any) -> Any:
        """What to put for a result: a Table marked with its kind, a value for the serializer,
        or None (not cached)."""
        try:
            if isinstance(value, pa.Table):
                return _with_kind(value, "arrow.table")
            if isinstance(value, pa.RecordBatch):
                return _with_kind(pa.Table.from_batches([value]), "arrow.record_batch")
            if _is_pandas(value, "DataFrame"):
                return _with_kind(pa.Table.from_pandas(value), "pandas.dataframe")
            if _is_pandas(value, "Series"):
                table = pa.Table.from_pandas(value.to_frame(name="series"))
                return _with_kind(table, "pandas.series", name=value.name)
        except (pa.ArrowException, TypeError, ValueError) as e:
            _LOG.debug("dask task %r: not Arrow-convertible (%s)", key, e)
        return value if self.serializer is not None else None

    def _decode(self, qkey: str, table: pa.Table) -> Any:
        if kind_of(table.schema)[0] == "serialized":
            return from_table(table, qkey, self.serializer)
        metadata = dict(table.schema.metadata or {})
        meta = json.loads(metadata.pop(_META_KEY))
        kind = meta["kind"]
        if kind in ("arrow.table", "arrow.record_batch"):
            table = table.replace_schema_metadata(metadata or None)
            return table if kind == "arrow.table" else table.combine_chunks().to_batches()[0]
        if kind == "pandas.dataframe":
            return table.to_pandas()
        if kind == "pandas.series":
            series = table.to_pandas()["series"]
            series.name = meta.get("name")
            return series
        raise ValueError(f"unknown encoding {kind!r}")


def _is_pandas(value: Any, name: str) -> bool:
    cls = type(value)
    return cls.__name__ == name and cls.__module__.startswith("pandas")


def _with_kind(table: pa.Table, kind: str, **extra: Any) -> pa.Table:
    metadata = dict(table.schema.metadata or {})
    metadata[_META_KEY] = json.dumps({"kind": kind, **extra}).encode()
    return table.replace_schema_metadata(metadata)
