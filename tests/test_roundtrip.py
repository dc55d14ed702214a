"""Round-trip exactness: whatever pyarrow can put, Quiver gives back identically.

Covers every type family pyarrow produces (nulls everywhere), field and schema metadata,
canonical and user-defined extension types, dictionaries (including replacement
dictionaries between batches and nested dictionaries), zero rows, zero batches, many
small batches with their boundaries, and one ~256 MiB batch.
"""

import datetime as dt
import decimal
import json
import random

import numpy as np
import pyarrow as pa
import pytest

from quiver_util import descriptor, get, manifest_path, put

N = 41  # rows of the all-types table


# -- a user-defined extension type ------------------------------------------------------
class RationalType(pa.ExtensionType):
    """A parametrised user-defined extension type over struct<num, den>."""

    def __init__(self, unit: str):
        self.unit = unit
        super().__init__(pa.struct([("num", pa.int64()), ("den", pa.int64())]),
                         "quiver.test.rational")

    def __arrow_ext_serialize__(self):
        return json.dumps({"unit": self.unit}).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        return cls(json.loads(serialized)["unit"])


@pytest.fixture(scope="module", autouse=True)
def rational_registered():
    pa.register_extension_type(RationalType("m"))
    yield
    pa.unregister_extension_type("quiver.test.rational")


# -- building the all-types table -------------------------------------------------------
def with_nulls(values, seed):
    """Deterministically null out roughly a quarter of `values` (never all of them)."""
    r = random.Random(seed)
    out = [None if r.random() < 0.25 else v for v in values]
    out[0] = values[0]
    out[-1] = None
    return out


def int_values(bits, signed, seed):
    r = random.Random(seed)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    vals = [lo, hi, 0] + [r.randint(lo, hi) for _ in range(N - 3)]
    return with_nulls(vals, seed)


def strings(seed, n=N):
    r = random.Random(seed)
    pool = ["", "a", "héllo wörld", "日本語テキスト", "a much longer string that is not inlined",
            "emoji \U0001F600", "tab\tnewline\n", "x" * 100]
    return with_nulls([r.choice(pool) + str(i) for i in range(n)], seed)


def binaries(seed, n=N):
    r = random.Random(seed)
    return with_nulls([bytes(r.randrange(256) for _ in range(r.randrange(0, 30)))
                       for _ in range(n)], seed)


def lists_of(make_item, seed, n=N):
    r = random.Random(seed)
    out = []
    for i in range(n):
        k = r.randrange(0, 5)
        out.append([make_item(r) for _ in range(k)])
    return with_nulls(out, seed)


