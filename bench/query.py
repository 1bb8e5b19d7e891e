"""The local query engine against the same questions written by hand in SQLite.

Builds (or reuses) a log of N events over 30 days, then times four queries — the
profile's example and three dashboard queries — through `LocalEngine.query` and as
hand-written SQLite on the same file, alternating runs (the machine is noisy), and prints
the medians, the ratio engine/hand (target ≤ 1.25) and chdb's time on the same data for
reference. Then times two GROUP BY queries with a time-zone conversion against the same
queries in UTC (target ≤ 2×). Then times LIMITed queries with the count of the rows
before their LIMIT (the SQL API's rows_before_limit_at_least) against the same queries
without it (target ≤ 1.2×).

    .venv/bin/python bench/query.py [--events 1000000] [--rounds 7] [--db PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.aesql import udf as F  # noqa: E402
from storage.aesql import LocalEngine, to_clickhouse  # noqa: E402
from tests.aesql_fixtures import NOW, bulk_log  # noqa: E402

T = "hoox_telemetry"
DAY_AGO = NOW - 86400
TS = "(received_ms / 1000)"  # the indexed expression, as a person would write it

QUERIES = [
    ("profile example",
     f"SELECT sum(double1) as total_latency, count() as total_calls FROM {T} "
     "WHERE blob1 = ? AND timestamp >= now() - INTERVAL '1' DAY", ["trade-worker"],
     f"SELECT total(double1), count(*) FROM events WHERE blob1 = ? AND {TS} >= ?",
     ["trade-worker", DAY_AGO]),
    ("error rate per minute, 1 day",
     f"SELECT toStartOfMinute(timestamp) AS minute, countIf(blob3 = '0') / count() AS "
     f"error_rate FROM {T} WHERE timestamp >= now() - INTERVAL '1' DAY GROUP BY minute "
     "ORDER BY minute", [],
     f"SELECT {TS} - {TS} % 60 AS minute, sum(blob3 = '0') * 1.0 / count(*) FROM events "
     f"WHERE {TS} >= ? GROUP BY minute ORDER BY minute", [DAY_AGO]),
    ("p50/p95/p99 per worker per 5 min, 1 day",
     f"SELECT blob1 AS worker, toStartOfInterval(timestamp, INTERVAL '5' MINUTE) AS t, "
     "quantileWeighted(0.5, double1, _sample_interval) AS p50, "
     "quantileWeighted(0.95, double1, _sample_interval) AS p95, "
     "quantileWeighted(0.99, double1, _sample_interval) AS p99 FROM "
     f"{T} WHERE timestamp >= now() - INTERVAL '1' DAY GROUP BY worker, t ORDER BY t, worker",
     [],
     f"SELECT blob1, {TS} - {TS} % 300 AS t, ae_quantile_weighted(0.5, double1, 1), "
     "ae_quantile_weighted(0.95, double1, 1), ae_quantile_weighted(0.99, double1, 1) "
     f"FROM events WHERE {TS} >= ? GROUP BY blob1, t ORDER BY t, blob1", [DAY_AGO]),
    ("volume by weekday and hour, 30 days",
     f"SELECT toDayOfWeek(timestamp) AS weekday, toHour(timestamp) AS hour, "
     f"sum(_sample_interval) AS calls FROM {T} GROUP BY weekday, hour "
     "ORDER BY weekday, hour", [],
     f"SELECT ({TS} / 86400 + 3) % 7 + 1 AS weekday, {TS} % 86400 / 3600 AS hour, count(*) "
     "FROM events GROUP BY weekday, hour ORDER BY weekday, hour", []),
]


# A time-zone conversion in a GROUP BY against the same query in UTC (target: ≤ 2×).
ZONED = [
    ("hour of day, 30 days",
     f"SELECT toHour(timestamp) AS hour, count() AS n FROM {T} GROUP BY hour ORDER BY hour",
     f"SELECT toHour(timestamp, 'America/New_York') AS hour, count() AS n FROM {T} "
     "GROUP BY hour ORDER BY hour"),
    ("calls per day, 30 days",
     f"SELECT toStartOfDay(timestamp) AS day, count() AS n FROM {T} GROUP BY day "
     "ORDER BY day",
     f"SELECT toStartOfDay(timestamp, 'America/New_York') AS day, count() AS n FROM {T} "
     "GROUP BY day ORDER BY day"),
]


# The SQL API's rows_before_limit_at_least: a LIMITed query with the count of the rows
# before its LIMIT, against the same query without it (target: ≤ 1.2×).
LIMITED = [
    ("top 5 endpoints, 7 days",
     f"SELECT blob2 AS endpoint, count() AS calls FROM {T} WHERE timestamp > now() - "
     "INTERVAL '7' DAY GROUP BY endpoint ORDER BY calls DESC LIMIT 5"),
    ("calls per minute, 1 day, page 2",
     f"SELECT toStartOfMinute(timestamp) AS minute, count() AS calls FROM {T} WHERE "
     "timestamp >= now() - INTERVAL '1' DAY GROUP BY minute ORDER BY minute LIMIT 100 "
     "OFFSET 100"),
    ("10 slowest calls, 1 day",
     f"SELECT index1, blob1, double1 FROM {T} WHERE timestamp >= now() - INTERVAL '1' DAY "
     "ORDER BY double1 DESC LIMIT 10"),
]


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--db", default=None, help="reuse (or create) this log file")
    args = parser.parse_args()

    path = Path(args.db) if args.db else Path(tempfile.mkdtemp()) / "bench-query.db"
    if not path.exists():
        started = time.perf_counter()
        bulk_log(path, args.events)
        print(f"built {args.events:,} events in {time.perf_counter() - started:.1f} s: {path}")
    engine = LocalEngine(str(path), now=lambda: NOW, timeout_ms=600_000, max_rows=100_000)
    hand = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    F.register(hand)  # SQLite has no quantile: the hand-written query uses the same UDF

    import chdb
    from chdb import session
    ch = session.Session()
    columns = ", ".join(
        ["'hoox_telemetry' AS dataset", "toDateTime(intDiv(received_ms, 1000)) AS timestamp",
         "toUInt32(1) AS _sample_interval", "request_id AS index1", "blob1", "blob2",
         "blob3", "toFloat64(double1) AS double1"])
    ch.query(f"CREATE TABLE {T} ENGINE = MergeTree ORDER BY timestamp AS SELECT {columns} "
             f"FROM sqlite('{path}', 'events')")
    del chdb

    print(f"\n{'query':42} {'engine ms':>10} {'hand ms':>10} {'ratio':>7} {'chdb ms':>9}")
    for name, ae_sql, ae_params, hand_sql, hand_params in QUERIES:
        # warm up both (page cache, the engine's translation cache) and check agreement
        mine = engine.query(ae_sql, ae_params).rows
        theirs = hand.execute(hand_sql, hand_params).fetchall()
        assert len(mine) == len(theirs), (name, len(mine), len(theirs))
        ch_sql = to_clickhouse(ae_sql, ae_params, now=NOW, portable=True, format="JSON")
        engine_times, hand_times, ch_times = [], [], []
        for _ in range(args.rounds):
            engine_times.append(timed(lambda: engine.query(ae_sql, ae_params)))
            hand_times.append(timed(lambda: hand.execute(hand_sql, hand_params).fetchall()))
            ch_times.append(timed(lambda: ch.query(ch_sql)))
        e, h, c = (statistics.median(x) * 1000 for x in (engine_times, hand_times, ch_times))
        print(f"{name:42} {e:10.1f} {h:10.1f} {e / h:7.2f} {c:9.1f}")

    print(f"\n{'time zone in GROUP BY':42} {'UTC ms':>10} {'zone ms':>10} {'ratio':>7}")
    for name, utc_sql, zoned_sql in ZONED:
        engine.query(utc_sql), engine.query(zoned_sql)
        utc_times, zoned_times = [], []
        for _ in range(args.rounds):
            utc_times.append(timed(lambda: engine.query(utc_sql)))
            zoned_times.append(timed(lambda: engine.query(zoned_sql)))
        u, z = (statistics.median(x) * 1000 for x in (utc_times, zoned_times))
        print(f"{name:42} {u:10.1f} {z:10.1f} {z / u:7.2f}")

    print(f"\n{'rows_before_limit_at_least':42} {'plain ms':>10} {'counted ms':>10} {'ratio':>7}")
    for name, sql in LIMITED:
        plain = engine.query(sql)
        counted = engine.query(sql, count_before_limit=True)
        assert plain.rows == counted.rows and counted.rows_before_limit, name
        plain_times, counted_times = [], []
        for _ in range(args.rounds):
            plain_times.append(timed(lambda: engine.query(sql)))
            counted_times.append(timed(lambda: engine.query(sql, count_before_limit=True)))
        p, c = (statistics.median(x) * 1000 for x in (plain_times, counted_times))
        print(f"{name:42} {p:10.1f} {c:10.1f} {c / p:7.2f}")
    engine.close()
    hand.close()


if __name__ == "__main__":
    main()
