"""Tenants, JSON Web Tokens and per-tenant rate limits (docs/security.md) against a real
server: a tenant's keys, tags, dependencies, listings, stats and query results stay its own;
JWTs signed with HS256, RS256 and ES256 are verified; a tenant over its rate is refused."""

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
from quiver_util import descriptor
from security_util import FIRST_TEN, TABLE, action, add_token, bearer, paths, put


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


def put_with(c, key, token, **options):
    """DoPut TABLE to `key` with `token` and put options (depends_on, tags)."""
    writer, _ = c.do_put(descriptor(key), TABLE.schema, options=bearer(token))
    writer.write_metadata(pa.py_buffer(json.dumps(options).encode()))
    writer.write_table(TABLE)
    writer.close()


def test_tags_and_dependencies_stay_inside_a_tenant(tenants):
    c = tenants.client()
    acme, globex = tenants.tokens["acme"], tenants.tokens["globex"]
    for token in (acme, globex):
        put_with(c, "s/base", token)
        put_with(c, "s/tagged", token, tags=["daily"])
        put_with(c, "s/derived", token, depends_on=["s/base"])
    removed = json.loads(action(c, "invalidate-tag", {"tag": "daily"}, globex))["removed"]
    assert removed == ["s/tagged"]
    removed = json.loads(action(c, "invalidate", {"key": "s/base"}, globex))["removed"]
    assert sorted(removed) == ["s/base", "s/derived"]
    assert paths(c, acme) == ["s/base", "s/derived", "s/tagged"]
    entries = pa.ipc.open_stream(action(c, "entries", {}, acme)).read_all().to_pylist()
    by_key = {e["key"]: e for e in entries}
    assert by_key["s/derived"]["depends_on"] == ["s/base"]
    assert by_key["s/tagged"]["tags"] == ["daily"]


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
        "tenant": "globex", "entries": 0, "bytes": 0, "budget": None}
    entries = pa.ipc.open_stream(
        requests.get(f"{url}/v1/entries", headers=h["acme"]).content).read_all()
    assert entries.column("key").to_pylist() == ["s/o"]
    r = requests.delete(f"{url}/v1/objects/s/o", headers=h["globex"])
    assert r.status_code == 404
    assert requests.get(f"{url}/v1/objects/s/o", headers=h["acme"]).status_code == 200


def tenant_view(client, token, **ticket):
    """DoGet a view ticket as `token`: (table, the first batch's app_metadata)."""
    reader = client.do_get(flight.Ticket(json.dumps(ticket).encode()), options=bearer(token))
    chunks, meta = [], None
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        if meta is None and chunk.app_metadata is not None:
            meta = json.loads(chunk.app_metadata.to_pybytes())
        if chunk.data is not None:
            chunks.append(chunk.data)
    return pa.Table.from_batches(chunks, schema=reader.schema), meta


def test_views_are_scoped_to_the_tenants_namespace(tenants):
    c = tenants.client()
    acme, globex = tenants.tokens["acme"], tenants.tokens["globex"]
    table = pa.table({"x": list(range(10)), "y": [str(i) for i in range(10)]})
    put(c, "s/o", acme, table=table)
    got, meta = tenant_view(c, acme, key="s/o", columns=["x"], limit=3)
    assert got == pa.table({"x": [0, 1, 2]})
    assert meta["source"]["key"] == "s/o", meta  # shown without the tenant
    # Unchanged (no view): the entry itself, also shown as the tenant addresses it.
    got, meta = tenant_view(c, acme, key="s/o", format="arrow")
    assert got == table and meta["key"] == "s/o" and meta["source"]["key"] == "s/o", meta
    # Another tenant's view of "s/o" is a view of its own (absent) s/o.
    with pytest.raises(KeyError):
        tenant_view(c, globex, key="s/o", columns=["x"])
    with pytest.raises(pa.ArrowInvalid, match="a tenant.s keys have 2 segments"):
        tenant_view(c, globex, key="acme/s/o", columns=["x"])
    with pytest.raises(KeyError, match="no cached result"):  # not its result: absent
        tenant_view(c, acme, key="@q/" + "0" * 64, columns=["x"])
    # HTTP: the same namespace, and the source key shown as the tenant addresses it.
    url = tenants.http_url
    r = requests.get(f"{url}/v1/objects/s/o?columns=y&limit=2&format=csv",
                     headers={"Authorization": f"Bearer {acme}"})
    assert r.status_code == 200, r.text
    assert r.headers["X-Quiver-Source-Key"] == "s/o" and r.text.splitlines()[1:] == ['"0"', '"1"']
    assert requests.get(f"{url}/v1/objects/s/o?columns=y",
                        headers={"Authorization": f"Bearer {globex}"}).status_code == 404