def build_all_types_table():
    cols = {}
    fields_meta = {}
    seed = iter(range(1000, 10000))

    def add(name, arr, metadata=None):
        assert len(arr) == N, name
        cols[name] = arr
        if metadata:
            fields_meta[name] = metadata

    # integers
    for bits in (8, 16, 32, 64):
        add(f"int{bits}", pa.array(int_values(bits, True, next(seed)), getattr(pa, f"int{bits}")()))
        add(f"uint{bits}", pa.array(int_values(bits, False, next(seed)),
                                    getattr(pa, f"uint{bits}")()))
    # floats (including signed zero, infinities, subnormals)
    special = [0.0, -0.0, float("inf"), float("-inf"), 5e-324, 1.5, -2.25]
    rf = random.Random(1)
    f64 = with_nulls(special + [rf.uniform(-1e6, 1e6) for _ in range(N - 7)], 11)
    add("float64", pa.array(f64, pa.float64()), {"unit": "metres"})
    add("float32", pa.array([None if v is None else float(np.float32(v)) for v in f64],
                            pa.float32()))
    f16 = np.array([0 if v is None else (v if abs(v) < 1e4 or np.isinf(v) else v / 1e3)
                    for v in f64], dtype=np.float16)
    add("float16", pa.array(f16, type=pa.float16(), mask=np.array([v is None for v in f64])))
    add("bool", pa.array(with_nulls([i % 3 == 0 for i in range(N)], 12), pa.bool_()))
    add("null", pa.nulls(N))

    # temporal
    dates = with_nulls([dt.date(1970, 1, 1) + dt.timedelta(days=37 * i - 400) for i in range(N)], 13)
    add("date32", pa.array(dates, pa.date32()))
    add("date64", pa.array(dates, pa.date64()))
    add("time32_s", pa.array(with_nulls([(i * 3607) % 86400 for i in range(N)], 14), pa.time32("s")))
    add("time32_ms", pa.array(with_nulls([(i * 3607001) % 86400000 for i in range(N)], 15),
                              pa.time32("ms")))
    add("time64_us", pa.array(with_nulls([(i * 3607000001) % 86400000000 for i in range(N)], 16),
                              pa.time64("us")))
    add("time64_ns", pa.array(with_nulls([(i * 3607000000001) % 86400000000000 for i in range(N)],
                                         17), pa.time64("ns")))
    for unit in ("s", "ms", "us", "ns"):
        ts = with_nulls([1_700_000_000 * 10 ** {"s": 0, "ms": 3, "us": 6, "ns": 9}[unit] + i * 7919
                         - 10 ** 12 * (i % 2) for i in range(N)], next(seed))
        add(f"ts_{unit}", pa.array(ts, pa.timestamp(unit)))
        add(f"ts_{unit}_utc", pa.array(ts, pa.timestamp(unit, tz="UTC")))
    add("ts_us_ny", pa.array(with_nulls([1_700_000_000_000_000 + i for i in range(N)], 18),
                             pa.timestamp("us", tz="America/New_York")))
    add("ts_ms_offset", pa.array(with_nulls([-86_400_000 * i for i in range(N)], 19),
                                 pa.timestamp("ms", tz="+05:30")))
    for unit in ("s", "ms", "us", "ns"):
        add(f"duration_{unit}", pa.array(with_nulls([(i - 20) * 123457 for i in range(N)],
                                                    next(seed)), pa.duration(unit)))
    add("interval_mdn", pa.array(with_nulls([pa.MonthDayNano([i - 5, -i, i * 10 ** 9 + 7])
                                             for i in range(N)], 20),
                                 pa.month_day_nano_interval()))

    # decimals
    r = random.Random(21)
    add("decimal32", pa.array(with_nulls([decimal.Decimal(r.randint(-10 ** 8, 10 ** 8)) / 100
                                          for _ in range(N)], 22), pa.decimal32(9, 2)))
    add("decimal64", pa.array(with_nulls([decimal.Decimal(r.randint(-10 ** 17, 10 ** 17)) / 10 ** 4
                                          for _ in range(N)], 23), pa.decimal64(18, 4)))
    d128 = [decimal.Decimal(r.randint(-10 ** 37, 10 ** 37)).scaleb(-10) for _ in range(N)]
    add("decimal128", pa.array(with_nulls(d128, 24), pa.decimal128(38, 10)), {"precise": "yes"})
    d256 = [decimal.Decimal(r.randint(-10 ** 75, 10 ** 75)).scaleb(-20) for _ in range(N)]
    add("decimal256", pa.array(with_nulls(d256, 25), pa.decimal256(76, 20)))

    # strings and binaries
    add("string", pa.array(strings(26), pa.string()), {"encoding": "utf-8", "empty": ""})
    add("large_string", pa.array(strings(27), pa.large_string()))
    add("string_view", pa.array(strings(28), pa.string_view()))
    add("binary", pa.array(binaries(29), pa.binary()))
    add("large_binary", pa.array(binaries(30), pa.large_binary()))
    add("binary_view", pa.array(binaries(31), pa.binary_view()))
    fsb = with_nulls([bytes([i, 255 - i, 0, i % 7, 42]) for i in range(N)], 32)
    add("fixed_size_binary", pa.array(fsb, pa.binary(5)))

    # lists
    add("list_int32", pa.array(lists_of(lambda r: r.choice([None, r.randint(-9, 9)]), 33),
                               pa.list_(pa.int32())))
    add("large_list_string", pa.array(lists_of(lambda r: r.choice([None, "a", "bcd", ""]), 34),
                                      pa.large_list(pa.string())))
    add("list_view_int16", pa.array(lists_of(lambda r: r.choice([None, r.randint(0, 99)]), 35),
                                    pa.list_view(pa.int16())))
    add("large_list_view_f64", pa.array(lists_of(lambda r: r.choice([None, r.random()]), 36),
                                        pa.large_list_view(pa.float64())))
    fsl = with_nulls([[float(i), None if i % 4 == 0 else -float(i), 0.5] for i in range(N)], 37)
    add("fixed_size_list", pa.array(fsl, pa.list_(pa.float32(), 3)))
    add("list_of_lists", pa.array(lists_of(lambda r: r.choice([None, [], [1, None, 3]]), 38),
                                  pa.list_(pa.list_(pa.int64()))))

    # struct (nested), map
    struct_type = pa.struct([
        pa.field("a", pa.int32()),
        pa.field("b", pa.struct([pa.field("c", pa.string()),
                                 pa.field("d", pa.list_(pa.bool_()))]),
                 metadata={"nested": "field metadata"}),
    ])
    r = random.Random(39)
    svals = with_nulls([{"a": r.choice([None, i]),
                         "b": r.choice([None, {"c": r.choice([None, f"c{i}"]),
                                               "d": r.choice([None, [True, None, False]])}])}
                        for i in range(N)], 40)
    add("struct", pa.array(svals, struct_type))
    mvals = with_nulls([[(f"k{j}", r.choice([None, j * i])) for j in range(i % 4)]
                        for i in range(N)], 41)
    add("map", pa.array(mvals, pa.map_(pa.string(), pa.int64())))
    add("list_of_struct", pa.array(lists_of(lambda r: r.choice([None, {"x": r.randint(0, 5),
                                                                       "y": None}]), 42),
                                   pa.list_(pa.struct([("x", pa.int8()), ("y", pa.string())]))))

    # unions
    type_ids = pa.array([i % 3 for i in range(N)], pa.int8())
    sparse = pa.UnionArray.from_sparse(
        type_ids,
        [pa.array(with_nulls(list(range(N)), 43), pa.int64()),
         pa.array(strings(44), pa.string()),
         pa.array(with_nulls([i % 2 == 0 for i in range(N)], 45), pa.bool_())],
        field_names=["i", "s", "b"], type_codes=[0, 1, 2])
    add("sparse_union", sparse)
    counts = [0, 0, 0]
    offsets = []
    for t in type_ids.to_pylist():
        offsets.append(counts[t])
        counts[t] += 1
    dense = pa.UnionArray.from_dense(
        pa.array([[5, 7, 9][t] for t in type_ids.to_pylist()], pa.int8()),
        pa.array(offsets, pa.int32()),
        [pa.array(with_nulls(list(range(counts[0])), 46), pa.int64()),
         pa.array(strings(47, counts[1]), pa.string()),
         pa.array(lists_of(lambda r: r.randint(0, 3), 48, counts[2]), pa.list_(pa.int8()))],
        field_names=["i", "s", "l"], type_codes=[5, 7, 9])
    add("dense_union", dense)

    # dictionaries
    words = pa.array(["alpha", "beta", None, "gamma", "δέλτα"], pa.string())
    idx = [None if i % 5 == 3 else i % 5 for i in range(N)]
    add("dict_int8_string", pa.DictionaryArray.from_arrays(pa.array(idx, pa.int8()), words))
    add("dict_uint16_large_string", pa.DictionaryArray.from_arrays(
        pa.array(idx, pa.uint16()), words.cast(pa.large_string())))
    add("dict_int32_binary_ordered", pa.DictionaryArray.from_arrays(
        pa.array(idx, pa.int32()), pa.array([b"a", b"b", b"c", b"d", b"e"]), ordered=True))
    add("dict_uint64_int64", pa.DictionaryArray.from_arrays(
        pa.array(idx, pa.uint64()), pa.array([10, 20, 30, None, 50], pa.int64())))
    add("dict_of_list", pa.DictionaryArray.from_arrays(
        pa.array(idx, pa.int16()),
        pa.array([[1, 2], None, [], [None], [3]], pa.list_(pa.int32()))))
    add("dict_of_struct", pa.DictionaryArray.from_arrays(
        pa.array(idx, pa.int64()),
        pa.array([{"p": 1, "q": "one"}, None, {"p": None, "q": None}, {"p": 4, "q": "four"},
                  {"p": 5, "q": ""}], pa.struct([("p", pa.int32()), ("q", pa.string())]))))
    inner_dict = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 1, 0, 2], pa.int32()),
                                                pa.array(["x", "y", "z"]))
    list_offsets = pa.array([0, 2, 2, 6] + [6] * (N - 3), pa.int32())
    add("list_of_dict", pa.ListArray.from_arrays(
        list_offsets, inner_dict, mask=pa.array([i == 1 for i in range(N)])))

    # run-end encoded
    for re_type, name in ((pa.int16(), "ree_int16_string"), (pa.int32(), "ree_int32_f64"),
                          (pa.int64(), "ree_int64_struct")):
        run_ends = [3, 4, 10, 20, 21, 35, N]
        if name.endswith("string"):
            values = pa.array(["a", None, "bb", "", None, "ccc", "d"], pa.string())
        elif name.endswith("f64"):
            values = pa.array([1.0, None, -1.0, 0.0, None, 2.5, 3.5], pa.float64())
        else:
            values = pa.array([{"u": i} if i % 3 else None for i in range(7)],
                              pa.struct([("u", pa.int32())]))
        add(name, pa.RunEndEncodedArray.from_arrays(pa.array(run_ends, re_type), values))

    # extension types: canonical and user-defined
    uuids = with_nulls([bytes(random.Random(i).randrange(256) for _ in range(16))
                        for i in range(N)], 49)
    add("uuid", pa.ExtensionArray.from_storage(pa.uuid(), pa.array(uuids, pa.binary(16))))
    add("json", pa.ExtensionArray.from_storage(
        pa.json_(), pa.array(with_nulls([json.dumps({"i": i, "v": [i, None]}) for i in range(N)],
                                        50), pa.string())))
    add("bool8", pa.ExtensionArray.from_storage(
        pa.bool8(), pa.array(with_nulls([i % 2 for i in range(N)], 51), pa.int8())))
    tensor_type = pa.fixed_shape_tensor(pa.float32(), [2, 2], dim_names=["r", "c"])
    add("tensor", pa.ExtensionArray.from_storage(tensor_type, pa.array(
        with_nulls([[float(i), 1.0, -1.0, 0.25] for i in range(N)], 52), pa.list_(pa.float32(), 4))))
    add("opaque", pa.ExtensionArray.from_storage(
        pa.opaque(pa.binary(), "geometry", "some.vendor"), pa.array(binaries(53))))
    rational = RationalType("m")
    add("rational", pa.ExtensionArray.from_storage(rational, pa.array(
        with_nulls([{"num": i, "den": i + 1} for i in range(N)], 54), rational.storage_type)),
        {"user": "defined"})

    fields = [pa.field(name, arr.type, nullable=True, metadata=fields_meta.get(name))
              for name, arr in cols.items()]
    fields.append(pa.field("not_nullable_id", pa.int32(), nullable=False))
    arrays = list(cols.values()) + [pa.array(range(N), pa.int32())]
    schema = pa.schema(fields, metadata={"origin": "quiver integration test",
                                         "binary-ish": "\u00ff\u0000 bytes", "empty": ""})
    return pa.Table.from_arrays(arrays, schema=schema)


