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

`--scale` times what a large log costs instead: a log of 10M events (by default; built
once by SQLite itself, `bench/biglog.py`, and kept at `--db`), every dashboard query
(profile layout, every range) and every reference example of the conformance corpus,
answered as the service answers them (the mirror process, over its socket, fed from the
log; `storage/query/mirror.py`), by the log's own SQLite engine (dashboard queries only, one run:
its long ranges take tens of seconds), and by chdb in this process on the same rows
copied into a MergeTree table. Reports the mirror's rebuild time and memory.

    .venv/bin/python bench/query.py --scale [--events 10000000] [--db /tmp/aesql-10m.db]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.query.aesql import LocalEngine, to_clickhouse  # noqa: E402
from storage.query.aesql import udf as F  # noqa: E402
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


def _rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident set of a process, MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def scale(args: argparse.Namespace) -> None:
    import os
    import subprocess

    import dashboard
    from bench.biglog import build
    from storage.log import EventLog
    from storage.query.mirror import MirroredEngine, ask
    from tests.aesql_corpus import REFERENCE

    path = Path(args.db or f"/tmp/aesql-{args.events // 1_000_000}m.db")
    if not path.exists():
        started = time.perf_counter()
        build(path, args.events)
        print(f"built {args.events:,} events in {time.perf_counter() - started:.1f} s: {path}")
    mirror_dir = Path(f"{path}.mirror")
    env = {**os.environ, "ANALYTICS_DB": str(path), "ANALYTICS_MIRROR_DIR": str(mirror_dir),
           "INTERNAL_KEY_BINDING": "bench", "PYTHONPATH": str(ROOT)}
    if not mirror_dir.exists():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import cli; cli.main()", "mirror-rebuild"],
                       env=env, cwd=ROOT, check=True)
        print(f"mirror-rebuild: {time.perf_counter() - started:.1f} s (process included)")
    sock = str(Path(tempfile.mkdtemp()) / "mirror.sock")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "storage.query.mirror_process", sock], env=env,
                            cwd=ROOT)
    event_log = EventLog(path, write=False)
    while True:
        try:
            if ask(sock, {"ping": True}, 5)["seq"] >= event_log.last_seq():
                break
        except Exception:
            pass
        time.sleep(0.1)
    print(f"mirror process up on the copy in {time.perf_counter() - started:.1f} s")
    local = LocalEngine(str(path), now=lambda: NOW, timeout_ms=600_000, max_rows=100_000)
    mirror = MirroredEngine(local, sock, event_log.last_seq)

    import chdb  # noqa: F401
    from chdb import session
    ch = session.Session()
    columns = ", ".join(
        ["'hoox_telemetry' AS dataset", "toDateTime(intDiv(received_ms, 1000)) AS timestamp",
         "toUInt32(1) AS _sample_interval", "request_id AS index1",
         *(f"ifNull(blob{i}, '') AS blob{i}" for i in range(1, 21)),
         *(f"toFloat64(received_ms / 1000) AS double{i}" if i == 2 else
           f"toFloat64(double{i}) AS double{i}" for i in range(1, 21))])
    started = time.perf_counter()
    ch.query(f"CREATE TABLE {T} ENGINE = MergeTree ORDER BY timestamp AS SELECT {columns} "
             f"FROM sqlite('{path}', 'events')")
    print(f"chdb in this process: same rows copied in {time.perf_counter() - started:.1f} s")

    queries = dashboard.load_queries()
    cases: list[tuple[str, str, bool]] = []
    for name, text in queries["layouts"]["profile"].items():
        for r in queries["ranges"] if name != "health" else queries["ranges"][:1]:
            label = f"{name}, {r['label']}" if name != "health" else "health, 15 min"
            cases.append((label, dashboard.expand(text, T, r["since"], r["bucket"]), True))
    cases += [(f"reference {i + 1}", q.sql, False) for i, q in enumerate(REFERENCE)]

    print(f"\n{'query':26} {'mirror ms':>10} {'chdb ms':>9} {'mirror/chdb':>11} "
          f"{'SQLite ms':>10} {'rows':>6}")
    worst: dict[str, float] = {}
    for label, sql, dashboard_query in cases:
        ch_sql = to_clickhouse(sql, [], now=NOW, portable=True, format="JSON")
        answer = mirror.query(sql)  # warm; and the answer must be the mirror's
        reference = json.loads(ch.query(ch_sql).bytes())
        assert mirror.fell_back == 0, label
        assert len(answer.rows) == len(reference["data"]), label
        mine, theirs = [], []
        for _ in range(args.rounds):
            mine.append(timed(lambda: mirror.query(sql)))
            theirs.append(timed(lambda: ch.query(ch_sql)))
        m, c = (statistics.median(x) * 1000 for x in (mine, theirs))
        lite = ""
        if dashboard_query:
            lite = f"{timed(lambda: local.query(sql)) * 1000:10.0f}"
            worst[label] = m
        print(f"{label:26} {m:10.1f} {c:9.1f} {m / c:11.2f} {lite:>10} "
              f"{len(answer.rows):6}")
    rss, peak = _rss_mb(proc.pid)
    print(f"\nmirror process: {rss:.0f} MB resident, {peak:.0f} MB peak; "
          f"copy on disk {sum(f.stat().st_size for f in mirror_dir.rglob('*') if f.is_file()) / 1e6:.0f} MB; "
          f"log {path.stat().st_size / 1e6:.0f} MB")
    print(f"answered by the mirror: {mirror.answered}, by the log's engine: {mirror.fell_back}")
    proc.terminate()
    proc.wait()
    mirror.close()
    event_log.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--db", default=None, help="reuse (or create) this log file")
    parser.add_argument("--scale", action="store_true",
                        help="a large log: the dashboard and reference queries, mirror "
                             "against chdb")
    args = parser.parse_args()
    if args.scale:
        args.events = args.events or 10_000_000
        args.rounds = args.rounds or 3
        return scale(args)
    args.events = args.events or 1_000_000
    args.rounds = args.rounds or 7

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
