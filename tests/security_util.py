"""Helpers for the security tests (docs/security.md): tokens made with `quiver token add`,
bearer call options, puts and actions with a token, and a throw-away PKI made with openssl."""

import json
import subprocess

import pyarrow as pa
import pyarrow.flight as flight

from conftest import quiver_binary
from quiver_util import descriptor

TABLE = pa.table({"x": [1, 2, 3]})
FIRST_TEN = "SELECT * FROM events WHERE id <= 10 ORDER BY id"  # of management_util's lite_db


def add_token(tokens_file, name, *roles, sources=(), tenant="acme"):
    """`quiver token add`; returns the token it printed."""
    cmd = [str(quiver_binary()), "token", "add", "--tokens-file", str(tokens_file),
           "--name", name] + (["--tenant", tenant] if tenant else [])
    for role in roles:
        cmd += ["--role", role]
    for source in sources:
        cmd += ["--source", source]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    token = out.stdout.strip()
    assert token.startswith("qvt_"), out
    return token


def bearer(token):
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def put(client, key, token=None, table=TABLE, options=None):
    """DoPut `table` to `key` with `token` (None: no authorization header) or `options`."""
    if options is None:
        options = bearer(token) if token is not None else flight.FlightCallOptions()
    writer, reader = client.do_put(descriptor(key), table.schema, options=options)
    writer.write_table(table)
    writer.close()


def action(client, name, body, token):
    payload = json.dumps(body).encode() if body is not None else b""
    results = list(client.do_action(flight.Action(name, payload), options=bearer(token)))
    return results[0].body.to_pybytes() if results else b""


def paths(client, token, prefix=""):
    criteria = prefix.encode()
    return sorted("/".join(p.decode() for p in f.descriptor.path)
                  for f in client.list_flights(criteria, options=bearer(token)))


def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the
    CA; another CA, with a server certificate for 127.0.0.1 ("rotated") and a client
    certificate ("stranger") it signed (openssl). Returns a dict of paths."""
    d = directory
    paths = {name: d / f"{name}.pem" for name in
             ("ca", "ca-key", "server", "server-key", "client", "client-key", "other-ca",
              "other-ca-key", "stranger", "stranger-key")}

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
            f"/CN=quiver test {ca}", "-keyout", str(paths[f"{ca}-key"]), "-out", str(paths[ca]))

    def issue(name, ca, cn, ext):
        csr, extfile = d / f"{name}.csr", d / f"{name}.ext"
        extfile.write_text(ext)
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout",
            str(paths[f"{name}-key"]), "-out", str(csr))
        run("x509", "-req", "-in", str(csr), "-CA", str(paths[ca]), "-CAkey",
            str(paths[f"{ca}-key"]), "-CAcreateserial", "-days", "1", "-out", str(paths[name]),
            "-extfile", str(extfile))

    paths["rotated"], paths["rotated-key"] = d / "rotated.pem", d / "rotated-key.pem"
    issue("server", "ca", "127.0.0.1", "subjectAltName=IP:127.0.0.1\n")
    issue("rotated", "other-ca", "127.0.0.1", "subjectAltName=IP:127.0.0.1\n")
    issue("client", "ca", "client", "extendedKeyUsage=clientAuth\n")
    issue("stranger", "other-ca", "stranger", "extendedKeyUsage=clientAuth\n")
    return paths
