"""A large query fill joined by several clients, against a real PostgreSQL: every reader gets
the whole result, late and slow readers included, and the server's memory does not grow with
the result (joiners read what the fill has written so far from the entry's file).

The fill stops at a row in the middle until the test releases a PostgreSQL advisory lock, so
"this client joined while the fill ran" is an event the test waits for, not a race.
"""

import hashlib
import json
import threading
import time

import pyarrow.compute as pc
import pytest

from pg_util import postgres  # noqa: F401  (session fixture)
from quiver_util import chunks, write_config
from query_util import stats, ticket, wait_for

ROWS = 1_500_000
LOCK = 4242
RESULT_BYTES = ROWS * (8 + 128 + 4)  # a lower bound of the result's size (200 MiB)


def gated_sql(gate_row):
    """About 200 MiB of Arrow data (an int8 and a 128-character string a row) that stops at
    row `gate_row` while the test holds the advisory lock LOCK."""
    return (f"SELECT g.i, repeat(md5(g.i::text), 4) AS h, "
            f"CASE WHEN g.i = {gate_row} THEN pg_advisory_xact_lock_shared({LOCK})::text "
            f"END AS gate FROM generate_series(1, {ROWS}) AS g(i)")


def start_server(quiver, postgres, workdir, **settings):  # noqa: F811
    config = write_config(workdir, "pg.json", {"sources": {"pg": {
        "driver": "postgresql", "uri": postgres.uri, "max_concurrent": 8, "max_queue": 64,
        "statement_options": {"adbc.postgresql.batch_size_hint_bytes": str(1 << 20)}}},
        **settings})
    srv = quiver(args=["--config", str(config)])
    # Idle: the driver loaded, a connection made, a small result streamed and cached.
    c = srv.client()
    warm = c.do_get(ticket(source="pg", sql="SELECT g.i FROM generate_series(1, 1000) g(i)"))
    assert warm.read_all().num_rows == 1000
    wait_for(lambda: stats(c)["entries"] == 1, what="the warm-up result to be cached")
    return srv


class Rss:
    """The server's resident memory: idle when made, then the peak until stop() -- sampled
    every 20 ms, and the kernel's high-water mark (VmHWM), which misses no peak."""

    def __init__(self, pid):
        self.pid = pid
        self.idle = self.read("VmRSS")
        self.sampled = self.idle
        self.hwm = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self._thread.start()

    def read(self, field):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")

    def _sample(self):
        while not self._stop.is_set():
            self.sampled = max(self.sampled, self.read("VmRSS"))
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.hwm = self.read("VmHWM")
        return max(self.sampled, self.hwm) - self.idle

    def __str__(self):
        mib = 2**20
        return (f"server RSS idle {self.idle / mib:.0f} MiB, peak sampled "
                f"{self.sampled / mib:.0f} MiB, VmHWM {self.hwm / mib:.0f} MiB")


class Reader(threading.Thread):
    """One client reading `sql` to its end, keeping a digest of every batch (not the batches:
    copies of the result for every reader would not fit in the test's memory). `pause`, if
    given, is called after the first batch (a reader that stalls); `delay_s` is slept after
    every batch (a slow reader)."""

    def __init__(self, srv, sql, pause=None, delay_s=0):
        super().__init__()
        self.client = srv.client()
        self.sql = sql
        self.pause = pause
        self.delay_s = delay_s
        self.rows = 0
        self.batches = 0
        self.total = 0
        self.digest = hashlib.sha256()
        self.meta = None
        self.error = None

    def run(self):
        try:
            reader = self.client.do_get(ticket(source="pg", sql=self.sql))
            for chunk in chunks(reader):
                if self.meta is None and chunk.app_metadata is not None:
                    self.meta = json.loads(chunk.app_metadata.to_pybytes())
                batch = chunk.data
                if batch is None:
                    continue
                self.digest.update(batch.serialize())
                self.rows += batch.num_rows
                self.total += pc.sum(batch.column("i")).as_py()
                self.batches += 1
                if self.batches == 1 and self.pause:
                    self.pause()
                if self.delay_s:
                    time.sleep(self.delay_s)
        except Exception as e:  # reported by the test
            self.error = repr(e)


class Gate:
    """Holds the advisory lock the query waits for at its gate row, until open()."""

    def __init__(self, postgres):  # noqa: F811
        self.con = postgres.connect()
        self.cur = self.con.cursor()
        self.cur.execute(f"SELECT pg_advisory_lock({LOCK})")
        self.cur.fetchall()
        self.opened = False

    def open(self):
        """Let the query go on (closing the connection releases the lock)."""
        if not self.opened:
            self.opened = True
            self.cur.close()
            self.con.close()