@pytest.fixture(scope="module")
def all_types():
    return build_all_types_table()


def ipc_bytes(table):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        for b in table.to_batches():
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


def assert_same_table(got, want):
    assert got.schema.equals(want.schema, check_metadata=True), (
        f"schema differs:\n got {got.schema}\nwant {want.schema}")
    assert got.schema.metadata == want.schema.metadata
    for gf, wf in zip(got.schema, want.schema):
        # (pyarrow itself reads an extension field's absent metadata back as {})
        assert (gf.metadata or {}) == (wf.metadata or {}), gf.name
        assert gf.nullable == wf.nullable, gf.name
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        assert got.column(name).equals(want.column(name)), f"column {name} differs"
    assert got.equals(want, check_metadata=True)


def test_all_types_table_is_what_it_claims(all_types):
    # Guard against the generator silently dropping type families or nulls.
    ids = {f.type.id for f in all_types.schema}
    assert len(all_types.schema) >= 70
    for name in all_types.column_names:
        col = all_types.column(name)
        if name == "not_nullable_id":
            continue
        assert col.null_count > 0 or pa.types.is_union(col.type) or \
            pa.types.is_run_end_encoded(col.type) or pa.types.is_dictionary(col.type) or \
            name == "list_of_dict", f"{name} has no nulls"
    assert len(ids) >= 40
    all_types.validate(full=True)


