"""The data cache: slices, projections, filters, sorts and encodings of cached objects and
query results, served from derived entries that depend on their source (docs/views.md)."""

import io
import json
import sqlite3

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.flight as flight
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from management_util import entry_map
from quiver_util import action, chunks, put
from query_util import run_query, wait_for

SOURCE_KEY = "views/sales"


def sales_table():
    n = 3000
    ids = pa.array(range(n), pa.int64())
    price = pa.array([None if i % 97 == 0 else (i * 7919 % 1000) / 10 for i in range(n)],
                     pa.float64())
    region = pa.array([None if i % 131 == 0 else ["EU", "US", "APAC", "LATAM"][i * 31 % 4]
                       for i in range(n)])
    return pa.table({"id": ids, "price": price, "region": region})


def put_sales(client, table=None):
    table = table if table is not None else sales_table()
    # Several batches, so slices and limits cross batch boundaries.
    return put(client, SOURCE_KEY, None, schema=table.schema,
               batches=table.to_batches(max_chunksize=700))


def view(client, **ticket):
    """DoGet a view ticket. Returns (table, first app_metadata as a dict)."""
    reader = client.do_get(flight.Ticket(json.dumps(ticket).encode()))
    batches, metas = [], []
    for chunk in chunks(reader):
        if chunk.app_metadata is not None:
            metas.append(json.loads(chunk.app_metadata.to_pybytes()))
        if chunk.data is not None:
            batches.append(chunk.data)
    assert metas, "a view's first batch carries its metadata"
    return pa.Table.from_batches(batches, schema=reader.schema), metas[0]


def encoded_bytes(table):
    assert table.schema.names == ["bytes"]
    assert table.schema.metadata[b"quiver.encoding"]
    return b"".join(v.as_py() for v in table.column("bytes"))


@pytest.fixture
def server(quiver):
    return quiver()


def test_views_equal_pyarrow_compute(server):
    c = server.client()
    put_sales(c)
    t = sales_table()
    eu_us = pc.field("region").isin(["EU", "US"])
    cases = [
        ({"columns": ["region", "id"]}, t.select(["region", "id"])),
        ({"offset": 650, "limit": 100}, t.slice(650, 100)),
        ({"offset": 2990}, t.slice(2990)),
        ({"filter": "price > 50 and (region = 'EU' or region = 'US')"},
         t.filter((pc.field("price") > 50) & eu_us)),
        ({"filter": "region is null or price is null", "columns": ["id"]},
         t.filter(pc.field("region").is_null() | pc.field("price").is_null()).select(["id"])),
        ({"filter": "id in (3, 700, 2999) or not (id >= 2)"},
         t.filter(pc.field("id").isin([0, 1, 3, 700, 2999]))),
        ({"filter": "region != 'EU' and price <= 1.5", "offset": 2, "limit": 5},
         t.filter((pc.field("region") != "EU") & (pc.field("price") <= 1.5)).slice(2, 5)),
        ({"sort": ["-price", "id"], "limit": 25, "columns": ["id", "price"]},
         t.sort_by([("price", "descending"), ("id", "ascending")]).slice(0, 25)
          .select(["id", "price"])),
        ({"sort": ["region desc"], "filter": "price > 90", "offset": 3, "limit": 40},
         t.filter(pc.field("price") > 90).sort_by([("region", "descending")]).slice(3, 40)),
        ({"filter": "id < 0"}, t.slice(0, 0)),
        # A small limit is a top-k selection: it must order ties and nulls as the full sort.
        ({"filter": "region is null or id < 3", "sort": ["region"], "offset": 1, "limit": 4},
         t.filter(pc.field("region").is_null() | (pc.field("id") < 3))
          .sort_by([("region", "ascending")]).slice(1, 4)),
        ({"filter": "region is null or id < 3", "sort": ["-region"], "offset": 1, "limit": 4},
         t.filter(pc.field("region").is_null() | (pc.field("id") < 3))
          .sort_by([("region", "descending")]).slice(1, 4)),
    ]
    for spec, expected in cases:
        got, meta = view(c, key=SOURCE_KEY, **spec)
        assert got.equals(expected), spec
        assert meta["source"] == {"key": SOURCE_KEY, "version": 1,
                                  "created_ms": meta["source"]["created_ms"]}
        assert meta["cache"] == "miss" and meta["stored"] is True and meta["rows"] == len(expected)


