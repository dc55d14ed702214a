"""Generate Quiver's demo SQLite database: a table of synthetic events.

    python scripts/make_demo_db.py PATH [--rows N]

Deterministic (no randomness: every column is a hash-like function of the row id), so
every machine gets the same data. With the default 3 million rows an aggregate over the
whole table takes about a second in SQLite, which is what the demo's cache shows off.
Writes to PATH.tmp first and renames, so an interrupted run leaves no half database.
"""

import argparse
import os
import sqlite3
import time

SCHEMA = """
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    ts          INTEGER NOT NULL,  -- seconds since 2025-01-01, one event every ~10 s
    user_id     INTEGER NOT NULL,
    country     TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    amount      REAL NOT NULL,
    duration_ms INTEGER NOT NULL
)
"""

FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
INSERT INTO events
SELECT i,
       1735689600 + i * 10,
       (i * 2654435761) % 100000,
       CASE (i * 40503) % 8 WHEN 0 THEN 'NO' WHEN 1 THEN 'PE' WHEN 2 THEN 'IN' WHEN 3 THEN 'UA'
            WHEN 4 THEN 'BR' WHEN 5 THEN 'JP' WHEN 6 THEN 'DE' ELSE 'KE' END,
       CASE (i * 69069) % 5 WHEN 0 THEN 'view' WHEN 1 THEN 'click' WHEN 2 THEN 'cart'
            WHEN 3 THEN 'purchase' ELSE 'refund' END,
       ((i * 1103515245 + 12345) % 100000) / 100.0,
       (i * 22695477) % 30000
FROM n
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", help="database file to create")
    ap.add_argument("--rows", type=int, default=3_000_000, help="events to generate")
    args = ap.parse_args()

    tmp = args.path + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    t0 = time.perf_counter()
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.execute(SCHEMA)
    con.execute(FILL, {"rows": args.rows})
    con.commit()
    con.close()
    os.replace(tmp, args.path)
    print(f"wrote {args.rows:,} events to {args.path} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