@pytest.mark.parametrize("nbatches", [1, 3])
def test_all_types_round_trip(server, all_types, nbatches):
    client = server.client()
    if nbatches == 1:
        table = all_types.combine_chunks()
    else:  # uneven slices: the client writer must handle non-zero offsets
        table = pa.Table.from_batches([all_types.slice(0, 7).combine_chunks().to_batches()[0],
                                       all_types.slice(7, 30).combine_chunks().to_batches()[0],
                                       all_types.slice(37).combine_chunks().to_batches()[0]])
    ref = put(client, "types/all", table)
    assert ref["key"] == "types/all" and ref["version"] == 1
    assert ref["endpoint"] == server.location

    got, meta, rows, nmeta = get(client, "types/all")
    assert meta == {"endpoint": server.location, "key": "types/all", "version": 1,
                    "status": "ok"}
    assert nmeta == 1, "only the first batch carries app_metadata"
    assert rows == [b.num_rows for b in table.to_batches()]
    assert_same_table(got, table)
    # Bit-exactness, beyond logical equality: re-serialising gives the same IPC bytes.
    assert ipc_bytes(got) == ipc_bytes(table)

    # The metadata calls report the same schema, including metadata.
    info = client.get_flight_info(descriptor("types/all"))
    assert info.schema.equals(table.schema, check_metadata=True)
    assert client.get_schema(descriptor("types/all")).schema.equals(table.schema,
                                                                     check_metadata=True)
    assert info.total_records == table.num_rows


