"""DiskCache: a size-bounded directory of Arrow IPC files shared by the processes of a machine.

Layout of the directory (docs/python.md, "Client-side cache", describes it for users):

    DIR/entries/<id>.arrow   one entry: an Arrow IPC file followed by a 16-byte trailer
                             (little-endian u64 length of the IPC file, u32 crc32 of it, b"QVC1")
    DIR/tmp/                 files being written, renamed into entries/ once complete
    DIR/lock                 fcntl.flock lock, held exclusively to publish, remove and evict;
                             opened read-only (flock needs no write access), created 0666 less
                             the umask, so processes of other users can share the directory
    DIR/usage                the total bytes of entries/, as text; read and replaced (written to
                             tmp/, renamed) under the lock
    DIR/invalidated/<id>     marker files: their modification time is the last invalidation
                             sent by a client of one endpoint (see client_cache.py)

Each entry's file times carry its bookkeeping: the access time is the last use (the LRU order:
eviction removes the least recently used first) and the modification time is when the entry
was last validated against the server.

Thread and process safety: any number of threads and processes may share one directory.
An entry is written under a unique temporary name and renamed into place, so a reader opens
a whole old file, a whole new file, or nothing; reads take no lock. Nothing is fsynced: a
file torn by a crash fails its checksum, and a file that fails its checksum or does not parse
is removed and reported as a miss, never served. flock locks belong to an open file
description, so the lock also orders threads of one process.

The cache is an optimisation: it never fails a read. An I/O error (a full disk, a file of
another user, a directory gone) makes the operation a miss or a skipped store, counted in
``io_errors`` and logged once per DiskCache as a warning (then at debug level). The lock is
taken with LOCK_NB and retried until the caller's deadline (at most MAX_LOCK_WAIT_S): a
process that holds it too long makes the others skip the store (``lock_timeouts``), never
wait for it. Access-time updates (the LRU order) are best effort: a file of another user
keeps its times.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import mmap
import os
import stat
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
MAX_LOCK_WAIT_S = 5.0  # the longest a cache operation waits for DIR/lock

log = logging.getLogger("quiver.client_cache")


class LockTimeout(Exception):
    """DIR/lock was not free before the deadline (internal: the operation is skipped)."""


def lock_deadline(deadline: Optional[float]) -> float:
    """The monotonic deadline for taking the lock: the caller's, at most MAX_LOCK_WAIT_S."""
    cap = time.monotonic() + MAX_LOCK_WAIT_S
    return cap if deadline is None else min(deadline, cap)


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
        self.directory.mkdir(parents=True, exist_ok=True)
        # Subdirectories are as shared as the directory (e.g. 0777 or 2775 for several
        # users), without its sticky bit: replacing another user's file must stay possible.
        self._dir_mode = stat.S_IMODE(self.directory.stat().st_mode) & ~stat.S_ISVTX
        for sub in (self._entries, self._tmp):
            self._make_dir(sub)
        self._lock_path = self.directory / "lock"
        self._usage_path = self.directory / "usage"
        self._markers = self.directory / "invalidated"
        self.corrupt_removed = 0  # files found corrupt and removed by this process
        self.io_errors = 0  # operations skipped because of an I/O error
        self.lock_timeouts = 0  # operations skipped because DIR/lock stayed busy
        self._warned = False

    def _make_dir(self, path: Path) -> None:
        try:
            path.mkdir()
        except FileExistsError:
            return
        os.chmod(path, self._dir_mode)  # not left to the umask

    def path(self, entry_id: str) -> Path:
        return self._entries / f"{entry_id}.arrow"

    # -- reading ---------------------------------------------------------------------------
    def get(self, entry_id: str, deadline: Optional[float] = None) -> Optional[DiskEntry]:
        """The entry, or None when absent, corrupt (the file is removed) or unreadable."""
        path = self.path(entry_id)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._failed("read", exc)
            return None
        try:
            st = os.fstat(fd)
            try:
                table, meta = _read_entry(fd, st.st_size)
            except (pa.ArrowException, ValueError, KeyError, TypeError):
                self._remove_if_same(path, st, deadline)
                return None
            with contextlib.suppress(OSError):  # best effort: e.g. another user's file
                os.utime(fd, ns=(time.time_ns(), st.st_mtime_ns))  # the LRU's access time
            return DiskEntry(table, meta, st.st_mtime_ns // 1_000_000, st.st_size)
        except OSError as exc:
            self._failed("read", exc)
            return None
        finally:
            os.close(fd)

    # -- writing ---------------------------------------------------------------------------
    def put(self, entry_id: str, table: pa.Table, meta: dict[str, Any],
            validated_ms: int, deadline: Optional[float] = None) -> bool:
        """Store `table` with `meta` under `entry_id`, replacing any entry there; evict least
        recently used entries beyond the bound. False if nothing was stored: the entry
        alone exceeds the bound, an I/O error, or the lock stayed busy until `deadline`."""
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
            with self._locked(deadline):
                try:
                    old = final.stat().st_size
                except FileNotFoundError:
                    old = 0
                # Before the rename: a missing usage file is rebuilt by a scan, which must
                # not see the new file (it is added below).
                before = self._read_usage_locked()
                os.rename(tmp, final)
                total = before + size - old
                if total > self.max_bytes:
                    total = self._evict_locked(int(self.max_bytes * _LOW_WATER), keep=final)
                self._write_usage_locked(total)
            return True
        except (OSError, LockTimeout) as exc:
            self._failed("store", exc)
            return False
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()  # still there unless renamed into place

    def mark_validated(self, entry_id: str, validated_ms: int) -> None:
        """Record that the entry was found current at `validated_ms` (also an access).
        Best effort: another user's file keeps its times."""
        with contextlib.suppress(OSError):
            os.utime(self.path(entry_id), ns=(time.time_ns(), validated_ms * 1_000_000))

    def remove(self, entry_id: str, deadline: Optional[float] = None) -> bool:
        """Remove the entry; False if it could not be (an I/O error, the lock busy)."""
        path = self.path(entry_id)
        try:
            with self._locked(deadline):
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    return True
                before = self._read_usage_locked()  # a rebuilding scan still sees the file
                path.unlink()
                self._write_usage_locked(max(0, before - size))
            return True
        except (OSError, LockTimeout) as exc:
            self._failed("remove", exc)
            return False

    def usage(self) -> int:
        """Total bytes of the entries (exact: rescans the directory and rewrites DIR/usage)."""
        with self._locked(None):
            total = sum(size for _, size, _ in self._scan_locked())
            self._write_usage_locked(total)
            return total

    def recorded_usage(self) -> Optional[int]:
        """The running total kept in DIR/usage (None if missing), without rescanning."""
        try:
            return int(self._usage_path.read_text())
        except (OSError, ValueError):
            return None

    # -- invalidation markers ----------------------------------------------------------------
    def note_invalidation(self, marker: str, at_ms: int) -> None:
        """Record in DIR/invalidated/`marker` that an invalidation was sent at `at_ms`."""
        # Replaced, not touched: works when another user's process created the marker.
        tmp = self._tmp / f"marker.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            self._make_dir(self._markers)
            os.close(os.open(tmp, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o666))
            os.utime(tmp, ns=(at_ms * 1_000_000, at_ms * 1_000_000))
            os.replace(tmp, self._markers / marker)
        except OSError as exc:
            self._failed("record an invalidation", exc)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def invalidated_ms(self, marker: str) -> int:
        """When the last invalidation recorded under `marker` was sent (0: never)."""
        try:
            return os.stat(self._markers / marker).st_mtime_ns // 1_000_000
        except FileNotFoundError:
            return 0
        except OSError as exc:
            self._failed("read an invalidation marker", exc)
            return 0

    # -- internals -------------------------------------------------------------------------
    def _failed(self, what: str, exc: BaseException) -> None:
        if isinstance(exc, LockTimeout):
            self.lock_timeouts += 1
        else:
            self.io_errors += 1
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "client cache %s: could not %s (%s); served without the disk cache",
                self.directory, what, exc)

    @contextlib.contextmanager
    def _locked(self, deadline: Optional[float]) -> Iterator[None]:
        """Hold DIR/lock; LockTimeout if it is not free by `deadline` (lock_deadline)."""
        until = lock_deadline(deadline)
        fd = os.open(self._lock_path, os.O_RDONLY | os.O_CREAT, 0o666)
        try:
            pause = 0.002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = until - time.monotonic()
                    if left <= 0:
                        raise LockTimeout(f"{self._lock_path} stayed locked by another "
                                          "process") from None
                    time.sleep(min(pause, left))
                    pause = min(pause * 2, 0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _remove_if_same(self, path: Path, st: os.stat_result,
                        deadline: Optional[float]) -> None:
        """Remove a corrupt file unless a writer has meanwhile renamed a new one into place."""
        try:
            with self._locked(deadline):
                try:
                    now = path.stat()
                except FileNotFoundError:
                    return
                if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                    before = self._read_usage_locked()
                    path.unlink()
                    self.corrupt_removed += 1
                    self._write_usage_locked(max(0, before - st.st_size))
        except (OSError, LockTimeout) as exc:
            self._failed("remove a corrupt entry", exc)

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
                with contextlib.suppress(OSError):  # gone, or another user's (sticky dir)
                    # ctime: a temp file's mtime is set to its validation time, maybe old.
                    if e.stat().st_ctime < cutoff:
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
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                continue  # not removable by this user: still counted
            total -= size
        return total

    def _read_usage_locked(self) -> int:
        try:
            return int(self._usage_path.read_text())
        except (OSError, ValueError):
            return sum(size for _, size, _ in self._scan_locked())

    def _write_usage_locked(self, total: int) -> None:
        # Replaced, not rewritten: works when another user's process created the file.
        tmp = self._tmp / f"usage.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                os.write(fd, str(total).encode())
            finally:
                os.close(fd)
            os.replace(tmp, self._usage_path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()


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
