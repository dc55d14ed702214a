"""Authentication, roles, source grants, the audit log and TLS (docs/security.md), through
pyarrow.flight, HTTP (requests), the `quiver` CLI and the Python SDK against a real server."""

import base64
import json
import signal
import subprocess
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest
import requests

import quiver as sdk
from conftest import quiver_binary
from management_util import lite_db  # noqa: F401  (fixture: events.db, 1,000 rows)
from quiver_util import descriptor, free_port

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


@pytest.fixture
def secured(quiver, workdir, lite_db):
    """A node with auth.mode tokens, HTTP, an audit log and one source; its tokens by role."""
    tokens = workdir / "tokens.json"
    t = {
        "admin": add_token(tokens, "root", "admin"),
        "writer": add_token(tokens, "etl", "reader", "writer", sources=["lite"]),
        "reader": add_token(tokens, "analyst", "reader"),
    }
    audit = workdir / "audit.jsonl"
    srv = quiver.node(args=["--auth", "tokens", "--tokens-file", str(tokens),
                            "--audit-log", str(audit), "--http", "127.0.0.1:0",
                            "--source", f"lite=sqlite://{lite_db}"])
    srv.tokens, srv.tokens_file, srv.audit = t, tokens, audit
    return srv


def test_flight_calls_without_a_valid_token_are_unauthenticated(secured):
    c = secured.client()
    put(c, "s/o", secured.tokens["writer"])
    calls = {
        "ListFlights": lambda o: list(c.list_flights(options=o)),
        "DoGet": lambda o: c.do_get(flight.Ticket(b"s/o"), options=o).read_all(),
        "GetFlightInfo": lambda o: c.get_flight_info(descriptor("s/o"), options=o),
        "DoAction": lambda o: list(c.do_action(flight.Action("stats", b""), options=o)),
        "DoPut": lambda o: put(c, "s/new", options=o),
    }
    wrong = secured.tokens["reader"][:-4] + "0000"
    for name, call in calls.items():
        with pytest.raises(flight.FlightUnauthenticatedError,
                           match="authentication required"):
            call(flight.FlightCallOptions())
        with pytest.raises(flight.FlightUnauthenticatedError) as e:
            call(bearer(wrong))
        assert wrong[17:] not in str(e.value), "the error must not echo the token"
    # Nothing the refused puts sent was stored (the admin sees stored keys: the writer's
    # tenant, acme, is their first segment).
    names = [f.descriptor.path for f in c.list_flights(options=bearer(secured.tokens["admin"]))]
    assert names == [[b"acme", b"s", b"o"]]


def test_roles_decide_what_each_token_may_do_over_flight(secured):
    c = secured.client()
    reader, writer, admin = (secured.tokens[r] for r in ("reader", "writer", "admin"))
    put(c, "s/o", writer)
    assert c.do_get(flight.Ticket(b"s/o"), options=bearer(reader)).read_all() == TABLE
    for refused in (lambda: put(c, "s/o", reader),
                    lambda: action(c, "delete", {"key": "s/o"}, reader),
                    lambda: action(c, "invalidate", {"key": "s/o"}, reader),
                    lambda: action(c, "config-set", {"half_life": 10}, writer),
                    lambda: action(c, "shrink", {"one": True}, writer)):
        with pytest.raises(flight.FlightUnauthorizedError, match="needs the (writer|admin) role"):
            refused()
    # The refusals changed nothing.
    assert c.do_get(flight.Ticket(b"s/o"), options=bearer(reader)).read_all() == TABLE
    settings = json.loads(action(c, "config-get", None, reader))
    assert settings["half_life"] != 10
    # An admin may, and a writer may delete.
    assert json.loads(action(c, "config-set", {"half_life": 10}, admin))["half_life"] == 10
    action(c, "delete", {"key": "s/o"}, writer)
    with pytest.raises(KeyError, match="no object 'acme/s/o'"):
        c.do_get(flight.Ticket(b"s/o"), options=bearer(reader)).read_all()


