"""Cache management calls (docs/management.md): stats, entries, invalidation, shrink,
run-time settings."""

from __future__ import annotations

from typing import Any, Optional

from quiver._base import ClientBase
from quiver.results import Removed


class AdminMixin(ClientBase):
    def stats(self, *, timeout: Optional[float] = None) -> dict[str, Any]:
        """The server's counters (the `stats` action), as a dict."""
        out: dict[str, Any] = self._action("stats", timeout=timeout)
        return out

    def entries(self, prefix: Optional[str] = None, *,
                timeout: Optional[float] = None) -> Any:
        """Entry metadata, one row per key (plain string `prefix`), as a pyarrow Table."""
        return self._entries(prefix, timeout)

    def invalidate(self, key: str, *, cascade: bool = True,
                   timeout: Optional[float] = None) -> Removed:
        """Remove `key` and (with `cascade`) everything derived from it."""
        out = self._action("invalidate", {"key": key, "cascade": cascade}, timeout=timeout)
        return self._forget(Removed(tuple(out.get("removed", ()))))

    def invalidate_tag(self, tag: str, *, timeout: Optional[float] = None) -> Removed:
        """Remove every entry tagged `tag`, and what depends on them."""
        out = self._action("invalidate-tag", {"tag": tag}, timeout=timeout)
        return self._forget(Removed(tuple(out.get("removed", ()))))

    def shrink(self, *, one: bool = False, below_bytes: Optional[int | str] = None,
               dry_run: bool = False, timeout: Optional[float] = None) -> Removed:
        """Evict the lowest-scored entry (`one`), or as many as needed to hold at most
        `below_bytes` (bytes, or a size like "10GiB"); `dry_run` only says which."""
        if one == (below_bytes is not None):
            raise ValueError("shrink takes one=True or below_bytes=..., not both or neither")
        body: dict[str, Any] = {"one": True} if one else {"below_bytes": below_bytes}
        if dry_run:
            body["dry_run"] = True
        out = self._action("shrink", body, timeout=timeout)
        removed = Removed(tuple(out.get("removed", ())), dry_run=bool(out.get("dry_run")))
        return removed if removed.dry_run else self._forget(removed)

    def config_get(self, name: Optional[str] = None, *,
                   timeout: Optional[float] = None) -> Any:
        """The run-time settings as a dict, or the value of setting `name`."""
        settings: dict[str, Any] = self._action("config-get", timeout=timeout)
        if name is None:
            return settings
        if name not in settings:
            raise KeyError(f"no setting {name!r}; settings are {sorted(settings)}")
        return settings[name]

    def config_set(self, name: str, value: Any, *,
                   timeout: Optional[float] = None) -> dict[str, Any]:
        """Change run-time setting `name` (half_life, cache_size, memory_size; sizes may be
        strings like "4MiB"); returns every setting after the change."""
        out: dict[str, Any] = self._action("config-set", {name: value}, timeout=timeout)
        return out
