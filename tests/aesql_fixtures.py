"""Shared data for the query engine's tests: a few thousand api-call events over ten days
(the profile layout), and the platform's five event types over August to November (the
`hoox` layout, SPEC §9), imported into a real log through `analytics-worker import`, and
the same data points in an embedded ClickHouse (chdb) table with Analytics Engine's
columns."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import cli
from storage.query.aesql import AE_COLUMNS, QueryResult

# Tuesday 2026-11-24 17:56:30 UTC: the pinned now() of every engine in these tests.
NOW = 1_795_542_990
# The time limit of the engines of the tests marked `untimed` (they compare answers, never
# time them): those run beside the server tests at a low priority (test.sh), where a
# query can wait seconds for a core.
UNTIMED_MS = 120_000
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


# The 2026 clock changes (Unix seconds, the first second of the new offset) of three
# zones: Berlin and New York forward in spring, back in autumn; Sydney the other way
# round, in the southern spring and autumn.
DST_2026 = {
    "Europe/Berlin": (1_774_746_000, 1_792_890_000),      # 03-29 01:00Z, 10-25 01:00Z
    "America/New_York": (1_772_953_200, 1_793_512_800),   # 03-08 07:00Z, 11-01 06:00Z
    "Australia/Sydney": (1_775_318_400, 1_791_043_200),   # 04-04 16:00Z, 10-03 16:00Z
}


def records_at(seconds: list[int]) -> list[dict[str, Any]]:
    """One api-call record at each of these times (whole seconds), in time order."""
    records = []
    for i, t in enumerate(sorted(seconds)):
        received = datetime.fromtimestamp(t, timezone.utc)
        records.append({"requestId": f"at-{i:05d}-{t}", "type": "api-call",
                        "receivedAt": received.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        "payload": {"worker": "trade-worker", "endpoint": "/webhook",
                                    "latencyMs": 1.0 + i % 7, "success": True}})
    return records


def _utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()) * 1000


# The platform's dashboard bounds its queries at these times (issue 9's verbatim queries).
WEEK_FROM = "2026-08-12 10:00:00"
WEEK_TO = "2026-08-19 10:00:00"
# Stretches of time of the `hoox` data, [start, end) in ms, and how many events of each
# group a stretch holds per unit of a group's weight. Every count a query groups by is a
# sum of whole stretches, so distinct weights give distinct counts: ORDER BY count has no
# ties to break differently.
HOOX_STRETCHES = [
    (_utc_ms("2026-08-05 00:00:00"), _utc_ms(WEEK_FROM), 1),         # before the week
    (_utc_ms(WEEK_FROM), _utc_ms(WEEK_TO) + 1000, 4),                # the week, bounds in
    (_utc_ms(WEEK_TO) + 1000, _utc_ms("2026-11-17 10:00:00"), 1),    # after it
    (_utc_ms("2026-11-17 10:00:00"), _utc_ms("2026-11-24 10:00:00") + 1000, 2),
    (_utc_ms("2026-11-24 10:00:00") + 1000, (NOW - 900) * 1000, 1),  # today
    ((NOW - 900) * 1000, NOW * 1000 + 1, 1),                         # the health window
]
# (weight, type, group): the group's fixed fields; the rest is drawn per event.
HOOX_GROUPS: list[tuple[int, str, tuple]] = [
    (9, "api-call", ("trade-worker", "/webhook")),
    (7, "api-call", ("trade-worker", "/api/trade")),
    (6, "api-call", ("hoox", "/api/route")),
    (5, "api-call", ("d1-worker", "/query")),
    (4, "api-call", ("trade-worker", "/api/status")),
    (3, "api-call", ("web3-wallet-worker", "/balance")),
    (2, "api-call", ("trade-worker", "/api/Äpfel")),
    (8, "trade", ("binance", "BTCUSDT", False)),
    (6, "trade", ("bybit", "ETHUSDT", False)),
    (4, "trade", ("mexc", "SOLUSDT", True)),
    (3, "trade", ("mexc", "SOLUSDT", False)),
    (2, "trade", ("binance", "ETHUSDT", True)),
    (7, "signal", ("email", "buy", "BTCUSDT")),
    (5, "signal", ("email", "sell", "ETHUSDT")),
    (4, "signal", ("tradingview", "buy", "BTCUSDT")),
    (3, "signal", ("email", "buy", "ETHUSDT")),
    (1, "signal", ("telegram", "sell", "SOLUSDT")),
    (4, "worker-perf", ("trade-worker",)),
    (3, "worker-perf", ("hoox",)),
    (2, "worker-perf", ("d1-worker",)),
    (4, "notification", ("trade-alert", "telegram")),
    (2, "notification", ("daily-report", "email")),
    # agent-worker's risk events: rarer than the platform's own
    (1, "housekeeping", ("agent-worker",)),
    (1, "trailing-stop", ("binance", "BTCUSDT")),
    (1, "take-profit", ("bybit", "ETHUSDT")),
    (1, "kill-switch", ("max_drawdown",)),
]
# Trades exactly on and just outside the week's bounds (timestamp is whole seconds).
HOOX_EDGES = [_utc_ms(WEEK_FROM) - 1, _utc_ms(WEEK_FROM), _utc_ms(WEEK_TO) + 999,
              _utc_ms(WEEK_TO) + 1000]
LONG_ERROR = "Order rejected by exchange: " + "insufficient margin; " * 14  # > 256 chars


def _hoox_body(rng: random.Random, kind: str, group: tuple, rid: str) -> dict[str, Any]:
    """A body as the platform's workers send it (tests/hoox_callers.py), varied."""
    if kind == "api-call":
        worker, endpoint = group
        body = {"worker": worker, "endpoint": endpoint,
                "latencyMs": round(rng.uniform(1, 90), 3), "success": rng.random() > 0.15}
        if worker == "d1-worker":
            body["queryType"] = rng.choice(["SELECT", "INSERT"])  # kept, not a slot
        return body | {"indexes": [rid, "chain-1"] if worker == "web3-wallet-worker"
                       else [rid]}
    if kind == "trade":
        exchange, symbol, test = group
        order = {"exchange": exchange, "symbol": symbol, "action": rng.choice(["buy", "sell"]),
                 "quantity": round(rng.uniform(-5, 5), 4), "requestId": rid}
        if rng.random() < 0.7:
            order["price"] = round(rng.uniform(100, 70000), 2)
        if test:
            order["test"] = True
        ok = rng.random() > 0.2
        result = {"success": ok} if ok else {
            "success": False, "error": rng.choice(["timeout", LONG_ERROR])}
        body = {"payload": order, "result": result}
        if rng.random() < 0.9:  # latencyMs is optional: 0 when absent
            body["latencyMs"] = round(rng.uniform(100, 900), 1)
        return body
    if kind == "signal":
        source, type_, symbol = group
        return {"data": {"source": source, "type": type_, "symbol": symbol,
                         "confidence": round(rng.random(), 4)}}
    if kind == "worker-perf":
        errors = rng.choice([0, 0, 0, 1, 2, 7])
        return {"data": {"worker": group[0], "requests": rng.randrange(50, 5000),
                         "errors": errors, "duration": round(rng.uniform(2, 400), 2)}}
    if kind == "notification":
        type_, target = group
        return {"data": {"type": type_, "target": target, "success": rng.random() > 0.1}}
    return _risk_body(rng, kind, group)