def test_a_query_on_an_ungranted_source_is_refused_before_it_runs(secured):
    c = secured.client()
    query = json.dumps({"source": "lite", "sql": FIRST_TEN}).encode()
    before = json.loads(action(c, "stats", None, secured.tokens["admin"]))["queries"]
    with pytest.raises(flight.FlightUnauthorizedError, match="not granted source 'lite'"):
        c.do_get(flight.Ticket(query), options=bearer(secured.tokens["reader"])).read_all()
    with pytest.raises(flight.FlightUnauthorizedError, match="not granted source 'lite'"):
        c.get_flight_info(flight.FlightDescriptor.for_command(query),
                          options=bearer(secured.tokens["reader"]))
    after = json.loads(action(c, "stats", None, secured.tokens["admin"]))["queries"]
    assert after["executions"] == before["executions"]
    # The granted token runs it; an admin may use every source.
    got = c.do_get(flight.Ticket(query), options=bearer(secured.tokens["writer"])).read_all()
    assert got.num_rows == 10
    got = c.do_get(flight.Ticket(query), options=bearer(secured.tokens["admin"])).read_all()
    assert got.num_rows == 10


def test_sighup_reloads_the_tokens_file(secured):
    c = secured.client()
    reader = secured.tokens["reader"]
    assert list(c.list_flights(options=bearer(reader))) == []
    subprocess.run([str(quiver_binary()), "token", "revoke", "--tokens-file",
                    str(secured.tokens_file), "--name", "analyst"], check=True,
                   capture_output=True)
    late = add_token(secured.tokens_file, "late", "reader")
    # Not in force before the reload.
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(c.list_flights(options=bearer(late)))
    assert list(c.list_flights(options=bearer(reader))) == []
    secured.proc.send_signal(signal.SIGHUP)
    secured.wait_for_log("SIGHUP: reloaded the tokens file")
    with pytest.raises(flight.FlightUnauthenticatedError, match="unknown or revoked"):
        list(c.list_flights(options=bearer(reader)))
    assert list(c.list_flights(options=bearer(late))) == []
    # A damaged file is refused; the tokens in force stay.
    secured.tokens_file.write_text("{not json")
    secured.proc.send_signal(signal.SIGHUP)
    secured.wait_for_log("the tokens loaded before stay in force")
    assert list(c.list_flights(options=bearer(late))) == []
    assert secured.running()


def test_basic_auth_handshake_answers_the_bearer_token(secured):
    c = secured.client()
    header = c.authenticate_basic_token(b"etl", secured.tokens["writer"].encode())
    assert header == (b"authorization", f"Bearer {secured.tokens['writer']}".encode())
    options = flight.FlightCallOptions(headers=[header])
    assert list(c.list_flights(options=options)) == []
    with pytest.raises(flight.FlightUnauthenticatedError):
        c.authenticate_basic_token(b"etl", b"not-a-token")


def test_http_answers_401_and_403_and_keeps_health_public(secured):
    url = secured.http_url
    auth = {r: {"Authorization": f"Bearer {t}"} for r, t in secured.tokens.items()}
    arrow_stream = pa.BufferOutputStream()
    with pa.ipc.new_stream(arrow_stream, TABLE.schema) as w:
        w.write_table(TABLE)
    body = arrow_stream.getvalue().to_pybytes()
    stream_type = {"Content-Type": "application/vnd.apache.arrow.stream"}

    r = requests.get(f"{url}/v1/stats")
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = requests.get(f"{url}/v1/stats", headers={"Authorization": "Bearer qvt_nope"})
    assert r.status_code == 401 and "qvt_nope" not in r.text
    r = requests.put(f"{url}/v1/objects/s/h", data=body, headers={**auth["reader"], **stream_type})
    assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    r = requests.put(f"{url}/v1/objects/s/h", data=body, headers={**auth["writer"], **stream_type})
    assert r.status_code in (200, 201), r.text
    assert requests.get(f"{url}/v1/objects/s/h", headers=auth["reader"]).status_code == 200
    r = requests.post(f"{url}/v1/actions/config-set", json={"half_life": 5},
                      headers=auth["writer"])
    assert r.status_code == 403, r.text
    r = requests.post(f"{url}/v1/query", json={"source": "lite", "sql": "SELECT 1"},
                      headers=auth["reader"])
    assert r.status_code == 403 and "not granted source" in r.json()["message"]
    assert requests.delete(f"{url}/v1/objects/s/h", headers=auth["reader"]).status_code == 403
    assert requests.delete(f"{url}/v1/objects/s/h", headers=auth["writer"]).status_code in (200, 204)
    assert requests.get(f"{url}/healthz").status_code == 200


