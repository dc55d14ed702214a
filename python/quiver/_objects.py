"""Object calls: put, update, get, conditional get, info, list, delete (docs/api.md)."""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Optional, Union

import pyarrow as pa
import pyarrow.flight as flight

from quiver._base import ClientBase, Control
from quiver._convert import from_table, to_stream
from quiver._errors import translate, translated
from quiver.errors import NotFound
from quiver.results import (FetchResult, ObjectInfo, ObjectRef, ObjectResult, Removed,
                            ms_to_datetime)
from quiver.serializers import Serializer

KeyOrRef = Union[str, ObjectRef]


def descriptor(key: str) -> Any:
    return flight.FlightDescriptor.for_path(*key.split("/"))


def _abort(writer: Any, exc: BaseException) -> None:
    """Make the server discard a started put: a metadata-only {"abort": why} message
    (docs/api.md, "Aborting a put"). Ending the stream any other way would commit what was
    sent. The server answers CANCELLED, which is expected and dropped, as is any error of a
    stream the server had already ended (then nothing was stored either): the caller sees
    the exception that made it abort."""
    why = f"{type(exc).__name__}: {exc}"[:500]
    try:
        writer.write_metadata(json.dumps({"abort": why}).encode())
        writer.done_writing()
    except (pa.ArrowException, flight.FlightError):
        pass
    try:
        writer.close()
    except (pa.ArrowException, flight.FlightError):
        pass


def _to_ref(key_or_ref: KeyOrRef, version: Optional[int]) -> tuple[str, Optional[int]]:
    if isinstance(key_or_ref, ObjectRef):
        return key_or_ref.key, key_or_ref.version if version is None else version
    return key_or_ref, version


