"""A raw Arrow Flight DoPut client for sending hand-made (and deliberately broken) streams.

pyarrow.flight only sends well-formed IPC, so to test how Quiver handles malformed or
truncated IPC, or a schema change in the middle of a stream, this module talks gRPC
directly with grpcio: a generic stream-stream call to
``/arrow.flight.protocol.FlightService/DoPut`` whose request messages are ``FlightData``
protobufs encoded by hand (no generated code needed):

    message FlightDescriptor { DescriptorType type = 1;   // PATH = 1
                               bytes cmd = 2; repeated string path = 3; }
    message FlightData { FlightDescriptor flight_descriptor = 1;
                         bytes data_header = 2;     // the IPC flatbuffer Message
                         bytes app_metadata = 3;
                         bytes data_body = 1000; }  // the IPC message body
    message PutResult { bytes app_metadata = 1; }

``ipc_messages()`` produces real message bytes by serializing with pyarrow and splitting
the IPC stream with ``pa.ipc.MessageReader``: ``header`` is the flatbuffer that follows
the 0xFFFFFFFF continuation marker and int32 length prefix, ``body`` the message body.
Tests then corrupt those bytes before sending them with ``raw_do_put()``.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import grpc
import pyarrow as pa

DO_PUT_METHOD = "/arrow.flight.protocol.FlightService/DoPut"
PATH = 1  # FlightDescriptor.DescriptorType.PATH


# -- protobuf wire format ------------------------------------------------------------------
def varint(value: int) -> bytes:
    assert value >= 0
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def encode_path_descriptor(path: Sequence[str]) -> bytes:
    out = _varint_field(1, PATH)
    for segment in path:
        out += _len_field(3, segment.encode())
    return out


def encode_flight_data(*, path: Optional[Sequence[str]] = None, header: bytes = b"",
                       body: bytes = b"", app_metadata: Optional[bytes] = None) -> bytes:
    """One FlightData message. Empty fields are omitted, as protobuf does."""
    out = b""
    if path is not None:
        out += _len_field(1, encode_path_descriptor(path))
    if header:
        out += _len_field(2, header)
    if app_metadata is not None:
        out += _len_field(3, app_metadata)
    if body:
        out += _len_field(1000, body)
    return out


def decode_fields(data: bytes) -> dict:
    """Decode a flat protobuf message into {field_number: [values]} (bytes or int)."""
    fields = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _read_varint(data: bytes, i: int):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


# -- IPC messages ------------------------------------------------------------------------
@dataclass
class IpcMessage:
    type: str       # "schema", "record batch", "dictionary"
    header: bytes   # flatbuffer Message
    body: bytes


def ipc_messages(schema: pa.Schema, batches: Sequence[pa.RecordBatch] = ()) -> List[IpcMessage]:
    """Serialize schema + batches as an IPC stream and split it into messages (no EOS)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for b in batches:
            writer.write_batch(b)
    reader = pa.ipc.MessageReader.open_stream(sink.getvalue())
    out = []
    for msg in reader:
        body = msg.body.to_pybytes() if msg.body is not None else b""
        out.append(IpcMessage(msg.type, msg.metadata.to_pybytes(), body))
    return out


# -- the call ------------------------------------------------------------------------------
@dataclass
class RawPutOutcome:
    code: grpc.StatusCode
    details: str
    results: List[bytes] = field(default_factory=list)  # PutResult.app_metadata values
    trailers: dict = field(default_factory=dict)

    @property
    def ok(self):
        return self.code == grpc.StatusCode.OK


def raw_do_put(location: str, path: Sequence[str], messages: Sequence[IpcMessage], *,
               options: Optional[bytes] = None, timeout: float = 60,
               raw_frames: Optional[Sequence[bytes]] = None) -> RawPutOutcome:
    """Send a DoPut of `messages` for the PATH descriptor `path` and wait for the status.

    The descriptor rides on the first FlightData (as Flight clients do). `options`, if
    given, is sent as a metadata-only FlightData right after the first message, which is
    what pyarrow's ``writer.write_metadata()`` produces. `raw_frames`, if given, are sent
    verbatim instead of all that. Returns the final gRPC status, PutResult payloads and
    trailing metadata.
    """
    assert location.startswith("grpc://")
    target = location[len("grpc://"):]
    if raw_frames is None:
        frames = []
        for i, m in enumerate(messages):
            frames.append(encode_flight_data(path=path if i == 0 else None, header=m.header,
                                             body=m.body))
            if i == 0 and options is not None:
                frames.append(encode_flight_data(app_metadata=options))
    else:
        frames = list(raw_frames)
    with grpc.insecure_channel(target) as channel:
        call = channel.stream_stream(DO_PUT_METHOD, request_serializer=None,
                                     response_deserializer=None)
        responses = call(iter(frames), timeout=timeout)
        results = []
        try:
            for r in responses:
                results.extend(decode_fields(r).get(1, []))
            code, details = responses.code(), responses.details() or ""
        except grpc.RpcError as e:
            code, details = e.code(), e.details() or ""
        trailers = {}
        for k, v in (responses.trailing_metadata() or ()):
            trailers[k] = v
        return RawPutOutcome(code, details, results, trailers)