def test_the_audit_log_records_writes_deletes_invalidations_and_admin_actions(secured):
    c = secured.client()
    writer, admin, reader = (secured.tokens[r] for r in ("writer", "admin", "reader"))
    put(c, "s/a", writer)
    c.do_get(flight.Ticket(b"s/a"), options=bearer(reader)).read_all()  # a read: not audited
    action(c, "invalidate", {"key": "s/a"}, writer)
    action(c, "config-set", {"half_life": 50}, admin)
    with pytest.raises(flight.FlightUnauthorizedError):
        action(c, "delete-prefix", {"prefix": "s"}, reader)
    requests.delete(f"{secured.http_url}/v1/objects/s/zz",
                    headers={"Authorization": f"Bearer {writer}"})
    requests.delete(f"{secured.http_url}/v1/objects/s/zz",
                    headers={"Authorization": f"Bearer {reader}"})
    # A call's line is written once it has completed (after its answer was sent): wait for
    # all six, then compare in the order of the calls (the two HTTP lines may land in either
    # order, written by two worker threads).
    deadline = time.monotonic() + 10
    while len(secured.audit.read_text().splitlines()) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)  # polls a file the server appends to; the loop ends on the sixth line
    lines = [json.loads(line) for line in secured.audit.read_text().splitlines()]
    lines.sort(key=lambda line: (line["interface"] == "http", line["identity"] == "analyst")
               if line["interface"] == "http" else (False, False))
    kinds = [(line["interface"], line["kind"], line["identity"], line["code"]) for line in lines]
    assert kinds == [
        ("flight", "DoPut:object", "etl", "OK"),
        ("flight", "DoAction:invalidate", "etl", "OK"),
        ("flight", "DoAction:config-set", "root", "OK"),
        ("flight", "DoAction:delete-prefix", "analyst", "PERMISSION_DENIED"),
        ("http", "DELETE /v1/objects", "etl", "404"),
        ("http", "DELETE /v1/objects", "analyst", "403"),
    ], kinds
    for line in lines:
        assert line["tenant"] == "acme" and line["request_id"] and line["ts"]
    assert lines[0]["key"] == "acme/s/a"  # the stored key: the tenant is its first segment


