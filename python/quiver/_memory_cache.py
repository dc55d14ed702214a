"""MemoryCache: a private, byte-bounded LRU of cached entries of one process.

Thread safety: every method may be called from any thread (one lock guards the map).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Optional, TypeVar

V = TypeVar("V")


class MemoryCache(Generic[V]):
    """Least recently used entries are dropped first once their sizes exceed `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"memory_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, entry_id: str) -> Optional[V]:
        with self._lock:
            item = self._items.get(entry_id)
            if item is None:
                return None
            self._items.move_to_end(entry_id)
            return item[0]

    def put(self, entry_id: str, value: V, nbytes: int) -> bool:
        """Insert or replace; False (and nothing kept) if `nbytes` alone exceeds the bound."""
        with self._lock:
            self._pop_locked(entry_id)
            if nbytes > self.max_bytes:
                return False
            self._items[entry_id] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size
            return True

    def remove(self, entry_id: str) -> None:
        with self._lock:
            self._pop_locked(entry_id)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _pop_locked(self, entry_id: str) -> None:
        item = self._items.pop(entry_id, None)
        if item is not None:
            self._bytes -= item[1]