class ObjectsMixin(ClientBase):
    _cache: Any

    # -- writes ------------------------------------------------------------------------
    def put(self, key: str, data: Any, *, if_version: Optional[int] = None,
            depends_on: Iterable[str] = (), tags: Iterable[str] = (),
            cost_s: Optional[float] = None, serializer: Optional[Serializer] = None,
            timeout: Optional[float] = None) -> ObjectRef:
        """Store `data` as the next version of `key`; the new version's ObjectRef.

        `if_version`: compare-and-set (0: create only). `depends_on`, `tags`: for cascade
        invalidation. `cost_s`: seconds it took to compute, for eviction (default: the
        time the server took to receive it).
        """
        return self._put(key, data, if_version=if_version, depends_on=depends_on, tags=tags,
                         cost_s=cost_s, serializer=serializer, timeout=timeout)

    def update(self, ref: ObjectRef, data: Any, **kwargs: Any) -> ObjectRef:
        """Put `data` as the version after `ref`, only if `ref` is still the latest version
        (else VersionConflict, with its current_version). Takes put's keyword arguments."""
        return self.put(ref.key, data, if_version=ref.version, **kwargs)

    def _put(self, key: str, data: Any, *, if_version: Optional[int],
             depends_on: Iterable[str], tags: Iterable[str], cost_s: Optional[float],
             serializer: Optional[Serializer], timeout: Optional[float],
             control: Optional[Control] = None) -> ObjectRef:
        options: dict[str, Any] = {}
        if if_version is not None:
            options["if_version"] = int(if_version)
        if depends_on:
            options["depends_on"] = list(depends_on)
        if tags:
            options["tags"] = list(tags)
        if cost_s is not None:
            options["cost_ms"] = max(0, round(cost_s * 1000))
        schema, batches = to_stream(data, serializer)
        with translated():
            writer, result_reader = self._flight.do_put(descriptor(key), schema,
                                                        options=self._options(timeout))
        error: Optional[BaseException] = None
        source_error: Optional[BaseException] = None
        raw: Optional[bytes] = None
        try:
            if options:
                writer.write_metadata(json.dumps(options).encode())
            wrote = False
            while True:
                try:  # the caller's side: the source, a cancellation, a bad batch
                    if control is not None:
                        control.check()
                    batch = next(batches, None)
                    if control is not None:  # cancelled while the source produced it
                        control.check()
                    if batch is not None and not batch.schema.equals(schema):
                        raise TypeError(f"put {key!r}: a batch's schema differs from the "
                                        f"stream's:\n{batch.schema}\nvs.\n{schema}")
                except BaseException as exc:  # pyarrow's too: not the server's error
                    source_error = exc
                    break
                if batch is None:
                    break
                writer.write_batch(batch)
                wrote = True
            if source_error is None:
                if not wrote:  # the first batch carries the version on get
                    writer.write_batch(pa.RecordBatch.from_pylist([], schema=schema))
                writer.done_writing()
                buf = result_reader.read()
                raw = None if buf is None else bytes(buf.to_pybytes())
        except (pa.ArrowException, flight.FlightError) as exc:
            error = exc  # the stream broke: the server ended the call; close() says why
        except BaseException as exc:  # e.g. KeyboardInterrupt inside a write
            source_error = exc
        if source_error is not None:
            _abort(writer, source_error)  # never commit half a stream
            raise source_error
        try:
            writer.close()
        except (pa.ArrowException, flight.FlightError) as exc:
            error = exc  # the server's final status; better than a write error
        if error is not None:
            mapped = translate(error)
            if mapped is error:
                raise error
            raise mapped from error
        if raw is None:
            raise RuntimeError(f"put {key!r}: the server sent no PutResult")
        return ObjectRef.from_json(raw)

    # -- reads -------------------------------------------------------------------------
    def _fetch(self, key: str, *, version: Optional[int] = None,
               if_none_match: Optional[int] = None, timeout: Optional[float] = None,
               control: Optional[Control] = None) -> FetchResult:
        """Conditional get: the table of `key` (at `version`, else the latest), or
        "not_modified" if that version is `if_none_match` (docs/api.md)."""
        ticket: dict[str, Any] = {"key": key}
        if version is not None:
            ticket["version"] = int(version)
        if if_none_match is not None:
            ticket["if_none_match"] = int(if_none_match)
        with translated():
            reader = self._flight.do_get(flight.Ticket(json.dumps(ticket).encode()),
                                         options=self._options(timeout))
            if control is not None:
                control.attach(reader)
            batches = []
            meta: Optional[dict[str, Any]] = None
            for chunk in self._chunks(reader):
                if meta is None and chunk.app_metadata is not None:
                    meta = json.loads(chunk.app_metadata.to_pybytes())
                if chunk.data is not None:
                    batches.append(chunk.data)
            schema = reader.schema
        if meta is None:
            # A stream without batches (a raw client's empty put; the SDK's puts always
            # send a batch): the server has no message to put the version on (it sends no
            # metadata-only message), so a second call asks for it. Racy by nature: a put
            # landing between the two calls makes this name the newer version (of a
            # `version`-less get); the data read is still whole.
            info = self.info(key, timeout=timeout, entry=False)
            meta = {"status": "ok", "key": key, "version": version or info.version,
                    "endpoint": info.ref.endpoint}
        ref = ObjectRef.from_json(meta)
        if meta.get("status") == "not_modified":
            return FetchResult("not_modified", None, ref)
        return FetchResult("ok", pa.Table.from_batches(batches, schema=schema), ref)

    def get(self, key_or_ref: KeyOrRef, *, version: Optional[int] = None,
            serializer: Optional[Serializer] = None, timeout: Optional[float] = None) -> Any:
        """The object: a pyarrow Table; bytes if it was put as bytes; the object itself if
        it was put with a serializer (pass the same one). An ObjectRef reads its version."""
        return self._get_with_meta(key_or_ref, version, serializer, timeout).value

    def get_with_meta(self, key_or_ref: KeyOrRef, *, version: Optional[int] = None,
                      serializer: Optional[Serializer] = None,
                      timeout: Optional[float] = None) -> ObjectResult[Any]:
        """Like get, with the ObjectRef of the version read and, with a client-side cache,
        where it came from (``.cache``)."""
        return self._get_with_meta(key_or_ref, version, serializer, timeout)

    def _get_with_meta(self, key_or_ref: KeyOrRef, version: Optional[int],
                       serializer: Optional[Serializer], timeout: Optional[float],
                       control: Optional[Control] = None) -> ObjectResult[Any]:
        key, version = _to_ref(key_or_ref, version)
        if self._cache is not None:
            from quiver._cached_reads import cached_read
            read = cached_read(self, key, version, timeout, control)
            return ObjectResult(from_table(read.table, key, serializer), read.ref, read.meta)
        fetched = self._fetch(key, version=version, timeout=timeout, control=control)
        return ObjectResult(from_table(fetched.table, key, serializer), fetched.ref)

    def info(self, key: str, *, timeout: Optional[float] = None,
             entry: bool = True) -> ObjectInfo:
        """The latest version's ObjectInfo (GetFlightInfo; with `entry`, also the `entries`
        action's metadata: created, last access, cost, dependencies, tags)."""
        for _ in range(3):
            with translated():
                fi = self._flight.get_flight_info(descriptor(key),
                                                  options=self._options(timeout))
            base = self._object_info(fi)
            if not entry:
                return base
            rows = self._entries(key, timeout).to_pylist()
            row = next((r for r in rows if r["key"] == key), None)
            if row is None or int(row["version"]) != base.version:
                continue  # changed between the two calls
            return ObjectInfo(
                key=base.key, version=base.version, rows=base.rows, bytes=base.bytes,
                schema=base.schema, ref=base.ref, created=_aware(row.get("created")),
                last_access=_aware(row.get("last_access")), expires=_aware(row.get("expires")),
                accesses=row.get("accesses"), cost_s=row.get("cost_s"),
                depends_on=tuple(row.get("depends_on") or ()), tags=tuple(row.get("tags") or ()))
        raise NotFound(f"{key!r} kept changing or disappeared while it was described")

    def _object_info(self, fi: Any) -> ObjectInfo:
        ref = ObjectRef.from_json(fi.app_metadata)
        return ObjectInfo(key=ref.key, version=ref.version, rows=int(fi.total_records),
                          bytes=int(fi.total_bytes), schema=fi.schema, ref=ref)

    def list(self, prefix: str = "", *, timeout: Optional[float] = None) -> List[ObjectInfo]:
        """Every object whose key starts with `prefix` (a plain string prefix), latest
        versions, in the server's order (ListFlights)."""
        with translated():
            infos = list(self._flight.list_flights(prefix.encode(),
                                                   options=self._options(timeout)))
        return [self._object_info(fi) for fi in infos if fi.app_metadata]

    # -- deletes -----------------------------------------------------------------------
    def delete(self, key: str, *, timeout: Optional[float] = None) -> Removed:
        """Delete every version of `key`; Removed(keys=()) if it did not exist."""
        out = self._action("delete", {"key": key}, timeout=timeout)
        return self._forget(Removed(tuple(out.get("deleted", ())), versions=out.get("versions")))

    def delete_prefix(self, prefix: str, *, timeout: Optional[float] = None) -> Removed:
        """Delete every key under `prefix`, by whole segments (`s` matches `s/...`)."""
        out = self._action("delete-prefix", {"prefix": prefix}, timeout=timeout)
        return self._forget(Removed(tuple(out.get("deleted", ())), versions=out.get("versions")))


def _aware(value: Any) -> Any:
    """pyarrow gives timestamp[ms, UTC] as aware datetimes already; None stays None."""
    if value is None or getattr(value, "tzinfo", None) is not None:
        return value
    return ms_to_datetime(value)
