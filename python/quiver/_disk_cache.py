"""DiskCache: a size-bounded directory of Arrow IPC files shared by the processes of a machine.

Layout of the directory (docs/python.md, "Client-side cache", describes it for users):

    DIR/entries/<id>.arrow   one entry: an Arrow IPC file followed by a 16-byte trailer
                             (little-endian u64 length of the IPC file, u32 crc32 of it, b"QVC1")
    DIR/tmp/                 files being written, renamed into entries/ once complete
    DIR/lock                 fcntl.flock lock, held exclusively to publish, remove and evict
    DIR/usage                the total bytes of entries/, as text; read and written under the lock

Each entry's file times carry its bookkeeping: the access time is the last use (the LRU order:
eviction removes the least recently used first) and the modification time is when the entry
was last validated against the server.

Thread and process safety: any number of threads and processes may share one directory.
An entry is written under a unique temporary name and renamed into place, so a reader opens
a whole old file, a whole new file, or nothing; reads take no lock. Nothing is fsynced: a
file torn by a crash fails its checksum, and a file that fails its checksum or does not parse
is removed and reported as a miss, never served. flock locks belong to an open file
description, so the lock also orders threads of one process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import os
import struct
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import pyarrow as pa
import pyarrow.ipc as ipc

_MAGIC = b"QVC1"
_TRAILER = struct.Struct("<QI4s")
_META_KEY = b"quiver.client_cache"
_LOW_WATER = 0.9  # an eviction frees down to this fraction of the bound
_STALE_TMP_S = 3600  # temp files older than this are left over from crashed writers


@dataclass
class DiskEntry:
    """One entry read back: the table, the metadata it was stored with, when last validated."""

    table: pa.Table
    meta: dict[str, Any]
    validated_ms: int
    nbytes: int  # size of the file


class DiskCache:
    """A bounded, LRU, multi-process cache of Arrow tables in one directory."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"disk_bytes must be > 0, got {max_bytes}")
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self._entries = self.directory / "entries"
        self._tmp = self.directory / "tmp"
        self._entries.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.directory / "lock"
        self._usage_path = self.directory / "usage"
        self.corrupt_removed = 0  # files found corrupt and removed by this process

    def path(self, entry_id: str) -> Path:
        return self._entries / f"{entry_id}.arrow"

    # -- reading ---------------------------------------------------------------------------
    def get(self, entry_id: str) -> Optional[DiskEntry]:
        """The entry, or None when absent or corrupt (a corrupt file is removed)."""
        path = self.path(entry_id)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            try:
                table, meta = _read_entry(fd, st.st_size)
            except (pa.ArrowException, ValueError, OSError, KeyError, TypeError):
                self._remove_if_same(path, st)
                return None
            now_ns = time.time_ns()
            os.utime(fd, ns=(now_ns, st.st_mtime_ns))  # the LRU's access time
            return DiskEntry(table, meta, st.st_mtime_ns // 1_000_000, st.st_size)
        finally:
            os.close(fd)

    # -- writing ---------------------------------------------------------------------------
    def put(self, entry_id: str, table: pa.Table, meta: dict[str, Any],
            validated_ms: int) -> bool:
        """Store `table` with `meta` under `entry_id`, replacing any entry there; evict least
        recently used entries beyond the bound. False if the entry alone exceeds the bound."""
        if table.nbytes > self.max_bytes:
            return False
        tmp = self._tmp / f"{entry_id}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            size = _write_entry(tmp, table, meta)
            if size > self.max_bytes:
                tmp.unlink()
                return False
            os.utime(tmp, ns=(time.time_ns(), validated_ms * 1_000_000))
            final = self.path(entry_id)
            with self._locked():
                try:
                    old = final.stat().st_size
                except FileNotFoundError:
                    old = 0
                os.rename(tmp, final)
                total = self._read_usage_locked() + size - old
                if total > self.max_bytes:
                    total = self._evict_locked(int(self.max_bytes * _LOW_WATER), keep=final)
                self._write_usage_locked(total)
            return True
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def mark_validated(self, entry_id: str, validated_ms: int) -> None:
        """Record that the entry was found current at `validated_ms` (also an access)."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path(entry_id), ns=(time.time_ns(), validated_ms * 1_000_000))

    def remove(self, entry_id: str) -> None:
        path = self.path(entry_id)
        with self._locked():
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            self._write_usage_locked(max(0, self._read_usage_locked() - size))

    def usage(self) -> int:
        """Total bytes of the entries (exact: rescans the directory)."""
        with self._locked():
            total = sum(size for _, size, _ in self._scan_locked())
            self._write_usage_locked(total)
            return total

    # -- internals -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _remove_if_same(self, path: Path, st: os.stat_result) -> None:
        """Remove a corrupt file unless a writer has meanwhile renamed a new one into place."""
        with self._locked():
            try:
                now = path.stat()
            except FileNotFoundError:
                return
            if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                path.unlink()
                self.corrupt_removed += 1
                self._write_usage_locked(max(0, self._read_usage_locked() - st.st_size))

    def _scan_locked(self) -> list[tuple[Path, int, int]]:
        """(path, size, atime_ns) of every entry; removes temp files of crashed writers."""
        found = []
        with os.scandir(self._entries) as it:
            for e in it:
                with contextlib.suppress(FileNotFoundError):
                    st = e.stat()
                    found.append((Path(e.path), st.st_size, st.st_atime_ns))
        cutoff = time.time() - _STALE_TMP_S
        with os.scandir(self._tmp) as it:
            for e in it:
                with contextlib.suppress(FileNotFoundError):
                    if e.stat().st_mtime < cutoff:
                        os.unlink(e.path)
        return found

    def _evict_locked(self, target: int, keep: Path) -> int:
        entries = self._scan_locked()
        total = sum(size for _, size, _ in entries)
        for path, size, _ in sorted(entries, key=lambda e: e[2]):
            if total <= target:
                break
            if path == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                total -= size
        return total

    def _read_usage_locked(self) -> int:
        try:
            return int(self._usage_path.read_text())
        except (FileNotFoundError, ValueError):
            return sum(size for _, size, _ in self._scan_locked())

    def _write_usage_locked(self, total: int) -> None:
        self._usage_path.write_text(str(total))


def _write_entry(path: Path, table: pa.Table, meta: dict[str, Any]) -> int:
    """Write the IPC file and its trailer; returns the file's size."""
    schema = table.schema.with_metadata(
        {**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
    with pa.OSFile(str(path), "wb") as sink:
        with ipc.new_file(sink, schema) as writer:
            writer.write_table(table.replace_schema_metadata(schema.metadata))
    length = path.stat().st_size
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    with open(path, "ab") as f:
        f.write(_TRAILER.pack(length, crc, _MAGIC))
    return length + _TRAILER.size


def _read_entry(fd: int, size: int) -> tuple[pa.Table, dict[str, Any]]:
    """Check the trailer and checksum, then read the IPC file (memory-mapped, no copy)."""
    if size < _TRAILER.size:
        raise ValueError("truncated entry")
    mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    view = memoryview(mapped)
    length, crc, magic = _TRAILER.unpack(view[size - _TRAILER.size:])
    if magic != _MAGIC or length != size - _TRAILER.size:
        raise ValueError("bad trailer")
    if zlib.crc32(view[:length]) != crc:
        raise ValueError("checksum mismatch")
    table = ipc.open_file(pa.py_buffer(mapped).slice(0, length)).read_all()
    metadata = dict(table.schema.metadata or {})
    meta = json.loads(metadata.pop(_META_KEY))
    return table.replace_schema_metadata(metadata or None), meta
