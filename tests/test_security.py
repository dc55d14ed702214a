"""Authentication, roles, source grants, the audit log and TLS (docs/security.md), through
pyarrow.flight, HTTP (requests), the `quiver` CLI and the Python SDK against a real server.
Tenants, JWT and rate limits: test_tenants.py."""

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
from security_util import FIRST_TEN, TABLE, action, add_token, bearer, make_pki, put


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


def _install(pki, workdir, cert, key, ca=None):
    """Copy `cert`/`key` (and `ca`) over the files the node was started with, each replaced
    whole (rename), as a certificate manager does."""
    for name, source in (("live.pem", cert), ("live-key.pem", key), ("live-ca.pem", ca)):
        if source is not None:
            tmp = workdir / f"{name}.tmp"
            tmp.write_bytes(pki[source].read_bytes())
            tmp.replace(workdir / name)


def _flight_trusts(location, ca_pem, **client_cert):
    """Whether a new Flight connection trusting only `ca_pem` can make a call."""
    c = flight.FlightClient(location, tls_root_certs=ca_pem, **client_cert)
    try:
        list(c.list_actions())
        return True
    except flight.FlightUnavailableError:
        return False
    finally:
        c.close()


def _https_trusts(url, ca_path, cert=None):
    try:
        return requests.get(f"{url}/v1/objects/s/rot", verify=str(ca_path), cert=cert,
                            timeout=10).status_code == 200
    except requests.exceptions.SSLError:
        return False
    except requests.exceptions.ConnectionError:  # a refused client certificate
        return False


def test_sighup_rotates_the_certificate_of_flight_and_https(quiver, pki, workdir):
    _install(pki, workdir, "server", "server-key")
    srv = quiver.node(args=["--tls-cert", str(workdir / "live.pem"), "--tls-key",
                            str(workdir / "live-key.pem"), "--http", "127.0.0.1:0"])
    ca, other = pki["ca"].read_bytes(), pki["other-ca"].read_bytes()
    before = flight.FlightClient(srv.location, tls_root_certs=ca)
    put(before, "s/rot")
    assert _flight_trusts(srv.location, ca) and not _flight_trusts(srv.location, other)
    assert _https_trusts(srv.http_url, pki["ca"])

    # The certificate manager installs a certificate of the other CA, then signals.
    _install(pki, workdir, "rotated", "rotated-key")
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_for_log("SIGHUP: HTTPS serves the certificate")
    assert "SIGHUP: the Flight port re-opened with the certificate" in srv.log()
    # New connections, on the same port, get the new certificate; the data is all there.
    assert _flight_trusts(srv.location, other) and not _flight_trusts(srv.location, ca)
    after = flight.FlightClient(srv.location, tls_root_certs=other)
    assert after.do_get(flight.Ticket(b"s/rot")).read_all() == TABLE
    assert _https_trusts(srv.http_url, pki["other-ca"])
    assert not _https_trusts(srv.http_url, pki["ca"])

    # A key that does not match is refused by name; the certificate in force stays.
    _install(pki, workdir, "server", "rotated-key")
    srv.proc.send_signal(signal.SIGHUP)
    log = srv.wait_for_log("HTTPS keeps its certificate")
    assert "is not the key of" in log and "the Flight port keeps its certificate" in log
    assert _flight_trusts(srv.location, other) and _https_trusts(srv.http_url, pki["other-ca"])
    # Unchanged files re-open nothing.
    _install(pki, workdir, "rotated", "rotated-key")
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_for_log("SIGHUP: the HTTPS certificate files are unchanged")
    assert "SIGHUP: the Flight certificate files are unchanged" in srv.log()
    assert srv.log().count("re-opened with the certificate") == 1
    assert _flight_trusts(srv.location, other)


def test_sighup_rotates_the_client_ca_of_mutual_tls(quiver, pki, workdir):
    _install(pki, workdir, "server", "server-key", ca="ca")
    srv = quiver.node(args=["--tls-cert", str(workdir / "live.pem"), "--tls-key",
                            str(workdir / "live-key.pem"), "--tls-client-ca",
                            str(workdir / "live-ca.pem"), "--http", "127.0.0.1:0"])
    ca = pki["ca"].read_bytes()
    client = {"cert_chain": pki["client"].read_bytes(),
              "private_key": pki["client-key"].read_bytes()}
    stranger = {"cert_chain": pki["stranger"].read_bytes(),
                "private_key": pki["stranger-key"].read_bytes()}
    put(flight.FlightClient(srv.location, tls_root_certs=ca, **client), "s/rot")
    assert _flight_trusts(srv.location, ca, **client)
    assert not _flight_trusts(srv.location, ca, **stranger)
    assert _https_trusts(srv.http_url, pki["ca"], (str(pki["client"]), str(pki["client-key"])))

    # Client certificates of the other CA are now the ones accepted.
    _install(pki, workdir, "server", "server-key", ca="other-ca")
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_for_log("SIGHUP: HTTPS serves the certificate")
    assert _flight_trusts(srv.location, ca, **stranger)
    assert not _flight_trusts(srv.location, ca, **client)
    stranger_pair = (str(pki["stranger"]), str(pki["stranger-key"]))
    assert _https_trusts(srv.http_url, pki["ca"], stranger_pair)
    assert not _https_trusts(srv.http_url, pki["ca"], (str(pki["client"]),
                                                       str(pki["client-key"])))


def test_tls_and_auth_misconfigurations_fail_the_start_naming_the_setting(workdir, pki):
    broken = workdir / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    cases = [
        (["--tls-cert", str(pki["server"])], "tls.cert and tls.key go together"),
        (["--tls-client-ca", str(pki["ca"])], "tls.client_ca (--tls-client-ca) needs tls.cert"),
        (["--tls-cert", str(pki["server"]), "--tls-key", str(workdir / "missing.pem")],
         "is not a readable PEM file"),
        (["--auth", "tokens"], "needs auth.tokens_file"),
        (["--auth", "tokens", "--tokens-file", str(workdir / "none.json")],
         "cannot read tokens file"),
        (["--listen", "grpc+tls://127.0.0.1:0"], "asks for TLS"),
        (["--tls-cert", str(pki["server"]), "--tls-key", str(pki["client-key"])],
         f"tls.key (--tls-key) '{pki['client-key']}' is not the key of tls.cert (--tls-cert)"),
        (["--tls-cert", str(broken), "--tls-key", str(pki["server-key"])],
         f"tls.cert (--tls-cert) '{broken}' holds no valid certificate"),
        (["--tls-cert", str(pki["server"]), "--tls-key", str(pki["server-key"]),
          "--http-tls-cert", str(pki["server"]), "--http-tls-key", str(pki["rotated-key"]),
          "--http", "127.0.0.1:0"],
         "http.tls_key (--http-tls-key, or tls.key)"),
    ]
    for args, message in cases:
        out = subprocess.run([str(quiver_binary()), "serve", "--listen", "grpc://127.0.0.1:0",
                              "--data-dir", str(workdir / "d"), *args] if "--listen" not in args
                             else [str(quiver_binary()), "serve", "--data-dir",
                                   str(workdir / "d"), *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 1, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
