"""docs/api.md promises that its example blocks run, in order, against a fresh server."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
DOC_LOCATION = "grpc://127.0.0.1:8815"


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_api_examples_run(server):
    if not DOC.is_file():
        pytest.fail(f"{DOC} is missing")
    text = DOC.read_text()
    blocks = python_blocks(text)
    assert len(blocks) >= 5, "expected several example blocks in docs/api.md"
    assert DOC_LOCATION in blocks[0]
    namespace = {"__name__": "docs_api_examples"}
    try:
        for i, block in enumerate(blocks):
            code = compile(block.replace(DOC_LOCATION, server.location), f"{DOC}#block{i}",
                           "exec")
            exec(code, namespace)
    finally:
        client = namespace.get("client")
        if client is not None:
            client.close()


QUERIES_DOC = DOC.parent / "queries.md"


def test_query_examples_run(quiver, workdir):
    import subprocess
    import sys

    db = workdir / "demo.db"
    subprocess.run([sys.executable, str(DOC.parent.parent / "scripts" / "make_demo_db.py"),
                    str(db), "--rows", "20000"], check=True, stdout=subprocess.DEVNULL)
    srv = quiver(args=["--source", f"demo=sqlite://{db}"])
    blocks = python_blocks(QUERIES_DOC.read_text())
    assert len(blocks) >= 5
    assert DOC_LOCATION in blocks[0]
    namespace = {"__name__": "docs_query_examples"}
    try:
        for i, block in enumerate(blocks):
            exec(compile(block.replace(DOC_LOCATION, srv.location), f"{QUERIES_DOC}#block{i}",
                         "exec"), namespace)
    finally:
        client = namespace.get("client")
        if client is not None:
            client.close()


MANAGEMENT_DOC = DOC.parent / "management.md"


def test_management_examples_run(quiver):
    srv = quiver(args=["--cache-size", "64MiB", "--memory-size", "8MiB"])
    blocks = python_blocks(MANAGEMENT_DOC.read_text())
    assert len(blocks) >= 5
    assert DOC_LOCATION in blocks[0]
    namespace = {"__name__": "docs_management_examples"}
    try:
        for i, block in enumerate(blocks):
            exec(compile(block.replace(DOC_LOCATION, srv.location), f"{MANAGEMENT_DOC}#block{i}",
                         "exec"), namespace)
    finally:
        client = namespace.get("client")
        if client is not None:
            client.close()
