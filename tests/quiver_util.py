"""Small pyarrow.flight helpers for talking to Quiver in tests."""

import json
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descriptor(key):
    """FlightDescriptor for a key given as "s/o" text or a sequence of segments."""
    segments = key.split("/") if isinstance(key, str) else list(key)
    return flight.FlightDescriptor.for_path(*segments)


def _batches(data):
    if isinstance(data, pa.Table):
        return data.schema, data.to_batches()
    if isinstance(data, pa.RecordBatch):
        return data.schema, [data]
    raise TypeError(data)


def put(client, key, data, *, if_version=None, app_metadata=None, schema=None,
        batches=None):
    """DoPut `data` (Table or RecordBatch; or `schema` + `batches`) under `key`.

    Options go on a metadata-only first message: {"if_version": N} when if_version is
    given, or the raw `app_metadata` bytes. Returns the server's PutResult JSON as a dict.
    Raises the server's error (pyarrow exception) when the put fails.
    """
    if data is not None:
        schema, batches = _batches(data)
    writer, reader = client.do_put(descriptor(key), schema)
    result = None
    error = None
    try:
        if if_version is not None:
            writer.write_metadata(json.dumps({"if_version": if_version}).encode())
        elif app_metadata is not None:
            writer.write_metadata(app_metadata)
        for b in batches:
            writer.write_batch(b)
        writer.done_writing()
        buf = reader.read()
        result = buf.to_pybytes() if buf is not None else None
    except pa.ArrowException as e:
        error = e
    try:
        writer.close()  # returns the server's final status
    except pa.ArrowException as e:
        # The close error carries the server's status; prefer it over a generic write error.
        error = e
    if error is not None:
        raise error
    assert result is not None, "DoPut succeeded but the server sent no PutResult"
    return json.loads(result)


def write_config(workdir, name, content):
    """A config file for `quiver serve --config`: `content` is a dict (written as JSON) or
    text. Returns its path."""
    path = workdir / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def chunks(reader):
    """Every chunk of a Flight stream reader, in order, until the stream ends."""
    while True:
        try:
            yield reader.read_chunk()
        except StopIteration:
            return


def get(client, ticket):
    """DoGet. Returns (table, first_chunk_app_metadata_dict_or_None, batch_row_counts)."""
    if isinstance(ticket, str):
        ticket = ticket.encode()
    reader = client.do_get(flight.Ticket(ticket))
    batches = []
    first_meta = None
    metas = []
    for chunk in chunks(reader):
        if chunk.app_metadata is not None:
            metas.append(chunk.app_metadata.to_pybytes())
        if chunk.data is not None:
            batches.append(chunk.data)
    if metas:
        first_meta = json.loads(metas[0])
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return table, first_meta, [b.num_rows for b in batches], len(metas)


def get_table(client, ticket):
    return get(client, ticket)[0]


def action(client, name, body=b""):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    results = list(client.do_action(flight.Action(name, body)))
    assert len(results) == 1, results
    return json.loads(results[0].body.to_pybytes())


def stats(client):
    return action(client, "stats")


def latest_version(client, key):
    info = client.get_flight_info(descriptor(key))
    return json.loads(info.app_metadata)["version"]


def manifest_versions(data_dir, key):
    """Versions of `key` whose manifests are in the data dir, ascending. Manifest names are
    unique per write: manifests/<key>/@v/<20-digit version>-<node>-<random>.json."""
    folder = Path(data_dir) / "manifests" / key / "@v"
    if not folder.is_dir():
        return []
    return sorted(int(p.name[:20]) for p in folder.glob("*.json"))


def manifest_path(data_dir, key, version):
    """The one manifest of (key, version)."""
    found = list((Path(data_dir) / "manifests" / key / "@v").glob(f"{version:020d}-*.json"))
    assert len(found) == 1, f"expected one manifest of {key}@{version}, found {found}"
    return found[0]


def corrupt_byte(path, offset):
    """Flip the bits of one byte of a file in place (same size, other content)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))