def _risk_body(rng: random.Random, kind: str, group: tuple) -> dict[str, Any]:
    """agent-worker's flat bodies (tests/hoox_callers.py), varied."""
    if kind == "housekeeping":
        checks = rng.randrange(1, 5)
        unhealthy = rng.choice([0, 0, 0, 1])
        return {"worker": group[0], "checks": checks, "healthy": checks - unhealthy,
                "unhealthy": unhealthy}
    if kind == "kill-switch":
        pnl = rng.uniform(-40, -10)
        return {"trigger": group[0], "pnlPercent": f"{pnl:.2f}", "limit": -10,
                "totalUnrealizedPnl": round(pnl * 100, 2), "accountValue": 10000}
    exchange, symbol = group
    body = {"exchange": exchange, "symbol": symbol, "side": rng.choice(["LONG", "SHORT"]),
            "currentPrice": round(rng.uniform(100, 70000), 2)}
    if kind == "trailing-stop":
        return body | {"watermark": round(rng.uniform(100, 70000), 2),
                       "trigger": "trailing_stop"}
    return body | {"entryPrice": round(rng.uniform(100, 70000), 2),
                   "scaledQuantity": round(rng.uniform(0.01, 2), 4)}


def make_hoox_records(scale: int = 2, seed: int = 9) -> list[dict[str, Any]]:
    """NDJSON records (SPEC §7, with `type`) of the `hoox` layout's event types, in
    time order: weight x stretch x scale events of each group in each stretch of
    HOOX_STRETCHES (a good share inside the dashboard's week), and the edge trades."""
    rng = random.Random(seed)
    planned = [(ms, 7, "trade", ("binance", "BTCUSDT", False)) for ms in HOOX_EDGES]
    for start, end, per in HOOX_STRETCHES:
        for weight, kind, group in HOOX_GROUPS:
            planned += [(rng.randrange(start, end), weight, kind, group)
                        for _ in range(weight * per * scale)]
    planned.sort(key=lambda p: p[0])
    records = []
    for i, (ms, _, kind, group) in enumerate(planned):
        rid = f"hoox-{i:06d}-{rng.getrandbits(32):08x}"
        records.append({"requestId": rid, "type": kind,
                        "receivedAt": datetime.fromtimestamp(ms / 1000, timezone.utc)
                        .strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z",
                        "payload": _hoox_body(rng, kind, group, rid)})
    return records