def finish(readers):
    for r in readers:
        r.join(timeout=300)
        assert not r.is_alive(), "a reader did not finish"
    assert not [r.error for r in readers if r.error], [r.error for r in readers]
    for r in readers:
        assert r.rows == ROWS and r.total == ROWS * (ROWS + 1) // 2, (r.rows, r.total)
        assert r.digest.hexdigest() == readers[0].digest.hexdigest(), "results differ"


@pytest.fixture
def gates(postgres):  # noqa: F811
    made = []

    def make():
        made.append(Gate(postgres))
        return made[-1]

    yield make
    for gate in made:  # a test that failed before opening its gate
        gate.open()


def test_joined_large_fill_streams_whole_to_every_reader_in_bounded_memory(
        quiver, postgres, workdir, gates):  # noqa: F811
    srv = start_server(quiver, postgres, workdir)
    c = srv.client()
    gate_row = 600_000  # about 80 MiB in
    sql = gated_sql(gate_row)
    rss = Rss(srv.proc.pid)
    gate = gates()
    watcher = srv.client()
    early = [Reader(srv, sql) for _ in range(3)]
    # Reads one batch, then nothing until the result is committed: the fill must not wait
    # for it.
    slow = Reader(srv, sql, pause=lambda: wait_for(
        lambda: stats(watcher)["entries"] == 2, timeout=120,
        what="the fill to commit while a reader stalls"))
    for r in early + [slow]:
        r.start()
    # The fill runs, about to stop at its gate: the early readers got most of what is before.
    wait_for(lambda: all(r.rows >= gate_row // 2 for r in early) or
             any(r.error for r in early), timeout=60, what="the early readers' rows")
    assert stats(c)["queries"]["executions"] == 2
    late = Reader(srv, sql)
    late.start()
    wait_for(lambda: stats(c)["queries"]["joins"] == 4 or late.error, timeout=60,
             what="the late reader to join the running fill")
    gate.open()
    readers = early + [slow, late]
    finish(readers)
    growth = rss.stop()

    assert late.meta["cache"] == "miss" and late.meta["joined"] is True, late.meta
    assert sum(1 for r in readers if r.meta["joined"]) == 4
    s = stats(c)
    assert s["queries"]["executions"] == 2, "the query ran more than once"
    assert s["entries"] == 2
    print(f"\n{len(readers)} readers of a {s['bytes'] / 2**20:.0f} MiB fill: {rss}; "
          f"growth {growth / 2**20:.0f} MiB")
    assert growth < RESULT_BYTES / 4, f"server RSS grew by {growth / 2**20:.0f} MiB: {rss}"
    # The result is served whole from the store afterwards.
    hit = Reader(srv, sql)
    hit.run()
    assert hit.error is None and hit.meta["cache"] == "hit"
    assert hit.digest.hexdigest() == early[0].digest.hexdigest()


def test_a_fill_past_max_entry_bytes_streams_whole_to_every_attached_reader(
        quiver, postgres, workdir, gates):  # noqa: F811
    srv = start_server(quiver, postgres, workdir, max_entry_bytes="40MiB",
                       fill_memory_bytes="16MiB")
    c = srv.client()
    sql = gated_sql(100_000)  # about 13 MiB in: every reader joins before the limit
    rss = Rss(srv.proc.pid)
    gate = gates()
    # Past the limit the rest is kept in memory, at most 16 MiB ahead of the slowest
    # reader, which takes a few seconds over what the database sends in one or two.
    readers = [Reader(srv, sql), Reader(srv, sql), Reader(srv, sql, delay_s=0.03)]
    for r in readers:
        r.start()
    wait_for(lambda: stats(c)["queries"]["joins"] == 2 or any(r.error for r in readers),
             timeout=60, what="two readers to join the fill")
    gate.open()
    finish(readers)
    growth = rss.stop()
    assert sum(1 for r in readers if r.meta["joined"]) == 2
    wait_for(lambda: stats(c)["queries"]["not_cached"] == 1, what="the fill to end uncached")
    assert stats(c)["entries"] == 1, "only the warm-up result is cached"
    assert not srv.tmp_files(), "the oversized result's temp file must go"
    assert stats(c)["queries"]["executions"] == 2
    print(f"\n{len(readers)} readers of a fill past max_entry_bytes: {rss}; "
          f"growth {growth / 2**20:.0f} MiB")
    assert growth < RESULT_BYTES / 4, f"server RSS grew by {growth / 2**20:.0f} MiB: {rss}"
