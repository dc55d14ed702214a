"""docs/api.md, queries.md, management.md, python.md, python-cache.md, artifacts.md and
views.md promise that their example blocks run, in order, against a fresh server."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import sdk_util  # noqa: F401  (the SDK pages import quiver from python/)
from sdk_util import artifact_server  # noqa: F401  (fixture)

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
DOC_LOCATION = "grpc://127.0.0.1:8815"


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def run_doc_examples(doc, location, replace=None):
    """Run every python block of `doc`, in order, in one namespace, against `location`
    (and with each key of `replace` replaced by its value)."""
    if not doc.is_file():
        pytest.fail(f"{doc} is missing")
    blocks = python_blocks(doc.read_text())
    assert len(blocks) >= 5, f"expected several example blocks in {doc.name}"
    assert DOC_LOCATION in blocks[0]
    namespace = {"__name__": f"docs_{doc.stem}_examples"}
    try:
        for i, block in enumerate(blocks):
            block = block.replace(DOC_LOCATION, location)
            for old, new in (replace or {}).items():
                block = block.replace(old, new)
            exec(compile(block, f"{doc}#block{i}", "exec"), namespace)
    finally:
        client = namespace.get("client")
        if client is not None:
            client.close()


def test_api_examples_run(server):
    run_doc_examples(DOC, server.location)


def demo_server(quiver, workdir):
    """A server with the demo database (scripts/make_demo_db.py, 20,000 rows) as `demo`."""
    db = workdir / "demo.db"
    if not db.exists():
        subprocess.run([sys.executable, str(DOC.parent.parent / "scripts" / "make_demo_db.py"),
                        str(db), "--rows", "20000"], check=True, stdout=subprocess.DEVNULL)
    return quiver(args=["--source", f"demo=sqlite://{db}"])


def test_query_examples_run(quiver, workdir):
    run_doc_examples(DOC.parent / "queries.md", demo_server(quiver, workdir).location)


def test_management_examples_run(quiver):
    srv = quiver(args=["--cache-size", "64MiB", "--memory-size", "8MiB"])
    run_doc_examples(DOC.parent / "management.md", srv.location)


def test_python_sdk_examples_run(quiver, workdir):
    run_doc_examples(DOC.parent / "python.md", demo_server(quiver, workdir).location)


def test_python_cache_examples_run(server):
    run_doc_examples(DOC.parent / "python-cache.md", server.location)


def test_artifact_examples_run(artifact_server):
    run_doc_examples(DOC.parent / "artifacts.md", artifact_server.location,
                     {"/srv/artifacts": str(artifact_server.artifacts)})


def test_view_examples_run(quiver, workdir):
    run_doc_examples(DOC.parent / "views.md", demo_server(quiver, workdir).location)
