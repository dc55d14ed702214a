"""The dashboard page (docs/dashboard.md), served by quiver at "/" from the files of web/dist
compiled into the binary.

- The committed bundle (web/dist) is what the sources in web/src build (web/build.mjs --check);
  the page's pure parts pass their unit tests (web/test, node's test runner).
- The page and its assets are served byte for byte as committed, with their content types.
- End to end in a real headless Chromium (Debian's, driven by playwright-core from
  tests/e2e/dashboard_e2e.mjs): the page shows an entry put over Flight, its screenshot is not
  blank, and the row's "Invalidate" button removes the entry (and what depends on it), which
  Flight then no longer serves.

Needs node, web/node_modules and tests/e2e/node_modules (`npm ci`, done by scripts/setup.sh),
and /usr/bin/chromium (or $CHROMIUM).
"""

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from quiver_util import action, put

REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "web"
E2E = Path(__file__).resolve().parent / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not installed (Node 20+; scripts/setup.sh expects it)", pytrace=False)
    return found


def require_npm_packages(folder: Path) -> None:
    if not (folder / "node_modules").is_dir():
        pytest.fail(f"{folder.relative_to(REPO)}/node_modules is missing: run scripts/setup.sh "
                    f"(or `npm ci` in {folder.relative_to(REPO)})", pytrace=False)


def http_base(srv) -> str:
    """The http://HOST:PORT/ quiver announced on stdout after its Flight line."""
    assert srv.http_url, "the server was not started with --http"
    return srv.http_url.rstrip("/") + "/"


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def test_committed_bundle_is_built_from_sources():
    require_npm_packages(WEB)
    done = subprocess.run([node(), "build.mjs", "--check"], cwd=WEB, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "web/dist is up to date" in done.stdout


def test_page_units():
    """web/test: formatting and the charts' rates, in node's test runner."""
    done = subprocess.run([node(), "--test", "test/"], cwd=WEB, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout, done.stdout


def test_page_and_assets_are_served_as_committed(quiver):
    base = http_base(quiver(args=["--http", "127.0.0.1:0"]))

    status, ctype, body = fetch(base)
    assert (status, ctype) == (200, "text/html; charset=utf-8")
    assert body == (WEB / "dist" / "index.html").read_bytes()

    for name, expected_type in [("dashboard.js", "text/javascript; charset=utf-8"),
                                ("dashboard.css", "text/css; charset=utf-8")]:
        status, ctype, body = fetch(base + "assets/" + name)
        assert (status, ctype) == (200, expected_type), name
        assert body == (WEB / "dist" / "assets" / name).read_bytes(), name

    status, _, _ = fetch(base + "assets/no-such-file.js")
    assert status == 404


def test_page_shows_an_entry_and_its_invalidate_button_removes_it(quiver, workdir):
    require_npm_packages(E2E)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM} (Debian's chromium package; scripts/setup.sh "
                    "installs it)", pytrace=False)
    srv = quiver(args=["--http", "127.0.0.1:0"])
    base = http_base(srv)
    client = srv.client()
    put(client, "dash/sales", pa.table({"region": ["north", "south", "east"], "n": [3, 5, 8]}))
    put(client, "dash/report", pa.table({"total": [16]}),
        app_metadata=json.dumps({"depends_on": ["dash/sales"]}).encode())
    put(client, "other/kept", pa.table({"x": [1]}))

    shot = workdir / "dashboard.png"
    done = subprocess.run(
        [node(), str(E2E / "dashboard_e2e.mjs"), "--url", base, "--key", "dash/sales",
         "--screenshot", str(shot), "--chromium", CHROMIUM],
        cwd=E2E, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["title"] == "Quiver dashboard"
    assert seen["headers"] == ["Key", "Kind", "Version", "Size", "Rows", "Cost", "Score",
                               "Accesses", "TTL left", "Depends on", "Actions"]
    # key, kind, version, size, rows, ...: the row of the entry put over Flight.
    assert seen["rowText"].startswith("dash/sales object 1 "), seen["rowText"]
    assert " 3 " in seen["rowText"] and "no expiry" in seen["rowText"], seen["rowText"]
    assert seen["pollError"] is None
    assert seen["counters"][0] == "3", seen["counters"]  # Entries, from /v1/stats

    # The screenshot is a real, non-blank picture of the page: a blank page has one colour;
    # text, borders and the table give hundreds, and cover more than a few percent of it.
    png = shot.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    picture = seen["screenshot"]
    assert picture["width"] == 1280 and picture["height"] >= 900, picture
    assert picture["distinct"] > 50 and picture["nonBackground"] > 0.02, picture

    # The click removed the entry and, by cascade, what depends on it.
    assert seen["status"].startswith("Invalidated dash/sales: removed "), seen["status"]
    assert "dash/report" in seen["status"], seen["status"]
    with pytest.raises(pa.ArrowKeyError, match="no object 'dash/sales'"):
        client.do_get(flight.Ticket(b"dash/sales")).read_all()
    remaining = pa.ipc.open_stream(
        next(iter(client.do_action(flight.Action("entries", b"")))).body).read_all()
    assert remaining.column("key").to_pylist() == ["other/kept"]
    assert action(client, "stats")["invalidations"] >= 1


def test_with_auth_the_page_sends_the_token_given_in_its_fragment(quiver, workdir):
    """With auth.mode tokens the page's API calls carry the token from `/#token=...`; without
    one the page shows the server's refusal and how to give a token."""
    from security_util import add_token, bearer

    require_npm_packages(E2E)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}", pytrace=False)
    tokens = workdir / "tokens.json"
    admin = add_token(tokens, "ops", "admin", tenant=None)
    srv = quiver.node(args=["--http", "127.0.0.1:0", "--auth", "tokens",
                            "--tokens-file", str(tokens)])
    base = http_base(srv)
    client = srv.client()
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("dash", "secure"),
                              pa.schema([("x", pa.int64())]), options=bearer(admin))
    writer.write_table(pa.table({"x": [1, 2]}))
    writer.close()
    # Without a token the API refuses the page (the page itself is public).
    status, _, body = fetch(base + "v1/stats")
    assert status == 401, body
    shot = workdir / "dashboard-auth.png"
    done = subprocess.run(
        [node(), str(E2E / "dashboard_e2e.mjs"), "--url", f"{base}#token={admin}",
         "--key", "dash/secure", "--screenshot", str(shot), "--chromium", CHROMIUM],
        cwd=E2E, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["rowText"].startswith("dash/secure object 1 "), seen["rowText"]
    assert seen["pollError"] is None and seen["counters"][0] == "1", seen
    assert seen["status"].startswith("Invalidated dash/secure"), seen["status"]
    with pytest.raises(pa.ArrowKeyError):
        client.do_get(flight.Ticket(b"dash/secure"), options=bearer(admin)).read_all()
