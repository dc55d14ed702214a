"""Client-side cache of objects (stub: implemented on another branch).

cached_get(client, key, version) returns the pyarrow Table of `key` (at `version`, or the
latest), from the client's cache when it may, otherwise through client._fetch.
"""

from typing import Any, Optional


def cached_get(client: Any, key: str, version: Optional[int]) -> Any:
    raise NotImplementedError
