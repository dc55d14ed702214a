"""Client-cache work done in a process of its own by tests/test_sdk_client_cache.py.

usage:
  sdk_cache_job.py get LOCATION DISK_DIR KEY [offline]
      get_with_meta KEY through a ClientCache on DISK_DIR (memory tier off); prints the
      result's CacheMeta and the table's rows as one JSON line.
  sdk_cache_job.py churn DISK_DIR WRITER ROUNDS
      store and read entries k0..k3 of a ClientCache on DISK_DIR ROUNDS times, each table
      filled with WRITER's marker; prints how many reads found a table that was not one
      writer's whole table (must be 0) and how many corrupt files this process removed.
  sdk_cache_job.py as-nobody LOCATION DISK_DIR KEY...
      as user nobody (dropping root after the imports: the interpreter lives where nobody
      cannot read), get_with_meta each KEY through a ClientCache on DISK_DIR; prints each
      result's source and the disk tier's io_errors.
"""

import json
import os
import sys
from dataclasses import asdict

import pyarrow as pa

import quiver


def get(location, disk_dir, key, offline=False):
    cache = quiver.ClientCache(memory_bytes=0, disk_dir=disk_dir)
    with quiver.connect(location, cache=cache, offline=offline) as client:
        result = client.get_with_meta(key)
    print(json.dumps({"meta": asdict(result.cache), "rows": result.value.to_pylist()}))


def churn(disk_dir, writer, rounds):
    cache = quiver.ClientCache(memory_bytes=0, disk_dir=disk_dir, disk_bytes=64 << 20)
    torn = reads = 0
    for i in range(rounds):
        n = 1000 + (i * 7919) % 50000  # sizes vary so that files are replaced by others
        cache.store(f"k{i % 4}", pa.table({"writer": [writer] * n, "n": [n] * n}),
                    {"writer": writer}, 0)
        entry = cache.lookup(f"k{(i + 1) % 4}")
        if entry is not None:
            reads += 1
            t = entry.table
            writers, ns = set(t.column("writer").to_pylist()), set(t.column("n").to_pylist())
            if len(writers) != 1 or ns != {t.num_rows} or entry.info != {"writer": writers.pop()}:
                torn += 1
    print(json.dumps({"reads": reads, "torn": torn, "corrupt": cache.disk.corrupt_removed}))


def as_nobody(location, disk_dir, *keys):
    import quiver._cached_reads  # noqa: F401  (everything it uses, before losing access)
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    cache = quiver.ClientCache(memory_bytes=0, disk_dir=disk_dir)
    with quiver.connect(location, cache=cache) as client:
        sources = {k: client.get_with_meta(k).cache.source for k in keys}
    print(json.dumps({"uid": os.getuid(), "sources": sources,
                      "io_errors": cache.disk.io_errors}))


if __name__ == "__main__":
    if sys.argv[1] == "get":
        get(*sys.argv[2:5], offline=sys.argv[5:] == ["offline"])
    elif sys.argv[1] == "as-nobody":
        as_nobody(*sys.argv[2:])
    else:
        churn(sys.argv[2], sys.argv[3], int(sys.argv[4]))