def test_second_request_is_served_from_the_derived_entry(server):
    c = server.client()
    put_sales(c)
    spec = {"key": SOURCE_KEY, "columns": ["id"], "filter": "region = 'APAC'", "limit": 10}
    first, m1 = view(c, **spec)
    second, m2 = view(c, **spec)
    assert m1["cache"] == "miss" and m2["cache"] == "hit"
    assert m2["key"] == m1["key"] and len(m1["key"]) == 64
    assert second.equals(first) and first.num_rows == 10
    # The same view spelled differently (field order, "asc") is the same derived entry.
    _, m3 = view(c, limit=10, filter="region = 'APAC'", columns=["id"], key=SOURCE_KEY)
    assert m3["cache"] == "hit" and m3["key"] == m1["key"]
    row = entry_map(c)["@q/" + m1["key"]]
    assert row["kind"] == "derived" and row["depends_on"] == [SOURCE_KEY]
    assert row["rows"] == 10
    # Derived entries are not objects: ListFlights shows only the source.
    listed = [info.descriptor.path for info in c.list_flights()]
    assert listed == [[b"views", b"sales"]]


def test_encodings_decode_to_the_view(server):
    c = server.client()
    put_sales(c)
    expected = sales_table().filter(pc.field("price") > 80).select(["id", "region", "price"])
    spec = {"key": SOURCE_KEY, "filter": "price > 80", "columns": ["id", "region", "price"]}
    decoders = {
        "parquet": lambda b: pq.read_table(io.BytesIO(b)),
        "arrow-file": lambda b: pa.ipc.open_file(pa.BufferReader(b)).read_all(),
        "csv": lambda b: pacsv.read_csv(io.BytesIO(b), convert_options=pacsv.ConvertOptions(
            column_types=expected.schema, strings_can_be_null=True)),
        "jsonl": lambda b: pajson.read_json(io.BytesIO(b), parse_options=pajson.ParseOptions(
            explicit_schema=expected.schema)),
    }
    for fmt, decode in decoders.items():
        table, meta = view(c, format=fmt, **spec)
        assert meta["encoded"] is True and meta["format"] == fmt, meta
        decoded = decode(encoded_bytes(table))
        assert decoded.combine_chunks().equals(expected.combine_chunks()), fmt
    assert view(c, format="csv", **spec)[1]["cache"] == "hit"
    # A format alone (no slice) is a view too: the whole table as Parquet.
    whole, _ = view(c, key=SOURCE_KEY, format="parquet")
    assert pq.read_table(io.BytesIO(encoded_bytes(whole))).equals(sales_table())


def derived_keys(client):
    return {k for k, row in entry_map(client).items() if row["kind"] == "derived"}


def test_invalidating_or_replacing_the_source_removes_derived_entries(server):
    c = server.client()
    put_sales(c)
    _, parquet = view(c, key=SOURCE_KEY, format="parquet", limit=5)
    _, sliced = view(c, key=SOURCE_KEY, offset=10, limit=5)
    assert derived_keys(c) == {"@q/" + parquet["key"], "@q/" + sliced["key"]}
    removed = action(c, "invalidate", {"key": SOURCE_KEY})["removed"]
    assert set(removed) == {SOURCE_KEY, "@q/" + parquet["key"], "@q/" + sliced["key"]}
    assert derived_keys(c) == set()
    with pytest.raises(KeyError, match="no object 'views/sales'"):
        view(c, key=SOURCE_KEY, limit=5)

    # A new version replaces the source: what was derived from the old one goes at once, and
    # the next view is derived from the new data.
    put_sales(c)
    _, old = view(c, key=SOURCE_KEY, limit=3)
    assert derived_keys(c) == {"@q/" + old["key"]}
    doubled = sales_table().set_column(0, "id", pc.multiply(sales_table()["id"], 2))
    put_sales(c, doubled)
    wait_for(lambda: derived_keys(c) == set(), what="the derived entry of version 1 to go")
    table, new = view(c, key=SOURCE_KEY, limit=3)
    before = old["source"]["version"]
    assert new["cache"] == "miss" and new["source"]["version"] == before + 1
    assert new["key"] != old["key"] and table.column("id").to_pylist() == [0, 2, 4]
    # An older version kept by the store can still be viewed by number.
    table, v1 = view(c, key=SOURCE_KEY, version=before, limit=3)
    assert v1["source"]["version"] == before and table.column("id").to_pylist() == [0, 1, 2]


@pytest.fixture
def lite_server(quiver, workdir):
    path = workdir / "shop.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, grp TEXT, amount INTEGER)")
    con.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                    [(i, f"g{i % 4}", i * 37 % 500) for i in range(1, 2001)])
    con.commit()
    con.close()
    return quiver(args=["--source", f"lite=sqlite://{path}"])


