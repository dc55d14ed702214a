"""A real PostgreSQL server for the tests: its own cluster in a temp dir, on a free
127.0.0.1 port, stopped and removed at the end of the session.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres`
system user (Debian's postgresql package creates it) and its commands run through runuser.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"PostgreSQL's {name} not found under /usr/lib/postgresql "
                    "(scripts/setup.sh installs the postgresql package)", pytrace=False)
    return found[-1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="quiver-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = _free_port()
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
