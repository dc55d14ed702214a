"""A real PostgreSQL server for the tests: its own cluster in a temp dir, on a free
127.0.0.1 port, stopped and removed at the end of the session.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres`
system user (Debian's postgresql package creates it) and its commands run through runuser.

Also here, for the shared-mode tests and bench/shared_bench.py: a slow query that streams
batches between pg_sleep pauses and records each of its executions in the database
(install_execution_log, slow_sql, executions), and a quiver config with the database as
source `pg` (source_config).
"""

import glob
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from quiver_util import free_port


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"PostgreSQL's {name} not found under /usr/lib/postgresql "
                    "(scripts/setup.sh installs the postgresql package)", pytrace=False)
    return found[-1]


class PostgresCluster:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="quiver-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.proc = None
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _cmd(self, *args):
        return (["runuser", "-u", "postgres", "--"] if self.as_postgres else []) + list(args)

    def start(self):
        subprocess.run(self._cmd(_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                                 "--no-sync", "-E", "UTF8"),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.log = open(os.path.join(self.root, "postgres.log"), "wb")
        self.proc = subprocess.Popen(
            self._cmd(_bin("postgres"), "-D", self.data, "-p", str(self.port),
                      "-c", "listen_addresses=127.0.0.1", "-k", self.root, "-c", "fsync=off",
                      "-c", "max_connections=200"),
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run(self._cmd(_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)),
                             stdout=subprocess.DEVNULL).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("PostgreSQL did not start:\n" +
                                     open(os.path.join(self.root, "postgres.log")).read())
            time.sleep(0.1)
        subprocess.run(self._cmd(_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                 "-U", "postgres", "quiver_test"), check=True)
        return self

    @property
    def uri(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/quiver_test"

    def connect(self):
        """A DB-API connection through the ADBC PostgreSQL driver (autocommit)."""
        import adbc_driver_postgresql.dbapi as pgdb
        return pgdb.connect(self.uri, autocommit=True)

    def execute(self, sql):
        with self.connect() as con, con.cursor() as cur:
            cur.execute(sql)
            try:
                return cur.fetchall()
            except Exception:
                return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


# -- a slow query that the database counts ---------------------------------------------------


def install_execution_log(pg):
    """(Re)create the table in which count_execution(tag) records an execution of a query
    tagged `tag`, so that the database itself counts how often a query ran."""
    pg.execute("DROP TABLE IF EXISTS query_executions")
    pg.execute("CREATE TABLE query_executions (n serial PRIMARY KEY, tag text)")
    pg.execute("""CREATE OR REPLACE FUNCTION count_execution(tag text) RETURNS int
                  LANGUAGE plpgsql VOLATILE AS $$
                  BEGIN INSERT INTO query_executions (tag) VALUES (tag); RETURN 1; END $$""")


def executions(pg, tag):
    """How many times the query tagged `tag` ran (install_execution_log first)."""
    return pg.execute(f"SELECT count(*) FROM query_executions WHERE tag = '{tag}'")[0][0]


def slow_sql(tag, rows=60_000, pauses=4, pause_s=0.3, first_s=0.3):
    """A query that pauses first_s, then streams `rows` generated rows with `pauses` pauses
    of pause_s spread over them (batches come out between the pauses). Each execution is
    recorded under `tag` (a new tag is also a new cache key)."""
    every = max(1, rows // pauses)
    return (f"SELECT g.i, md5(g.i::text) AS h, "
            f"CASE WHEN g.i % {every} = 0 THEN pg_sleep({pause_s:.3f})::text END AS pause, "
            f"c.one FROM (SELECT count_execution('{tag}') AS one, pg_sleep({first_s:.3f})) c, "
            f"generate_series(1, {rows}) AS g(i)")


def source_config(uri, max_queue=256, **extra):
    """A `quiver serve --config` document (a dict) with the database at `uri` as source `pg`
    through the ADBC driver, 64 KiB batches; `extra` adds top-level settings."""
    return {"sources": {"pg": {"driver": "postgresql", "uri": uri, "max_concurrent": 16,
                               "max_queue": max_queue, "statement_options": {
                                   "adbc.postgresql.batch_size_hint_bytes": "65536"}}},
            **extra}