def test_views_of_a_cached_query_result(lite_server):
    c = lite_server.client()
    sql = "SELECT id, grp, amount FROM orders ORDER BY id"
    result, metas = run_query(c, source="lite", sql=sql)
    key = metas[0]["key"]
    wait_for(lambda: f"@q/{key}" in entry_map(c), what="the query result to be cached")
    got, meta = view(c, key=key, filter="grp = 'g1' and amount > 250", sort=["-amount", "id"],
                     columns=["id", "amount"], limit=20)
    expected = (result.filter((pc.field("grp") == "g1") & (pc.field("amount") > 250))
                .sort_by([("amount", "descending"), ("id", "ascending")]).slice(0, 20)
                .select(["id", "amount"]))
    assert got.equals(expected)
    assert meta["source"]["key"] == key and meta["cache"] == "miss"
    # It expires with the query result, and depends on it.
    row = entry_map(c)["@q/" + meta["key"]]
    assert row["expires"] == entry_map(c)[f"@q/{key}"]["expires"]
    assert row["depends_on"] == [f"@q/{key}"]
    assert view(c, key=key, filter="grp = 'g1' and amount > 250", sort=["-amount", "id"],
                columns=["id", "amount"], limit=20)[1]["cache"] == "hit"
    # Invalidating the query result removes the view with it.
    removed = action(c, "invalidate", {"key": f"@q/{key}"})["removed"]
    assert sorted(removed) == sorted([f"@q/{key}", "@q/" + meta["key"]])
    with pytest.raises(KeyError, match="no cached result"):
        view(c, key=key, limit=1)


def test_bad_views_name_the_problem(server):
    c = server.client()
    put_sales(c)
    bad = [
        ({"filter": "prise > 10"}, "unknown column 'prise'"),
        ({"filter": "price > "}, "position 9"),
        ({"filter": "price = 'cheap'"}, "cannot compare column 'price'"),
        ({"columns": ["id", "nope"]}, "unknown column 'nope'"),
        ({"sort": ["-nope"]}, "sort: unknown column 'nope'"),
        ({"limit": -1}, "'limit'"),
        ({"format": "xlsx"}, "unknown format 'xlsx'"),
        ({"limit": 1, "colums": ["id"]}, "unknown view ticket field 'colums'"),
    ]
    for spec, message in bad:
        with pytest.raises(pa.ArrowInvalid, match=message):
            view(c, key=SOURCE_KEY, **spec)
    with pytest.raises(KeyError, match="no object 'views/missing'"):
        view(c, key="views/missing", limit=1)
    with pytest.raises(KeyError, match="no cached result"):
        view(c, key="ab" * 32, limit=1)
    assert derived_keys(c) == set()  # nothing derived from a bad request


def test_a_view_the_budget_cannot_hold_is_served_uncached(quiver):
    srv = quiver(args=["--cache-size", "120KiB"])
    c = srv.client()
    put_sales(c)
    source_bytes = entry_map(c)[SOURCE_KEY]["bytes"]
    assert 60_000 < source_bytes < 120 * 1024
    # The whole table again as an Arrow file: about the source's size, which the budget cannot
    # hold next to the source -- and evicting the source for it would leave it unreachable.
    table, meta = view(c, key=SOURCE_KEY, format="arrow-file")
    decoded = pa.ipc.open_file(pa.BufferReader(encoded_bytes(table))).read_all()
    assert decoded.equals(sales_table())
    assert meta["stored"] is False and "not admitted" in meta["reason"], meta
    assert list(entry_map(c)) == [SOURCE_KEY]
    assert action(c, "stats")["views"]["not_stored"] == 1
    # A small view fits, and is cached.
    _, small = view(c, key=SOURCE_KEY, format="csv", limit=10)
    assert small["stored"] is True and derived_keys(c) == {"@q/" + small["key"]}


def test_evicting_a_source_evicts_its_views(quiver):
    srv = quiver(args=["--cache-size", "120KiB"])
    c = srv.client()
    put_sales(c)
    _, small = view(c, key=SOURCE_KEY, columns=["id"], limit=10)
    assert derived_keys(c) == {"@q/" + small["key"]}
    # Another object as large as the source: the source has to go, and its view with it.
    put(c, "views/other", sales_table())
    assert SOURCE_KEY not in entry_map(c)
    assert derived_keys(c) == set()
    assert "views/other" in entry_map(c)


def test_a_view_that_changes_nothing_is_the_entry_itself(server):
    c = server.client()
    put_sales(c)
    table, meta = view(c, key=SOURCE_KEY, format="arrow")
    assert table.equals(sales_table()) and meta["source"]["key"] == SOURCE_KEY
    assert derived_keys(c) == set()
