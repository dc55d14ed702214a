"""A real S3-compatible server for tests: s3proxy (https://github.com/gaul/s3proxy) on loopback.

s3proxy is a Java server speaking the S3 API in front of a jclouds blob store; the
``transient`` backend keeps everything in memory. It enforces SSE-C (from 4.1.0 on: an object
written with a customer key cannot be read without it or with another one), so the tests of
Quiver's S3 store run against a server that behaves like S3 on the points that matter.

``S3Proxy`` makes a self-signed certificate for 127.0.0.1 (``ca_file``), serves HTTPS only on
a free port, waits until it answers, and is stopped by ``stop()`` or at the end of a ``with``
block. The jar is found through $QUIVER_S3PROXY_JAR or in .tools/s3proxy/ (scripts/setup.sh
fetches it); ``s3proxy_jar()`` is None when it or java is missing.
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
S3PROXY_VERSION = "4.1.0"
DEFAULT_JAR = REPO / ".tools" / "s3proxy" / f"s3proxy-{S3PROXY_VERSION}-jar-with-dependencies.jar"
STARTUP_TIMEOUT_S = 60


def s3proxy_jar():
    """The s3proxy jar to run, or None when it or java is missing."""
    jar = Path(os.environ.get("QUIVER_S3PROXY_JAR", DEFAULT_JAR))
    if not jar.is_file() or not shutil.which("java"):
        return None
    return jar


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Proxy:
    """One s3proxy process (transient backend, HTTPS on 127.0.0.1).

    Attributes once started: ``endpoint`` ("127.0.0.1:PORT", for endpoint_override),
    ``url`` (https://...), ``ca_file`` (PEM of its self-signed certificate), ``access_key``,
    ``secret_key``, ``region``, ``dir`` (its work dir: certificate, keystore, config, log).
    """

    access_key = "quiver-test-access"
    secret_key = "quiver-test-secret-do-not-log"
    region = "eu-west-3"

    def __init__(self, jar=None, work_dir=None, heap="512m"):
        """``heap``: the JVM's -Xmx; the transient backend keeps every object in it (and
        completing a multipart upload copies the parts)."""
        self.heap = heap
        self.jar = Path(jar) if jar else s3proxy_jar()
        if self.jar is None:
            raise RuntimeError("s3proxy is not available: no java, or no jar at "
                               f"{DEFAULT_JAR} (run scripts/setup.sh or set QUIVER_S3PROXY_JAR)")
        self._own_dir = work_dir is None
        self.dir = Path(work_dir or tempfile.mkdtemp(prefix="quiver-s3proxy-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = None
        self.proc = None

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    @property
    def url(self):
        return f"https://{self.endpoint}"

    @property
    def ca_file(self):
        return self.dir / "cert.pem"

    @property
    def log_path(self):
        return self.dir / "s3proxy.log"

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _make_keystore(self):
        key, cert, p12 = self.dir / "key.pem", self.ca_file, self.dir / "keystore.p12"
        if p12.exists():
            return p12
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-addext", "basicConstraints=critical,CA:TRUE"],
            check=True, capture_output=True)
        subprocess.run(
            ["openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
             "-out", str(p12), "-name", "s3proxy", "-passout", "pass:quiver-keystore"],
            check=True, capture_output=True)
        return p12

    def _write_config(self):
        conf = self.dir / "s3proxy.conf"
        conf.write_text("\n".join([
            f"s3proxy.secure-endpoint=https://127.0.0.1:{self.port}",
            f"s3proxy.keystore-path={self._make_keystore()}",
            "s3proxy.keystore-password=quiver-keystore",
            "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={self.access_key}",
            f"s3proxy.credential={self.secret_key}",
            "jclouds.provider=transient",
            "jclouds.identity=unused",
            "jclouds.credential=unused",
            "",
        ]))
        return conf

    def answers(self):
        """Whether the server completes a TLS handshake and answers an HTTP request."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    return s.recv(12).startswith(b"HTTP/1.1")
        except OSError:
            return False

    def start(self):
        for _ in range(3):
            self.port = _free_port()
            conf = self._write_config()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    ["java", f"-Xmx{self.heap}", "-jar", str(self.jar), "--properties", str(conf)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.dir)
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.answers():
                    return self
                time.sleep(0.1)
            self._kill()  # exited (port taken meanwhile?) or too slow: try another port
        raise AssertionError(f"s3proxy did not start:\n{self.log()[-5000:]}")

    def filesystem(self, **kwargs):
        """A pyarrow S3FileSystem on this server (bucket creation allowed)."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            access_key=self.access_key, secret_key=self.secret_key, region=self.region,
            endpoint_override=self.endpoint, scheme="https", tls_ca_file_path=str(self.ca_file),
            allow_bucket_creation=True, allow_bucket_deletion=True, **kwargs)

    def make_bucket(self, name=None):
        """Create a fresh bucket and return its name."""
        name = name or f"quiver-{uuid.uuid4().hex[:16]}"
        self.filesystem().create_dir(name)
        return name

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self):
        self._kill()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":  # manual use: python tests/s3proxy.py -> runs until Ctrl-C
    with S3Proxy() as proxy:
        print(f"s3proxy on {proxy.url} ca={proxy.ca_file} "
              f"access_key={proxy.access_key} region={proxy.region}", flush=True)
        try:
            proxy.proc.wait()
        except KeyboardInterrupt:
            pass
