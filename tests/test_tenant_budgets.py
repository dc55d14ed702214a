"""Per-tenant budgets (`auth.tenant_budgets`, docs/security.md): a tenant over its own
cache_size or max_entries evicts its own lowest-scored entries, never another tenant's; an
entry larger than its budget is refused and what was stored stays served."""

import json
import subprocess
import threading

import pyarrow.flight as flight
import pytest

from conftest import quiver_binary
from management_util import ints, lite_db, rejection, stored_size  # noqa: F401 (fixture)
from security_util import FIRST_TEN, action, add_token, bearer, paths, put


@pytest.fixture
def budgeted(quiver, workdir):
    """A node with tokens for acme (cache_size: 2.5 entries of ints(1000)), globex (the "*"
    budget: max_entries 2) and initech (its own: no limit but 5 keys)."""
    tokens = workdir / "tokens.json"
    t = {name: add_token(tokens, f"{name}-app", "reader", "writer", tenant=name)
         for name in ("acme", "globex", "initech")}
    t["admin"] = add_token(tokens, "root", "admin", tenant="ops")
    config = workdir / "budgets.json"
    config.write_text(json.dumps({"auth": {"tenant_budgets": {
        "*": {"max_entries": 2},
        "acme": {"cache_size": stored_size(1000) * 5 // 2},
        "initech": {"max_entries": 5}}}}))
    srv = quiver.node(args=["--config", str(config), "--auth", "tokens", "--tokens-file",
                            str(tokens)])
    srv.tokens = t
    return srv


def tenant_stats(client, token):
    return json.loads(action(client, "stats", None, token))


def test_a_tenant_over_its_max_entries_evicts_its_own_oldest(budgeted):
    c = budgeted.client()
    globex, initech = budgeted.tokens["globex"], budgeted.tokens["initech"]
    for key in ("s/a", "s/b", "s/c", "s/d"):
        put(c, key, initech, table=ints(10))
    put(c, "s/a", globex, table=ints(10))
    put(c, "s/b", globex, table=ints(10))
    put(c, "s/c", globex, table=ints(10))  # globex has 2 ("*"): its oldest, s/a, goes
    assert paths(c, globex) == ["s/b", "s/c"]
    assert paths(c, initech) == ["s/a", "s/b", "s/c", "s/d"], "another tenant lost entries"
    with pytest.raises(KeyError):
        c.do_get(flight.Ticket(b"s/a"), options=bearer(globex)).read_all()
    assert c.do_get(flight.Ticket(b"s/c"), options=bearer(globex)).read_all() == ints(10)
    # A new version of a stored key is not a new entry: nothing more is evicted.
    put(c, "s/b", globex, table=ints(20))
    assert paths(c, globex) == ["s/b", "s/c"]
    s = tenant_stats(c, globex)
    assert s["entries"] == 2 and s["budget"] == {"cache_size": 0, "max_entries": 2}, s
    assert tenant_stats(c, initech)["budget"] == {"cache_size": 0, "max_entries": 5}
    # The node's own counters saw the evictions: one, from globex.
    assert json.loads(action(c, "stats", None, budgeted.tokens["admin"]))["evictions"] == 1


def test_a_tenant_over_its_cache_size_evicts_by_score_and_never_exceeds_it(budgeted):
    c = budgeted.client()
    acme, initech = budgeted.tokens["acme"], budgeted.tokens["initech"]
    budget = stored_size(1000) * 5 // 2
    put(c, "other/x", initech, table=ints(1000))
    put(c, "s/a", acme, table=ints(1000))
    put(c, "s/b", acme, table=ints(1000))
    # Reads raise s/a's score above s/b's: s/b is the one to go for s/c.
    for _ in range(5):
        c.do_get(flight.Ticket(b"s/a"), options=bearer(acme)).read_all()
    put(c, "s/c", acme, table=ints(1000))
    assert paths(c, acme) == ["s/a", "s/c"]
    s = tenant_stats(c, acme)
    assert s["bytes"] == 2 * stored_size(1000) <= budget, s
    assert s["budget"] == {"cache_size": budget, "max_entries": 0}, s
    assert paths(c, initech) == ["other/x"]


def test_an_entry_larger_than_the_tenants_budget_is_refused_and_nothing_is_lost(budgeted):
    c = budgeted.client()
    acme = budgeted.tokens["acme"]
    put(c, "s/a", acme, table=ints(1000))
    put(c, "s/b", acme, table=ints(1000))
    msg, body = rejection(put, c, "s/huge", acme, table=ints(10_000))
    assert "not admitted" in msg and "tenant 'acme'" in msg and "s/huge" in msg, msg
    assert body["error"] == "too_large" and body["limit"] == stored_size(1000) * 5 // 2, body
    assert paths(c, acme) == ["s/a", "s/b"], "a refused entry evicted something"
    assert c.do_get(flight.Ticket(b"s/b"), options=bearer(acme)).read_all() == ints(1000)


def test_concurrent_writers_of_one_tenant_end_within_its_budget(budgeted):
    globex, initech = budgeted.tokens["globex"], budgeted.tokens["initech"]
    put(budgeted.client(), "keep/me", initech, table=ints(10))
    errors = []

    def writer(n):
        c = flight.connect(budgeted.location)
        try:
            for i in range(10):
                put(c, f"w{n}/k{i}", globex, table=ints(10))
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    c = budgeted.client()
    # The publish is checked against the tenant's totals atomically: whatever the
    # interleaving, globex ends with 2 keys (at most one over while writers race).
    assert len(paths(c, globex)) == 2, paths(c, globex)
    assert tenant_stats(c, globex)["entries"] == 2
    assert paths(c, initech) == ["keep/me"]


def test_an_admin_writing_into_a_tenants_namespace_counts_against_it(budgeted):
    c = budgeted.client()
    admin, globex = budgeted.tokens["admin"], budgeted.tokens["globex"]
    put(c, "s/a", globex, table=ints(10))
    put(c, "s/b", globex, table=ints(10))
    put(c, "globex/s/c", admin, table=ints(10))  # the stored key of globex's s/c
    assert paths(c, globex) == ["s/b", "s/c"]


@pytest.fixture
def results_budgeted(quiver, workdir, lite_db):
    """A node with two SQLite sources over one file, 'lite' (results per tenant) and
    'common' (shared_results), LRU eviction, and tenants acme (max_entries 2) and globex (no
    budget), both granted both sources."""
    tokens = workdir / "tokens.json"
    t = {name: add_token(tokens, f"{name}-app", "reader", "writer", sources=["lite", "common"],
                         tenant=name) for name in ("acme", "globex")}
    t["admin"] = add_token(tokens, "root", "admin", tenant="ops")
    config = workdir / "budgets.json"
    config.write_text(json.dumps({
        "eviction_policy": "lru",
        "sources": {"lite": {"driver": "sqlite", "uri": str(lite_db)},
                    "common": {"driver": "sqlite", "uri": str(lite_db), "shared_results": True}},
        "auth": {"tenant_budgets": {"acme": {"max_entries": 2}}}}))
    srv = quiver.node(args=["--config", str(config), "--auth", "tokens", "--tokens-file",
                            str(tokens)])
    srv.tokens = t
    return srv


def test_query_results_count_against_the_tenant_they_ran_for(results_budgeted):
    node = results_budgeted
    acme, globex, admin = (node.tokens[k] for k in ("acme", "globex", "admin"))
    first_five = "SELECT * FROM events WHERE id <= 5 ORDER BY id"

    def run(source, sql, token):
        q = json.dumps({"source": source, "sql": sql}).encode()
        return node.client().do_get(flight.Ticket(q), options=bearer(token)).read_all()

    def executions():
        return json.loads(action(node.client(), "stats", None, admin))["queries"]["executions"]

    c = node.client()
    put(c, "s/a", acme, table=ints(10))
    ten = run("lite", FIRST_TEN, acme)
    s = tenant_stats(c, acme)
    assert s["entries"] == 2 and s["bytes"] > stored_size(10), s  # the object and its result
    run("lite", FIRST_TEN, globex)  # globex's own result counts against globex
    run("common", FIRST_TEN, acme)  # a shared result counts against no tenant
    assert tenant_stats(c, acme)["entries"] == 2
    assert tenant_stats(c, globex)["entries"] == 1
    base = executions()
    assert run("lite", FIRST_TEN, acme) == ten  # a hit, and now acme's most recent use
    # A third entry of acme's evicts its least recently used one: the object, not the result
    # it read since, and nothing of globex's or shared.
    assert run("lite", first_five, acme).num_rows == 5
    assert executions() == base + 1
    with pytest.raises(KeyError):
        c.do_get(flight.Ticket(b"s/a"), options=bearer(acme)).read_all()
    assert run("lite", FIRST_TEN, acme) == ten
    assert run("lite", FIRST_TEN, globex) == ten
    assert run("common", FIRST_TEN, globex) == ten
    assert executions() == base + 1, "an evicted result ran again"
    s = tenant_stats(c, acme)
    assert s["entries"] == 2, s
    # The totals come back with the index after a restart.
    node.restart()
    c = node.client()
    assert tenant_stats(c, acme) == s
    assert tenant_stats(c, globex)["entries"] == 1


@pytest.mark.parametrize("budgets, message", [
    ({"acme": {"cache_size": -1}},
     "auth.tenant_budgets.acme: cache_size and max_entries must be >= 0"),
    ({"acme": {"cache_size": "lots"}}, "auth.tenant_budgets.acme.cache_size"),
    ({"acme": {"bytes": 1}}, "auth.tenant_budgets.acme: unknown field 'bytes'"),
    ({"acme": 5}, "'auth.tenant_budgets.acme' must be an object"),
])
def test_a_bad_tenant_budget_is_refused_at_start_naming_it(workdir, budgets, message):
    config = workdir / "bad.json"
    config.write_text(json.dumps({"auth": {"tenant_budgets": budgets}}))
    out = subprocess.run([str(quiver_binary()), "serve", "--config", str(config),
                          "--data-dir", str(workdir / "d")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and message in out.stderr, out.stderr
