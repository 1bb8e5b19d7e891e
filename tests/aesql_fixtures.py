"""Shared data for the query engine's tests: a few thousand api-call events over ten days,
imported into a real log through `analytics-worker import`, and the same events in an
embedded ClickHouse (chdb) table with Analytics Engine's columns."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import cli
from storage.aesql import AE_COLUMNS, QueryResult

# Tuesday 2026-11-24 17:56:30 UTC: the pinned now() of every engine in these tests.
NOW = 1_795_542_990
DAYS = 10
# Distinct frequencies, so that topK and ORDER BY count have no ties to break.
WORKERS = [("trade-worker", 40), ("hoox", 25), ("d1-worker", 15), ("données-worker", 8),
           ("Email-Worker", 5)]
ENDPOINTS = [("/webhook", 30), ("/api/trade", 22), ("/api/status", 14), ("/health", 9),
             ("/api/Äpfel", 5), ("/", 2)]


def make_records(n: int = 3000, seed: int = 20261124, workers: list | None = None,
                 endpoints: list | None = None) -> list[dict[str, Any]]:
    """NDJSON records (SPEC §7) with times spread over the ten days before NOW, in time
    order (as a log is written), on millisecond timestamps with distinct seconds mostly."""
    rng = random.Random(seed)
    start_ms = (NOW - DAYS * 86400) * 1000
    times = sorted(rng.randrange(start_ms, NOW * 1000) for _ in range(n))
    records = []
    for i, ms in enumerate(times):
        worker = rng.choices([w for w, _ in workers or WORKERS],
                             [f for _, f in workers or WORKERS])[0]
        endpoint = rng.choices([e for e, _ in endpoints or ENDPOINTS],
                               [f for _, f in endpoints or ENDPOINTS])[0]
        # latencies with three decimals, some ties (for quantile weights) and a slow tail
        latency = round(rng.lognormvariate(3.2, 0.9), 3) if rng.random() > 0.05 \
            else float(rng.choice([10, 20, 50, 250]))
        received = datetime.fromtimestamp(ms / 1000, timezone.utc)
        records.append({
            "requestId": f"req-{i:06d}-{rng.getrandbits(32):08x}",
            "type": "api-call",
            "receivedAt": received.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z",
            "payload": {"worker": worker, "endpoint": endpoint, "latencyMs": latency,
                        "success": rng.random() > (0.25 if worker == "hoox" else 0.08)},
        })
    return records


def import_log(tmp: Path, records: list[dict[str, Any]]) -> str:
    """Load the records into a fresh log with the CLI, as a user would."""
    db = tmp / "analytics.db"
    source = tmp / "events.ndjson"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                      encoding="utf-8")
    result = CliRunner().invoke(cli.main, ["import", "--db", str(db), str(source)],
                                env={"INTERNAL_KEY_BINDING": "test-key"})
    assert result.exit_code == 0, result.output
    return str(db)


def _ms(record: dict[str, Any]) -> int:
    when = datetime.strptime(record["receivedAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(when.replace(tzinfo=timezone.utc).timestamp() * 1000 + 0.5)


class ClickHouse:
    """chdb with a table named like the dataset, holding the same data points."""

    def __init__(self, records: list[dict[str, Any]], dataset: str = "hoox_telemetry"):
        from chdb import session

        self.session = session.Session()
        columns = ", ".join(f"`{name}` {ctype}" for name, ctype in AE_COLUMNS)
        self.session.query(f"CREATE TABLE `{dataset}` ({columns}) ENGINE = Memory")
        rows = []
        for r in records:
            ms, p = _ms(r), r["payload"]
            blobs = [p["worker"], p["endpoint"], "1" if p["success"] else "0"] + [""] * 17
            doubles = [float(p["latencyMs"]), ms / 1000.0] + [0.0] * 18
            rows.append([dataset, ms // 1000, 1, r["requestId"], *blobs, *doubles])
        for i in range(0, len(rows), 1000):
            values = ",".join(
                "(" + ",".join(_ch_literal(v) for v in row) + ")" for row in rows[i:i + 1000])
            self.session.query(f"INSERT INTO `{dataset}` VALUES {values}")

    def query(self, sql: str) -> dict[str, Any]:
        # One thread: first_value/last_value see rows in insertion order, as SQLite does.
        text = sql + " SETTINGS max_threads = 1, session_timezone = 'UTC'"
        return json.loads(self.session.query(text, "JSON").bytes())


def _ch_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(b, str) and isinstance(a, (int, float)):  # 64-bit ints may be quoted
        try:
            return math.isclose(a, float(b), rel_tol=1e-9, abs_tol=1e-9)
        except ValueError:
            return False
    return a == b


def differences(local: QueryResult, reference: dict[str, Any], ordered: bool) -> list[str]:
    """Every way the local result differs from ClickHouse's, empty when equal."""
    problems = []
    if local.meta != [{"name": m["name"], "type": m["type"]} for m in reference["meta"]]:
        problems.append(f"meta: local {local.meta} != clickhouse {reference['meta']}")
        return problems
    mine, theirs = local.rows, reference["data"]
    if len(mine) != len(theirs):
        problems.append(f"rows: local {len(mine)} != clickhouse {len(theirs)}; "
                        f"first local {mine[:2]}, clickhouse {theirs[:2]}")
        return problems
    if not ordered:
        mine = sorted(mine, key=lambda r: json.dumps(r, sort_keys=True, default=str))
        theirs = sorted(theirs, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    for i, (a, b) in enumerate(zip(mine, theirs)):
        for name in a:
            if not _same(a[name], b.get(name)):
                problems.append(f"row {i} column {name}: local {a[name]!r} != "
                                f"clickhouse {b.get(name)!r}")
        if len(problems) > 5:
            break
    return problems


def bulk_log(path: Path, n: int, *, days: int = 30, seed: int = 1) -> str:
    """A log of `n` events written straight into the schema (fast: for big data only;
    the conformance data goes through the CLI)."""
    import sqlite3

    from storage.log import EventLog

    EventLog(path).close()  # creates the schema through the real migrations
    rng = random.Random(seed)
    start_ms = (NOW - days * 86400) * 1000
    step = days * 86400 * 1000 // n
    workers = [w for w, _ in WORKERS]
    endpoints = [e for e, _ in ENDPOINTS]

    def rows():
        for i in range(n):
            worker, endpoint = rng.choice(workers), rng.choice(endpoints)
            latency = round(rng.lognormvariate(3.2, 0.9), 3)
            ok = rng.random() > 0.1
            payload = json.dumps({"worker": worker, "endpoint": endpoint,
                                  "latencyMs": latency, "success": ok})
            yield (f"bulk-{i:08d}", "api-call", start_ms + i * step + rng.randrange(step),
                   payload, worker, endpoint, "1" if ok else "0", latency)

    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO events (request_id, type, received_ms, payload, blob1,"
                         " blob2, blob3, double1) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
    conn.close()
    return str(path)