def test_refuses_to_start_unauthenticated_on_a_non_loopback_address(workdir):
    cmd = [str(quiver_binary()), "serve", "--listen", f"grpc://0.0.0.0:{free_port()}",
           "--data-dir", str(workdir / "d")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "is not a loopback address" in out.stderr and "--allow-unauthenticated" in out.stderr
    assert not (workdir / "d").exists(), "nothing may be created before the refusal"
    http = [str(quiver_binary()), "serve", "--listen", "grpc://127.0.0.1:0", "--http",
            "0.0.0.0:0", "--data-dir", str(workdir / "d")]
    out = subprocess.run(http, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "http.listen '0.0.0.0'" in out.stderr


def test_allow_unauthenticated_starts_with_a_warning(workdir):
    cmd = [str(quiver_binary()), "serve", "--listen", f"grpc://0.0.0.0:{free_port()}",
           "--allow-unauthenticated", "--data-dir", str(workdir / "d")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # blocks until the node listens (or exits)
        assert first.startswith("quiver listening on grpc://"), first
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "allow_unauthenticated is set: anyone who reaches" in err, err


def test_cli_takes_a_token_by_flag_or_environment(secured):
    base = [str(quiver_binary()), "stats", "--server", secured.location, "--json"]
    out = subprocess.run(base, capture_output=True, text=True)
    assert out.returncode == 1 and "authentication required" in out.stderr
    out = subprocess.run(base + ["--token", secured.tokens["reader"]], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "entries" in json.loads(out.stdout)
    put_cmd = [str(quiver_binary()), "put", "s/cli", "--server", secured.location]
    src = secured.work_dir / "in.arrow"
    with pa.OSFile(str(src), "wb") as f, pa.ipc.new_file(f, TABLE.schema) as w:
        w.write_table(TABLE)
    out = subprocess.run(put_cmd + [str(src)], capture_output=True, text=True,
                         env={"QUIVER_TOKEN": secured.tokens["reader"], "PATH": "/usr/bin:/bin"})
    assert out.returncode == 8 and "denied" in out.stderr, out
    out = subprocess.run(put_cmd + [str(src)], capture_output=True, text=True,
                         env={"QUIVER_TOKEN": secured.tokens["writer"], "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr


def test_the_python_sdk_sends_its_token(secured):
    with sdk.connect(secured.location, token=secured.tokens["writer"]) as q:
        q.put("s/sdk", TABLE)
        assert q.get("s/sdk") == TABLE
    with sdk.connect(secured.location, token=secured.tokens["reader"]) as q:
        with pytest.raises(sdk.PermissionDenied, match="writer role"):
            q.put("s/sdk", TABLE)
    with sdk.connect(secured.location) as q:
        with pytest.raises(sdk.Unauthenticated, match="authentication required"):
            q.get("s/sdk")


# -- TLS ----------------------------------------------------------------------------------

def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the
    CA (openssl). Returns a dict of paths."""
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

    issue("server", "ca", "127.0.0.1", "subjectAltName=IP:127.0.0.1\n")
    issue("client", "ca", "client", "extendedKeyUsage=clientAuth\n")
    issue("stranger", "other-ca", "stranger", "extendedKeyUsage=clientAuth\n")
    return paths


@pytest.fixture
def pki(workdir):
    return make_pki(workdir)


def test_flight_over_tls_with_the_python_client(quiver, pki):
    srv = quiver.node(args=["--tls-cert", str(pki["server"]), "--tls-key",
                            str(pki["server-key"])])
    assert srv.location.startswith("grpc+tls://127.0.0.1:")
    roots = pki["ca"].read_bytes()
    c = flight.FlightClient(srv.location, tls_root_certs=roots)
    put(c, "s/tls")
    assert c.do_get(flight.Ticket(b"s/tls")).read_all() == TABLE
    # A client that does not trust the CA cannot talk to it; neither can plain gRPC.
    with pytest.raises(flight.FlightUnavailableError):
        flight.FlightClient(srv.location,
                            tls_root_certs=pki["other-ca"].read_bytes()).wait_for_available(2)
    with pytest.raises(flight.FlightUnavailableError):
        plain = srv.location.replace("grpc+tls://", "grpc://")
        flight.FlightClient(plain).wait_for_available(2)
    # The SDK and the CLI take the CA file.
    with sdk.connect(srv.location, tls=str(pki["ca"])) as q:
        assert q.get("s/tls") == TABLE
    out = subprocess.run([str(quiver_binary()), "stats", "--server", srv.location, "--tls-ca",
                          str(pki["ca"]), "--json"], capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["entries"] == 1, out.stderr


def test_mutual_tls_requires_a_client_certificate_from_the_ca(quiver, pki):
    srv = quiver.node(args=["--tls-cert", str(pki["server"]), "--tls-key",
                            str(pki["server-key"]), "--tls-client-ca", str(pki["ca"]),
                            "--http", "127.0.0.1:0"])
    roots = pki["ca"].read_bytes()
    good = flight.FlightClient(srv.location, tls_root_certs=roots,
                               cert_chain=pki["client"].read_bytes(),
                               private_key=pki["client-key"].read_bytes())
    put(good, "s/m")
    assert good.do_get(flight.Ticket(b"s/m")).read_all() == TABLE
    for kwargs in ({},
                   {"cert_chain": pki["stranger"].read_bytes(),
                    "private_key": pki["stranger-key"].read_bytes()}):
        bad = flight.FlightClient(srv.location, tls_root_certs=roots, **kwargs)
        with pytest.raises(flight.FlightUnavailableError):
            bad.do_get(flight.Ticket(b"s/m")).read_all()
    # HTTP serves TLS with the same files, and requires the same client certificates.
    assert srv.http_url.startswith("https://127.0.0.1:")
    url = f"{srv.http_url}/v1/objects/s/m"
    r = requests.get(url, verify=str(pki["ca"]), cert=(str(pki["client"]), str(pki["client-key"])))
    assert r.status_code == 200
    for cert in (None, (str(pki["stranger"]), str(pki["stranger-key"]))):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, verify=str(pki["ca"]), cert=cert, timeout=10)


def test_tls_and_auth_misconfigurations_fail_the_start_naming_the_setting(workdir, pki):
    cases = [
        (["--tls-cert", str(pki["server"])], "tls.cert and tls.key go together"),
        (["--tls-client-ca", str(pki["ca"])], "tls.client_ca (--tls-client-ca) needs tls.cert"),
        (["--tls-cert", str(pki["server"]), "--tls-key", str(workdir / "missing.pem")],
         "is not a readable PEM file"),
        (["--auth", "tokens"], "needs auth.tokens_file"),
        (["--auth", "tokens", "--tokens-file", str(workdir / "none.json")],
         "cannot read tokens file"),
        (["--listen", "grpc+tls://127.0.0.1:0"], "asks for TLS"),
    ]
    for args, message in cases:
        out = subprocess.run([str(quiver_binary()), "serve", "--listen", "grpc://127.0.0.1:0",
                              "--data-dir", str(workdir / "d"), *args] if "--listen" not in args
                             else [str(quiver_binary()), "serve", "--data-dir",
                                   str(workdir / "d"), *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 1, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)


# -- tenants ------------------------------------------------------------------------------

@pytest.fixture
def tenants(quiver, workdir, lite_db):
    """A node with two tenants (acme, globex: reader+writer, granted 'lite'), an admin, and
    two sources over one SQLite file: 'lite' (results per tenant) and 'common'
    (shared_results)."""
    tokens = workdir / "tokens.json"
    t = {
        "acme": add_token(tokens, "acme-app", "reader", "writer", sources=["lite", "common"],
                          tenant="acme"),
        "globex": add_token(tokens, "globex-app", "reader", "writer",
                            sources=["lite", "common"], tenant="globex"),
        "admin": add_token(tokens, "root", "admin", tenant="ops"),
    }
    config = workdir / "tenants.json"
    config.write_text(json.dumps({"sources": {
        "lite": {"driver": "sqlite", "uri": str(lite_db)},
        "common": {"driver": "sqlite", "uri": str(lite_db), "shared_results": True}}}))
    srv = quiver.node(args=["--config", str(config), "--auth", "tokens", "--tokens-file",
                            str(tokens), "--http", "127.0.0.1:0"])
    srv.tokens, srv.tokens_file = t, tokens
    return srv


def paths(client, token, prefix=""):
    criteria = prefix.encode()
    return sorted("/".join(p.decode() for p in f.descriptor.path)
                  for f in client.list_flights(criteria, options=bearer(token)))


def test_a_tenant_sees_and_touches_only_its_own_keys(tenants):
    c = tenants.client()
    acme, globex, admin = (tenants.tokens[k] for k in ("acme", "globex", "admin"))
    a_table, g_table = pa.table({"x": [1]}), pa.table({"x": [2, 2]})
    put(c, "s/o", acme, table=a_table)
    # Same key, other tenant: not found, then its own object.
    with pytest.raises(KeyError):
        c.do_get(flight.Ticket(b"s/o"), options=bearer(globex)).read_all()
    put(c, "s/o", globex, table=g_table)
    put(c, "s/other", globex, table=g_table)
    assert c.do_get(flight.Ticket(b"s/o"), options=bearer(acme)).read_all() == a_table
    assert c.do_get(flight.Ticket(b"s/o"), options=bearer(globex)).read_all() == g_table
    info = c.get_flight_info(descriptor("s/o"), options=bearer(acme))
    assert info.descriptor.path == [b"s", b"o"] and info.endpoints[0].ticket.ticket == b"s/o@1"
    assert paths(c, acme) == ["s/o"]
    assert paths(c, globex) == ["s/o", "s/other"]
    assert paths(c, admin) == ["acme/s/o", "globex/s/o", "globex/s/other"]
    # A tenant cannot reach past its namespace with a longer key.
    with pytest.raises(pa.ArrowInvalid, match="2 segments"):
        c.do_get(flight.Ticket(b"globex/s/o"), options=bearer(acme)).read_all()
    # entries and stats: its own only.
    entries = pa.ipc.open_stream(action(c, "entries", {}, globex)).read_all()
    assert sorted(entries.column("key").to_pylist()) == ["s/o", "s/other"]
    acme_stats = json.loads(action(c, "stats", None, acme))
    assert acme_stats["tenant"] == "acme" and acme_stats["entries"] == 1
    assert 0 < acme_stats["bytes"] < json.loads(action(c, "stats", None, admin))["bytes"]
    assert "queries" in json.loads(action(c, "stats", None, admin))
    # delete-prefix and delete reach only the caller's own keys.
    removed = json.loads(action(c, "delete-prefix", {"prefix": "s"}, globex))
    assert sorted(removed["deleted"]) == ["s/o", "s/other"]
    assert c.do_get(flight.Ticket(b"s/o"), options=bearer(acme)).read_all() == a_table
    assert paths(c, admin) == ["acme/s/o"]


def test_tags_and_dependencies_stay_inside_a_tenant(tenants):
    c = tenants.client()
    acme, globex = tenants.tokens["acme"], tenants.tokens["globex"]

    def put_with(key, token, **options):
        writer, _ = c.do_put(descriptor(key), TABLE.schema, options=bearer(token))
        writer.write_metadata(pa.py_buffer(json.dumps(options).encode()))
        writer.write_table(TABLE)
        writer.close()

    for token in (acme, globex):
        put_with("s/base", token)
        put_with("s/tagged", token, tags=["daily"])
        put_with("s/derived", token, depends_on=["s/base"])
    removed = json.loads(action(c, "invalidate-tag", {"tag": "daily"}, globex))["removed"]
    assert removed == ["s/tagged"]
    removed = json.loads(action(c, "invalidate", {"key": "s/base"}, globex))["removed"]
    assert sorted(removed) == ["s/base", "s/derived"]
    assert paths(c, acme) == ["s/base", "s/derived", "s/tagged"]
    entries = pa.ipc.open_stream(action(c, "entries", {}, acme)).read_all().to_pylist()
    by_key = {e["key"]: e for e in entries}
    assert by_key["s/derived"]["depends_on"] == ["s/base"]
    assert by_key["s/tagged"]["tags"] == ["daily"]
    # Query results are not named by tenants.
    with pytest.raises(flight.FlightUnauthorizedError, match="not open to tenant tokens"):
        put_with("s/q", acme, depends_on=["@q/" + "0" * 64])


def test_query_results_are_cached_per_tenant_unless_the_source_shares_them(tenants):
    c = tenants.client()
    acme, globex, admin = (tenants.tokens[k] for k in ("acme", "globex", "admin"))

    def run(source, token):
        q = json.dumps({"source": source, "sql": FIRST_TEN}).encode()
        return c.do_get(flight.Ticket(q), options=bearer(token)).read_all()

    def executions():
        return json.loads(action(c, "stats", None, admin))["queries"]["executions"]

    base = executions()
    assert run("lite", acme).num_rows == 10
    assert run("lite", acme).num_rows == 10  # a hit
    assert executions() == base + 1
    assert run("lite", globex).num_rows == 10  # its own result: runs again
    assert executions() == base + 2
    assert run("common", acme).num_rows == 10
    assert run("common", globex).num_rows == 10  # shared: a hit on acme's result
    assert executions() == base + 3
    # Revoke globex's grant of 'common'; the cached shared result is refused at once.
    subprocess.run([str(quiver_binary()), "token", "revoke", "--tokens-file",
                    str(tenants.tokens_file), "--name", "globex-app"], check=True,
                   capture_output=True)
    regranted = add_token(tenants.tokens_file, "globex-app", "reader", "writer",
                          sources=["lite"], tenant="globex")
    tenants.proc.send_signal(signal.SIGHUP)
    tenants.wait_for_log("SIGHUP: reloaded the tokens file")
    with pytest.raises(flight.FlightUnauthorizedError, match="not granted source 'common'"):
        run("common", regranted)
    assert run("common", acme).num_rows == 10
    assert executions() == base + 3


def test_http_applies_the_tenant_namespace(tenants):
    url = tenants.http_url
    h = {k: {"Authorization": f"Bearer {t}"} for k, t in tenants.tokens.items()}
    c = tenants.client()
    put(c, "s/o", tenants.tokens["acme"])
    assert requests.get(f"{url}/v1/objects/s/o", headers=h["globex"]).status_code == 404
    r = requests.get(f"{url}/v1/objects/s/o", headers=h["acme"])
    assert r.status_code == 200 and r.headers["X-Quiver-Key"] == "s/o"
    assert requests.get(f"{url}/v1/objects/acme/s/o", headers=h["admin"]).status_code == 200
    assert requests.get(f"{url}/v1/stats", headers=h["globex"]).json() == {
        "tenant": "globex", "entries": 0, "bytes": 0}
    entries = pa.ipc.open_stream(
        requests.get(f"{url}/v1/entries", headers=h["acme"]).content).read_all()
    assert entries.column("key").to_pylist() == ["s/o"]
    r = requests.delete(f"{url}/v1/objects/s/o", headers=h["globex"])
    assert r.status_code == 404
    assert requests.get(f"{url}/v1/objects/s/o", headers=h["acme"]).status_code == 200


def test_flame_protocol_is_refused_to_tenant_tokens(tenants):
    c = tenants.client()
    d = flight.FlightDescriptor.for_path("app/session")
    with pytest.raises(flight.FlightUnauthorizedError, match="Flame protocol"):
        writer, _ = c.do_put(d, TABLE.schema, options=bearer(tenants.tokens["acme"]))
        writer.write_table(TABLE)
        writer.close()


# -- JWT ----------------------------------------------------------------------------------

HS_SECRET = "s3cret-shared-with-the-idp-0123456789-and-long-enough-for-hs384!!"


def jwt_keys(algorithm):
    """(signing key, verification key file text) for `algorithm`, and a stranger's signing
    key of the same kind."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if algorithm == "HS256":
        secret = HS_SECRET
        return secret, secret + "\n", "another-secret-entirely-0123456789abcdef-also-long-enough"

    def make():
        if algorithm == "RS256":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    key, stranger = make(), make()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, public.decode(), stranger


@pytest.fixture(params=["HS256", "RS256", "ES256"])
def jwt_node(request, quiver, workdir):
    import jwt as pyjwt

    algorithm = request.param
    signing, verification, stranger = jwt_keys(algorithm)
    key_file = workdir / "jwt-key"
    key_file.write_text(verification)
    config = workdir / "jwt.json"
    config.write_text(json.dumps({"auth": {"mode": "jwt", "jwt": {
        "algorithm": algorithm, "key_file": str(key_file), "issuer": "https://idp.test",
        "audience": "quiver", "leeway_s": 5}}}))
    srv = quiver.node(args=["--config", str(config), "--http", "127.0.0.1:0"])

    def make(key=signing, alg=algorithm, **overrides):
        now = int(time.time())
        claims = {"iss": "https://idp.test", "aud": "quiver", "sub": "svc-etl",
                  "tenant": "acme", "roles": ["reader", "writer"], "iat": now,
                  "exp": now + 300}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return pyjwt.encode(claims, key, algorithm=alg)

    srv.jwt, srv.stranger, srv.verification = make, stranger, verification
    return srv


def test_jwt_tokens_are_verified_and_scoped(jwt_node):
    c = jwt_node.client()
    good = jwt_node.jwt()
    put(c, "s/o", good)
    assert c.do_get(flight.Ticket(b"s/o"), options=bearer(good)).read_all() == TABLE
    # The claims scope it: tenant acme; a token of tenant globex does not see it.
    other = jwt_node.jwt(tenant="globex", sub="svc-globex")
    with pytest.raises(KeyError):
        c.do_get(flight.Ticket(b"s/o"), options=bearer(other)).read_all()
    admin = jwt_node.jwt(roles="admin", tenant=None)
    assert paths(c, admin) == ["acme/s/o"]
    # Roles as an OAuth-style space-separated string; a token with no role of ours is
    # authenticated and then refused.
    assert paths(c, jwt_node.jwt(roles="reader other")) == ["s/o"]
    with pytest.raises(flight.FlightUnauthorizedError, match="reader role"):
        paths(c, jwt_node.jwt(roles=["viewer"]))
    # A token whose payload was changed (roles: admin) under its original signature.
    head, body, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    refused = [
        ("expired", jwt_node.jwt(exp=int(time.time()) - 60, iat=int(time.time()) - 400)),
        ("audience", jwt_node.jwt(aud="someone-else")),
        ("issuer", jwt_node.jwt(iss="https://evil.test")),
        ("not valid yet", jwt_node.jwt(nbf=int(time.time()) + 600)),
        ("no expiry", jwt_node.jwt(exp=None)),
        ("signature does not verify", jwt_node.jwt(key=jwt_node.stranger)),
        ("signature does not verify", f"{head}.{forged}.{signature}"),
    ]
    for why, token in refused:
        with pytest.raises(flight.FlightUnauthenticatedError,
                           match=f"token refused: .*{why}") as e:
            list(c.list_flights(options=bearer(token)))
        assert token.split(".")[2] not in str(e.value), why
        r = requests.get(f"{jwt_node.http_url}/v1/stats",
                         headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (why, r.text)
    # An unsigned token (alg "none") is refused whatever its claims.
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    with pytest.raises(flight.FlightUnauthenticatedError, match="token refused"):
        list(c.list_flights(options=bearer(f"{unsigned}.{forged}.")))
    r = requests.get(f"{jwt_node.http_url}/v1/stats", headers={"Authorization": f"Bearer {good}"})
    assert r.status_code == 200 and r.json()["tenant"] == "acme"


def test_jwt_refuses_another_algorithm_even_with_the_right_key_bytes(jwt_node):
    """The classic confusion: an HS256 token whose secret is the RS/ES public key."""
    import jwt as pyjwt

    c = jwt_node.client()
    now = int(time.time())
    claims = {"iss": "https://idp.test", "aud": "quiver", "sub": "x", "roles": ["admin"],
              "exp": now + 300}
    if isinstance(jwt_node.verification, str) and "BEGIN PUBLIC KEY" in jwt_node.verification:
        # PyJWT refuses to HMAC with a PEM key; sign by hand.
        import hashlib
        import hmac

        def b64(raw):
            return base64.urlsafe_b64encode(raw).rstrip(b"=")
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps(claims).encode())
        mac = hmac.new(jwt_node.verification.encode(), head + b"." + body, hashlib.sha256)
        token = (head + b"." + body + b"." + b64(mac.digest())).decode()
    else:
        token = pyjwt.encode({**claims, "alg_test": 1}, HS_SECRET,
                             algorithm="HS384")
    with pytest.raises(flight.FlightUnauthenticatedError, match="token refused"):
        list(c.list_flights(options=bearer(token)))


def test_a_tenant_over_its_request_rate_is_refused_as_busy(quiver, workdir):
    tokens = workdir / "tokens.json"
    acme = add_token(tokens, "a", "reader", tenant="acme")
    globex = add_token(tokens, "g", "reader", tenant="globex")
    admin = add_token(tokens, "root", "admin")
    config = workdir / "rate.json"
    # A slow refill (one request per 100 s) so the test does not depend on timing.
    config.write_text(json.dumps({"auth": {"mode": "tokens", "tokens_file": str(tokens),
                                           "rate_limit_per_s": 0.01, "rate_limit_burst": 3}}))
    srv = quiver.node(args=["--config", str(config), "--http", "127.0.0.1:0"])
    c = srv.client()
    for _ in range(3):
        list(c.list_flights(options=bearer(acme)))
    with pytest.raises(flight.FlightUnavailableError, match="tenant 'acme' is over its request"):
        list(c.list_flights(options=bearer(acme)))
    r = requests.get(f"{srv.http_url}/v1/stats", headers={"Authorization": f"Bearer {acme}"})
    assert r.status_code == 429 and r.json()["error"] == "busy", r.text
    assert r.headers["Retry-After"] == "1"
    with sdk.connect(srv.location, token=acme) as q:
        with pytest.raises(sdk.Busy):
            q.stats()
    # Other tenants and admins are not held back by acme.
    for _ in range(3):
        list(c.list_flights(options=bearer(globex)))
    for _ in range(10):
        list(c.list_flights(options=bearer(admin)))