def test_a_tenant_reads_by_key_only_its_own_results_and_granted_shared_ones(tenants):
    url = tenants.http_url
    h = {name: {"Authorization": f"Bearer {tenants.tokens[name]}"}
         for name in ("acme", "globex", "admin")}

    def query(source, who):
        r = requests.post(f"{url}/v1/query", json={"source": source, "sql": FIRST_TEN},
                          headers=h[who])
        assert r.status_code == 200, r.text
        return r.headers["X-Quiver-Key"]

    def result(key, who, params=""):
        return requests.get(f"{url}/v1/results/{key}{params}", headers=h[who])

    own, shared = query("lite", "acme"), query("common", "acme")
    for key in (own, shared):
        r = result(key, "acme")
        assert r.status_code == 200, r.text
        assert pa.ipc.open_stream(r.content).read_all().num_rows == 10
    # globex: acme's own result does not exist for it; the shared one it is granted does.
    r = result(own, "globex")
    assert r.status_code == 404 and own in r.text and "acme" not in r.text, r.text
    assert result(own, "globex", "?columns=id").status_code == 404  # nor a view of it
    assert result(shared, "globex").status_code == 200
    assert result(own, "admin").status_code == 200
    # A view ticket over Flight is held to the same rule.
    c = tenants.client()
    got, meta = tenant_view(c, tenants.tokens["acme"], key=own, columns=["id"], limit=2)
    assert got.column("id").to_pylist() == [1, 2]
    with pytest.raises(KeyError, match="no cached result"):
        tenant_view(c, tenants.tokens["globex"], key=own, columns=["id"])
    # Invalidating by key: its own result only; a shared one is not one tenant's to remove.
    qkey = own if own.startswith("@q/") else "@q/" + own
    shared_qkey = shared if shared.startswith("@q/") else "@q/" + shared
    for who, key in (("globex", qkey), ("acme", shared_qkey)):
        with pytest.raises(KeyError, match="no cached result"):
            action(c, "invalidate", {"key": key}, tenants.tokens[who])
    assert result(own, "acme").status_code == 200
    removed = json.loads(action(c, "invalidate", {"key": qkey}, tenants.tokens["acme"]))
    # the result, and (cascade) the view of it made above
    assert qkey in removed["removed"] and len(removed["removed"]) == 2, removed
    assert result(own, "acme").status_code == 404
    assert result(shared, "globex").status_code == 200


def test_a_tenant_depends_only_on_its_own_or_granted_shared_query_results(tenants):
    url, c = tenants.http_url, tenants.client()
    acme, globex = tenants.tokens["acme"], tenants.tokens["globex"]

    def query(source, token):
        r = requests.post(f"{url}/v1/query", json={"source": source, "sql": FIRST_TEN},
                          headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        key = r.headers["X-Quiver-Key"]
        return key if key.startswith("@q/") else "@q/" + key

    own, shared = query("lite", acme), query("common", acme)
    put_with(c, "s/report", acme, depends_on=[own])
    put_with(c, "s/summary", globex, depends_on=[shared])  # granted 'common'
    # Another tenant's result, and one not cached, read the same: not there.
    for dep in (own, "@q/" + "0" * 64):
        with pytest.raises(KeyError, match="no cached result"):
            put_with(c, "s/stolen", globex, depends_on=[dep])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, TABLE.schema) as w:
        w.write_table(TABLE)
    r = requests.put(f"{url}/v1/objects/s/stolen", params={"depends_on": own},
                     data=sink.getvalue().to_pybytes(),
                     headers={"Authorization": f"Bearer {globex}",
                              "Content-Type": "application/vnd.apache.arrow.stream"})
    assert r.status_code == 404 and "no cached result" in r.text, r.text
    assert "s/stolen" not in paths(c, globex)
    entries = pa.ipc.open_stream(action(c, "entries", {}, acme)).read_all().to_pylist()
    assert {e["key"]: e for e in entries}["s/report"]["depends_on"] == [own]
    # Invalidating the result takes what was derived from it.
    removed = json.loads(action(c, "invalidate", {"key": own}, acme))["removed"]
    assert sorted(removed) == sorted([own, "s/report"]), removed
    assert paths(c, acme) == [] and paths(c, globex) == ["s/summary"]