def test_user_extension_type_survives_unregistered_on_server(server, all_types):
    # The server does not know quiver.test.rational; it must pass the extension
    # annotation through so that a client that knows it gets it back.
    client = server.client()
    table = all_types.select(["rational"])
    put(client, "types/rational", table)
    got = get(client, "types/rational")[0]
    assert isinstance(got.schema.field("rational").type, RationalType)
    assert got.schema.field("rational").type.unit == "m"
    assert got.equals(table, check_metadata=True)


def test_float_bits_exact(server):
    # NaN payloads, signed zeros and subnormals must come back bit for bit.
    bits64 = np.array([0x7FF8000000000001, 0xFFF0000000000001, 0x8000000000000000, 1,
                       0x7FEFFFFFFFFFFFFF, 0x7FF4000000000000], dtype=np.uint64)
    bits32 = np.array([0x7FC00001, 0xFF800001, 0x80000000, 1, 0x7F7FFFFF, 0x7FA00000],
                      dtype=np.uint32)
    bits16 = np.array([0x7E01, 0xFC01, 0x8000, 1, 0x7BFF, 0x7D00], dtype=np.uint16)
    table = pa.table({"f64": pa.array(bits64.view(np.float64)),
                      "f32": pa.array(bits32.view(np.float32)),
                      "f16": pa.array(bits16.view(np.float16), type=pa.float16())})
    client = server.client()
    put(client, "types/floatbits", table)
    got = get(client, "types/floatbits")[0].combine_chunks()
    assert np.array_equal(got.column("f64").to_numpy().view(np.uint64), bits64)
    assert np.array_equal(got.column("f32").to_numpy().view(np.uint32), bits32)
    assert np.array_equal(got.column("f16").to_numpy().view(np.uint16), bits16)


