#!/usr/bin/env python3
"""The baseline for bench/flight_bench.py: the Flight server a user would otherwise write.

A pyarrow.flight.FlightServerBase that keeps every table it is given in memory
(dict key -> pa.Table). DoPut stores reader.read_all(); DoGet returns
flight.RecordBatchStream(table), which re-encodes the table's record batches as IPC
messages on every request. It speaks the same subset of the wire API as Quiver that the
harness uses, so one client code path drives both servers:

  DoPut  descriptor path ["bench", "big"]  -> stored under the key "bench/big";
         answers with app_metadata {"endpoint", "key", "version"} like Quiver.
  DoGet  ticket b"bench/big"               -> the latest table stored under that key.

Usage: python bench/baseline_server.py [--listen grpc://127.0.0.1:0]
The first line on stdout is 'baseline listening on grpc://HOST:PORT'. SIGTERM or SIGINT
stops it.
"""
import argparse
import json
import signal
import sys
import threading

import pyarrow as pa
import pyarrow.flight as flight


class InMemoryFlightServer(flight.FlightServerBase):
    def __init__(self, location):
        super().__init__(location)
        self._endpoint = location
        self._lock = threading.Lock()
        self._tables = {}    # key -> pa.Table
        self._versions = {}  # key -> int

    def set_endpoint(self, endpoint):
        self._endpoint = endpoint

    @staticmethod
    def _key(descriptor):
        if descriptor.descriptor_type != flight.DescriptorType.PATH:
            raise flight.FlightServerError("expected a PATH descriptor")
        return "/".join(p.decode() if isinstance(p, bytes) else p for p in descriptor.path)

    def do_put(self, context, descriptor, reader, writer):
        key = self._key(descriptor)
        table = reader.read_all()
        with self._lock:
            self._tables[key] = table
            version = self._versions.get(key, 0) + 1
            self._versions[key] = version
        ref = {"endpoint": self._endpoint, "key": key, "version": version}
        writer.write(pa.py_buffer(json.dumps(ref).encode()))

    def do_get(self, context, ticket):
        key = ticket.ticket.decode()
        with self._lock:
            table = self._tables.get(key)
        if table is None:
            raise KeyError(f"no object '{key}'")
        return flight.RecordBatchStream(table)

    def do_action(self, context, action):
        if action.type == "clear":
            with self._lock:
                self._tables.clear()
            return []
        raise NotImplementedError(f"unknown action '{action.type}'")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="grpc://127.0.0.1:0",
                        help="grpc://HOST:PORT to listen on; port 0 picks a free port")
    args = parser.parse_args()

    server = InMemoryFlightServer(args.listen)
    host = args.listen.split("://", 1)[1].rsplit(":", 1)[0]
    endpoint = f"grpc://{host}:{server.port}"
    server.set_endpoint(endpoint)

    def stop(signum, frame):
        # shutdown() blocks until in-flight calls end; do it off the signal handler.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"baseline listening on {endpoint}", flush=True)
    server.serve()
    print("baseline stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