def test_artifacts_are_fetched_per_tenant_and_need_the_grant(quiver, workdir):
    root = workdir / "artifacts"
    root.mkdir()
    (root / "t.csv").write_text("id,name\n1,one\n2,two\n3,three\n")
    url = f"file://{root}/t.csv"
    tokens = workdir / "tokens.json"
    t = {name: add_token(tokens, f"{name}-app", "reader", "writer", sources=["artifacts"],
                         tenant=name) for name in ("acme", "globex")}
    t["initech"] = add_token(tokens, "initech-app", "reader", "writer", sources=["lite"],
                             tenant="initech")
    config = workdir / "artifacts.json"
    config.write_text(json.dumps({"artifacts": {"allowed_prefixes": [f"file://{root}/"]}}))
    node = quiver.node(args=["--config", str(config), "--auth", "tokens", "--tokens-file",
                             str(tokens), "--http", "127.0.0.1:0"])
    c = node.client()

    def fetch(who):
        return json.loads(action(c, "artifact-fetch", {"artifact": url}, t[who]))

    a, again, g = fetch("acme"), fetch("acme"), fetch("globex")
    assert (a["cache"], again["cache"], g["cache"]) == ("miss", "hit", "miss"), (a, again, g)
    assert again["key"] == a["key"] != g["key"], "each tenant has its own copy"
    for who in ("acme", "globex"):  # and it counts in the tenant's own totals
        assert json.loads(action(c, "stats", None, t[who]))["entries"] == 1
    # Read by key: the tenant's own copy only.
    http = {who: {"Authorization": f"Bearer {t[who]}"} for who in t}
    r = requests.get(f"{node.http_url}/v1/results/{a['key']}", headers=http["acme"])
    assert r.status_code == 200 and pa.ipc.open_stream(r.content).read_all().num_rows == 3
    r = requests.get(f"{node.http_url}/v1/results/{a['key']}", headers=http["globex"])
    assert r.status_code == 404, r.text
    ticket = flight.Ticket(json.dumps({"artifact": url}).encode())
    assert c.do_get(ticket, options=bearer(t["globex"])).read_all().num_rows == 3
    # Without the grant: refused before anything is fetched, over Flight and HTTP.
    with pytest.raises(flight.FlightUnauthorizedError, match="not granted source 'artifacts'"):
        fetch("initech")
    with pytest.raises(flight.FlightUnauthorizedError, match="not granted source 'artifacts'"):
        c.do_get(ticket, options=bearer(t["initech"])).read_all()
    r = requests.post(f"{node.http_url}/v1/query", json={"artifact": url}, headers=http["initech"])
    assert r.status_code == 403 and "artifacts" in r.text, r.text
    assert json.loads(action(c, "stats", None, t["initech"]))["entries"] == 0


def flame_put(client, path, token, rows=3):
    """A Flame put (DoPut of PATH `path`) of a Flame table, as flamepy sends one."""
    table = pa.table({"x": list(range(rows))}).replace_schema_metadata(
        {"flame.cache.format": "arrow-table-v1"})
    writer, _ = client.do_put(flight.FlightDescriptor.for_path(path), table.schema,
                              options=bearer(token))
    writer.write_table(table)
    writer.close()


def test_a_tenants_flame_app_is_its_tenant(tenants):
    c = tenants.client()
    acme, globex = tenants.tokens["acme"], tenants.tokens["globex"]
    flame_put(c, "acme/ssn/obj", acme)
    # Flame's acme/ssn/obj is the tenant's own ssn/obj, for Flame and for Quiver's clients.
    assert paths(c, acme) == ["ssn/obj"] and paths(c, globex) == []
    assert c.do_get(flight.Ticket(b"acme/ssn/obj:0"), options=bearer(acme)).read_all().num_rows == 3
    assert c.do_get(flight.Ticket(b"ssn/obj"), options=bearer(acme)).read_all().num_rows == 3
    info = c.get_flight_info(flight.FlightDescriptor.for_path("acme/ssn/obj"), options=bearer(acme))
    assert info.endpoints[0].ticket.ticket == b"acme/ssn/obj:0"
    # Any other app is refused before anything is read or stored: another tenant's, or none.
    refused = pytest.raises(flight.FlightUnauthorizedError, match="Flame app 'acme' is outside")
    with refused:
        c.do_get(flight.Ticket(b"acme/ssn/obj:0"), options=bearer(globex)).read_all()
    with pytest.raises(flight.FlightUnauthorizedError, match="Flame app 'acme'"):
        c.get_flight_info(flight.FlightDescriptor.for_path("acme/ssn/obj"), options=bearer(globex))
    with pytest.raises(flight.FlightUnauthorizedError, match="Flame app 'acme'"):
        flame_put(c, "acme/ssn/other", globex)
    with pytest.raises(flight.FlightUnauthorizedError, match="Flame app 'acme'"):
        list(c.do_action(flight.Action("DELETE", b"acme/*"), options=bearer(globex)))
    with pytest.raises(flight.FlightUnauthorizedError, match="Flame app 'shared-app'"):
        flame_put(c, "shared-app/ssn", acme)
    assert paths(c, acme) == ["ssn/obj"], "a refused Flame call changed acme's keys"
    # globex's own app is its own namespace; deleting acme's app takes only acme's objects.
    flame_put(c, "globex/ssn/obj", globex, rows=5)
    list(c.do_action(flight.Action("DELETE", b"acme/*"), options=bearer(acme)))
    assert paths(c, acme) == [] and paths(c, globex) == ["ssn/obj"]
    assert c.do_get(flight.Ticket(b"globex/ssn/obj:0"),
                    options=bearer(globex)).read_all().num_rows == 5


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