def test_replacement_dictionaries_between_batches(server):
    # Each batch has its own dictionary: the stream carries replacement dictionaries.
    schema = pa.schema([("d", pa.dictionary(pa.int32(), pa.string())), ("i", pa.int64())])
    batches = []
    for k, words in enumerate((["a", "b"], ["c", "d", "e"], ["a"], [])):
        n = 6 if words else 0
        idx = pa.array([j % len(words) if words else 0 for j in range(n)], pa.int32())
        d = pa.DictionaryArray.from_arrays(idx, pa.array(words, pa.string()))
        batches.append(pa.record_batch([d, pa.array(range(n), pa.int64())], schema=schema))
    table = pa.Table.from_batches(batches, schema=schema)
    client = server.client()
    # (Table.to_batches() would drop the empty batch; send the batches themselves)
    put(client, "types/dicts", None, schema=schema, batches=batches)
    got, meta, rows, _ = get(client, "types/dicts")
    assert rows == [6, 6, 6, 0]
    assert got.column("d").to_pylist() == table.column("d").to_pylist()
    for g, w in zip(got.to_batches(), batches):
        assert g.column(0).dictionary.equals(w.column(0).dictionary)
        assert g.equals(w)


def test_zero_rows_one_empty_batch(server, all_types):
    client = server.client()
    empty = all_types.slice(0, 0).combine_chunks()
    batch = pa.RecordBatch.from_arrays([c.combine_chunks() if c.num_chunks else
                                        pa.array([], c.type) for c in empty.columns],
                                       schema=empty.schema)
    assert batch.num_rows == 0
    ref = put(client, "empty/rows", batch)
    got, meta, rows, nmeta = get(client, "empty/rows")
    assert rows == [0], "the single empty batch is preserved"
    assert meta["version"] == ref["version"] and meta["status"] == "ok"
    assert got.num_rows == 0
    assert got.schema.equals(all_types.schema, check_metadata=True)
    info = client.get_flight_info(descriptor("empty/rows"))
    assert info.total_records == 0


def test_zero_batches_schema_only(server, all_types):
    client = server.client()
    ref = put(client, "empty/batches", None, schema=all_types.schema, batches=[])
    assert ref["version"] == 1
    got, meta, rows, nmeta = get(client, "empty/batches")
    assert rows == [] and nmeta == 0 and meta is None
    assert got.num_rows == 0
    assert got.schema.equals(all_types.schema, check_metadata=True)
    info = client.get_flight_info(descriptor("empty/batches"))
    assert info.total_records == 0
    assert json.loads(info.app_metadata)["version"] == 1
    # A zero-batch object is still versioned and replaceable.
    assert put(client, "empty/batches", None, schema=all_types.schema, batches=[],
               if_version=1)["version"] == 2


def test_many_small_batches_keep_boundaries(server):
    client = server.client()
    schema = pa.schema([("i", pa.int64()), ("s", pa.string())])
    batches = [pa.record_batch([pa.array(range(k * 10, k * 10 + 10), pa.int64()),
                                pa.array([f"b{k}r{j}" for j in range(10)])], schema=schema)
               for k in range(2000)]
    ref = put(client, "many/small", None, schema=schema, batches=batches)
    got, meta, rows, nmeta = get(client, "many/small")
    assert rows == [10] * 2000
    assert [b.num_rows for b in got.to_batches()] == [10] * 2000
    assert nmeta == 1 and meta["version"] == ref["version"]
    assert got.equals(pa.Table.from_batches(batches))
    manifest = json.loads(manifest_path(server.data_dir, "many/small", ref["version"]).read_text())
    assert manifest["batches"] == 2000 and manifest["rows"] == 20000


def test_one_big_batch(server):
    client = server.client()
    n = 16 << 20  # 16 Mi rows x (8 + 8) bytes = 256 MiB
    rng = np.random.default_rng(7)
    table = pa.table({"i": rng.integers(-(1 << 62), 1 << 62, size=n, dtype=np.int64),
                      "f": rng.standard_normal(n)})
    assert table.nbytes >= 256 << 20
    ref = put(client, "big/one", table.combine_chunks())
    info = client.get_flight_info(descriptor("big/one"))
    assert info.total_records == n
    assert info.total_bytes >= 256 << 20
    blob = json.loads(info.app_metadata)
    assert blob["version"] == ref["version"]
    got, meta, rows, _ = get(client, "big/one")
    assert rows == [n]
    assert meta["version"] == ref["version"]
    assert got.column("i").equals(table.column("i"))
    assert got.column("f").equals(table.column("f"))
    data = server.data_files()
    assert len(data) == 1 and data[0].stat().st_size == info.total_bytes