def hoox_point(record: dict[str, Any]) -> tuple[list[str], list[float]]:
    """The five blobs and four (a kill switch: five) doubles of a `hoox` record, from SPEC
    §9's table (written out here, not computed by the code under test); double4 is the
    received time."""
    kind, body, received = record["type"], record["payload"], _ms(record) / 1000.0
    outcome = {True: "success", False: "failure"}
    if kind == "trade":
        order = body["payload"]
        exchange = order["exchange"] + (":test" if order.get("test") else "")
        return (["trade", "trade-worker", outcome[body["result"]["success"]], exchange,
                 order["symbol"]],
                [float(order["quantity"]), float(order.get("price", 0)),
                 float(body.get("latencyMs", 0)), received])
    if kind == "api-call":
        return (["api-call", body["worker"], outcome[body["success"]], body["endpoint"], ""],
                [float(body["latencyMs"]), 0.0, 0.0, received])
    data = body.get("data", {})
    if kind == "worker-perf":
        return (["worker-perf", data["worker"], "degraded" if data["errors"] else "success",
                 "", ""],
                [float(data["requests"]), float(data["errors"]), float(data["duration"]),
                 received])
    if kind == "signal":
        return (["signal", data["source"], "pending", data["type"], data["symbol"]],
                [float(data["confidence"]), 0.0, 0.0, received])
    if kind == "notification":
        return (["notification", data["target"], outcome[data["success"]], data["type"], ""],
                [0.0, 0.0, 0.0, received])
    return _risk_point(kind, body, received)


def _risk_point(kind: str, body: dict[str, Any], received: float
                ) -> tuple[list[str], list[float]]:
    if kind == "housekeeping":
        return (["housekeeping", body["worker"],
                 "degraded" if body["unhealthy"] else "success", "", ""],
                [float(body["checks"]), float(body["healthy"]), float(body["unhealthy"]),
                 received])
    if kind == "trailing-stop":
        return (["trailing-stop", "agent-worker", body["side"], body["exchange"],
                 body["symbol"]],
                [float(body["watermark"]), float(body["currentPrice"]), 0.0, received])
    if kind == "take-profit":
        return (["take-profit", "agent-worker", body["side"], body["exchange"],
                 body["symbol"]],
                [float(body["entryPrice"]), float(body["currentPrice"]),
                 float(body["scaledQuantity"]), received])
    assert kind == "kill-switch", kind
    return (["kill-switch", "agent-worker", body["trigger"], "", ""],
            [float(body["pnlPercent"]), float(body["limit"]),
             float(body["totalUnrealizedPnl"]), received, float(body["accountValue"])])


def profile_point(record: dict[str, Any]) -> tuple[list[str], list[float]]:
    """The three blobs and two doubles of a profile record (SPEC §4)."""
    p = record["payload"]
    return ([p["worker"], p["endpoint"], "1" if p["success"] else "0"],
            [float(p["latencyMs"]), _ms(record) / 1000.0])


def import_log(tmp: Path, records: list[dict[str, Any]], layout: str = "profile") -> str:
    """Load the records into a fresh log of the layout with the CLI, as a user would."""
    db = tmp / "analytics.db"
    source = tmp / "events.ndjson"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                      encoding="utf-8")
    result = CliRunner().invoke(cli.main, ["import", "--db", str(db), str(source)],
                                env={"INTERNAL_KEY_BINDING": "test-key",
                                     "ANALYTICS_LAYOUT": layout})
    assert result.exit_code == 0, result.output
    return str(db)


def _ms(record: dict[str, Any]) -> int:
    when = datetime.strptime(record["receivedAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(when.replace(tzinfo=timezone.utc).timestamp() * 1000 + 0.5)


class ClickHouse:
    """chdb with a table named like the dataset, holding the same data points: every
    slot, unset blobs '' and unset doubles 0 as Analytics Engine shows them."""

    def __init__(self, records: list[dict[str, Any]], dataset: str = "hoox_telemetry",
                 layout: str = "profile"):
        from chdb import session

        self.session = session.Session()
        columns = ", ".join(f"`{name}` {ctype}" for name, ctype in AE_COLUMNS)
        self.session.query(f"CREATE TABLE `{dataset}` ({columns}) ENGINE = Memory")
        rows = []
        point = hoox_point if layout == "hoox" else profile_point
        for r in records:
            blobs, doubles = point(r)
            blobs += [""] * (20 - len(blobs))
            doubles += [0.0] * (20 - len(doubles))
            rows.append([dataset, _ms(r) // 1000, 1, r["requestId"], *blobs, *doubles])
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
    if isinstance(a, float) and not math.isfinite(a):  # ClickHouse's JSON writes it null
        return b is None or (isinstance(b, float) and repr(a) == repr(b))
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
