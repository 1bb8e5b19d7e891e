"""A large log for the query bench, written by SQLite itself (a recursive CTE), not
through HTTP or Python rows: 10M events in a minute or two instead of ten.

Same shape as `tests.aesql_fixtures.bulk_log` (workers and endpoints uniform, latency
lognormal(3.2, 0.9) to 3 decimals, 10% failures, evenly spread over `days` up to NOW),
drawn from SQLite's own random().

    .venv/bin/python bench/biglog.py PATH [--events 10000000] [--end-now]
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.log import EventLog, counters  # noqa: E402
from tests.aesql_fixtures import ENDPOINTS, NOW, WORKERS  # noqa: E402

CHUNK = 1_000_000


def _pick(names: list[str], u: str) -> str:
    cases = " ".join(f"WHEN {i} THEN '{n}'" for i, n in enumerate(names))
    return f"CASE {u} % {len(names)} {cases} END"


def build(path: Path, n: int, *, days: int = 30, end_s: int = NOW) -> None:
    """Writes `n` events into a new log at `path` (through a temporary file, so that an
    interrupted build leaves nothing to reuse)."""
    partial = path.with_name(path.name + ".partial")
    for p in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        p.unlink(missing_ok=True)
    EventLog(partial).close()  # the schema through the real migrations
    conn = sqlite3.connect(partial, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    start_ms = (end_s - days * 86400) * 1000
    step = days * 86400 * 1000 // n
    worker = _pick([w for w, _ in WORKERS], "abs(r1)")
    endpoint = _pick([e for e, _ in ENDPOINTS], "abs(r2)")
    # Box-Muller from two uniforms in (0, 1]
    u1 = "((abs(r3) % 1000000000) + 1) / 1000000000.0"
    u2 = "((abs(r4) % 1000000000) + 1) / 1000000000.0"
    latency = f"round(exp(3.2 + 0.9 * sqrt(-2 * ln({u1})) * cos({2 * math.pi!r} * {u2})), 3)"
    for first in range(0, n, CHUNK):
        last = min(n, first + CHUNK)
        conn.execute("BEGIN")
        conn.execute(f"""
            WITH RECURSIVE i(k) AS (SELECT {first} UNION ALL SELECT k + 1 FROM i WHERE k + 1 < {last}),
            r AS MATERIALIZED (SELECT k, random() AS r1, random() AS r2, random() AS r3, random() AS r4,
                         random() AS r5, abs(random()) % {step} AS jitter FROM i),
            v AS MATERIALIZED (SELECT k, {worker} AS worker, {endpoint} AS endpoint, {latency} AS latency,
                         abs(r5) % 10 != 0 AS ok, jitter FROM r)
            INSERT INTO events (request_id, type, received_ms, payload, blob1, blob2, blob3,
                                double1)
            SELECT printf('bulk-%08d', k), 'api-call', {start_ms} + k * {step} + jitter,
                   json_object('worker', worker, 'endpoint', endpoint, 'latencyMs', latency,
                               'success', json(IIF(ok, 'true', 'false'))),
                   worker, endpoint, IIF(ok, '1', '0'), latency
            FROM v""")
        conn.execute("COMMIT")
    # As the log's own insert path does: the service's counters count every event.
    conn.execute("INSERT INTO counters (name, labels, value) VALUES (?, ?, ?)"
                 " ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value",
                 (counters.ACCEPTED, counters.labels(type="api-call"), n))
    conn.close()
    os.replace(partial, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--end-now", action="store_true",
                        help="the events end now, not at the test fixtures' fixed NOW")
    args = parser.parse_args()
    started = time.perf_counter()
    build(Path(args.path), args.events, end_s=int(time.time()) if args.end_now else NOW)
    print(f"built {args.events:,} events in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
