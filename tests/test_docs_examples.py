"""docs/api.md, queries.md, management.md, python.md, python-cache.md and artifacts.md promise
that their example blocks run, in order, against a fresh server."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sdk_util  # noqa: F401  (the SDK pages import quiver from python/)

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


def test_query_examples_run(quiver, workdir):
    db = workdir / "demo.db"
    subprocess.run([sys.executable, str(DOC.parent.parent / "scripts" / "make_demo_db.py"),
                    str(db), "--rows", "20000"], check=True, stdout=subprocess.DEVNULL)
    srv = quiver(args=["--source", f"demo=sqlite://{db}"])
    run_doc_examples(DOC.parent / "queries.md", srv.location)


def test_management_examples_run(quiver):
    srv = quiver(args=["--cache-size", "64MiB", "--memory-size", "8MiB"])
    run_doc_examples(DOC.parent / "management.md", srv.location)


def test_python_sdk_examples_run(quiver, workdir):
    db = workdir / "demo.db"
    subprocess.run([sys.executable, str(DOC.parent.parent / "scripts" / "make_demo_db.py"),
                    str(db), "--rows", "20000"], check=True, stdout=subprocess.DEVNULL)
    srv = quiver(args=["--source", f"demo=sqlite://{db}"])
    run_doc_examples(DOC.parent / "python.md", srv.location)


def test_python_cache_examples_run(server):
    run_doc_examples(DOC.parent / "python-cache.md", server.location)


def test_artifact_examples_run(quiver, workdir):
    root = workdir / "artifacts"
    root.mkdir()
    config = workdir / "artifacts.json"
    config.write_text(json.dumps({"artifacts": {"allowed_prefixes": [f"file://{root}/"]}}))
    srv = quiver(args=["--config", str(config)])
    run_doc_examples(DOC.parent / "artifacts.md", srv.location, {"/srv/artifacts": str(root)})
