"""End to end in the hoox layout: a service fed by every real caller's body, replayed
through the relay protocol to the Cloudflare stand-in (whose points land in ClickHouse),
holds exactly the data points of SPEC §9 there; and the platform's dashboard queries give
the same rows from the local log (through /query) as ClickHouse gives over the replayed
points."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import falcon.testing
import httpx
import pytest
from conftest import AUTH, KEY, FixedClock
from hoox_callers import CALLERS, DASHBOARD_QUERIES
from standin import StandIn

from app import create_app
from storage.config import Config
from storage.log import EventLog
from storage.replay import Backoff, Replayer
from storage.replay.sink import RelaySink

# Inside the dashboard queries' time window (2026-08-12 10:00 to 2026-08-19 10:00).
T0 = datetime(2026, 8, 15, 12, 0, 0, tzinfo=timezone.utc).timestamp()
DATASET = "hoox-analytics"


@pytest.fixture
def hoox_standin() -> Iterator[StandIn]:
    clock = FixedClock(T0 + 3600)  # Cloudflare stamps the replay time, an hour later
    server = StandIn(dataset=DATASET, clock=clock)
    yield server
    server.close()


@pytest.fixture
def fed(db_path: Path, hoox_standin: StandIn) -> Iterator[tuple[falcon.testing.TestClient,
                                                                 dict[str, Any]]]:
    """The service after every caller's body (some several times, in singles and in a
    batch), replayed; and what was posted, by request id."""
    clock = FixedClock(T0)
    config = Config(internal_keys=(KEY,), db_path=str(db_path), sink="none", layout="hoox")
    client = falcon.testing.TestClient(create_app(config, clock=clock, background=False),
                                       headers=AUTH)
    for round_ in range(3):
        for caller in CALLERS:
            body = json.loads(json.dumps(caller.body))
            if caller.route == "trade" and "requestId" in body["payload"]:
                body["payload"]["requestId"] += f"-{round_}"
            if caller.route == "api-call" and "indexes" in body:
                body["indexes"][0] += f"-{round_}"
            assert client.simulate_post(f"/track/{caller.route}", json=body).status_code == 200
            clock.advance(7.25)
    batch = [{"type": c.route, **c.body} for c in CALLERS if c.index1 is None]
    assert client.simulate_post("/track/batch", json={"events": batch}).status_code == 200

    log = EventLog(db_path, layout="hoox")
    with httpx.Client() as http:
        sink = RelaySink(hoox_standin.relay_url, hoox_standin.relay_key, http=http,
                         timeout_ms=5000, clock=clock)
        result = Replayer(log, sink, holder="e2e", lease_ms=10_000, clock=clock,
                          send_timeout_ms=5000,
                          backoff=Backoff(base_s=0.01, cap_s=0.05)).drain()
    assert result.sent == log.count() == 3 * len(CALLERS) + len(batch)
    yield client, log
    log.close()


def expected_points(log: EventLog) -> list[dict[str, Any]]:
    """SPEC §9's data point of every logged event, from its type and stored payload, with
    the slot values written out here rather than taken from the code under test."""
    points = []
    for row in log.events():
        body = json.loads(row["payload"])
        t = row["type"]
        if t == "trade":
            p, r = body["payload"], body["result"]
            blobs = ["trade", "trade-worker", "success" if r["success"] else "failure",
                     p["exchange"] + (":test" if p.get("test") else ""), p["symbol"]]
            doubles = [p["quantity"], p.get("price", 0), body.get("latencyMs", 0)]
        elif t == "api-call":
            blobs = ["api-call", body["worker"], "success" if body["success"] else "failure",
                     body["endpoint"], ""]
            doubles = [body["latencyMs"], 0, 0]
        elif t == "worker-perf":
            d = body["data"]
            blobs = ["worker-perf", d["worker"], "degraded" if d["errors"] > 0 else "success",
                     "", ""]
            doubles = [d["requests"], d["errors"], d["duration"]]
        elif t == "signal":
            d = body["data"]
            blobs = ["signal", d["source"], "pending", d["type"], d["symbol"]]
            doubles = [d["confidence"], 0, 0]
        elif t == "notification":
            d = body["data"]
            blobs = ["notification", d["target"], "success" if d["success"] else "failure",
                     d["type"], ""]
            doubles = [0, 0, 0]
        elif t == "housekeeping":
            blobs = ["housekeeping", body["worker"],
                     "degraded" if body["unhealthy"] > 0 else "success", "", ""]
            doubles = [body["checks"], body["healthy"], body["unhealthy"]]
        elif t == "trailing-stop":
            blobs = ["trailing-stop", "agent-worker", body["side"], body["exchange"],
                     body["symbol"]]
            doubles = [body["watermark"], body["currentPrice"], 0]
        elif t == "take-profit":
            blobs = ["take-profit", "agent-worker", body["side"], body["exchange"],
                     body["symbol"]]
            doubles = [body["entryPrice"], body["currentPrice"], body["scaledQuantity"]]
        else:
            assert t == "kill-switch", t
            blobs = ["kill-switch", "agent-worker", body["trigger"], "", ""]
            doubles = [float(body["pnlPercent"]), body["limit"], body["totalUnrealizedPnl"]]
        double5 = body["accountValue"] if t == "kill-switch" else 0
        point = {"dataset": DATASET, "index1": row["request_id"], "_sample_interval": 1}
        point.update({f"blob{i + 1}": (blobs + [""] * 20)[i][:256] for i in range(20)})
        values = doubles + [row["received_ms"] / 1000.0, double5] + [0] * 15
        point.update({f"double{i + 1}": float(values[i]) for i in range(20)})
        points.append(point)
    return points


def test_cloudflare_holds_exactly_the_data_points_of_spec_9(fed, hoox_standin):
    _, log = fed
    got = [{k: v for k, v in p.items() if k != "timestamp"} for p in hoox_standin.points]
    assert got == expected_points(log)
    assert {p["timestamp"] for p in hoox_standin.points} == {int(T0 + 3600)}
    # What ClickHouse holds under the dataset name the dashboard uses.
    total = hoox_standin.query(f'SELECT count() AS n FROM "{DATASET}"')["data"][0]["n"]
    assert int(total) == log.count()


def _normal(value: Any) -> Any:
    """ClickHouse's JSON quotes 64-bit integers; compare numbers as numbers."""
    if isinstance(value, str):
        try:
            return float(value) if value.strip() and not value.isalpha() else value
        except ValueError:
            return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if list(x) != list(y):
            return False
        for k in x:
            u, v = _normal(x[k]), _normal(y[k])
            if isinstance(u, float) and isinstance(v, float):
                if not math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif u != v:
                return False
    return True


@pytest.mark.parametrize("sql", DASHBOARD_QUERIES,
                         ids=[f"dashboard-{i + 1}" for i in range(len(DASHBOARD_QUERIES))])
def test_dashboard_queries_give_the_same_rows_locally_as_clickhouse(fed, hoox_standin, sql):
    client, _ = fed
    local = client.simulate_post("/query", json={"query": sql, "source": "local"})
    assert local.status_code == 200, local.text
    remote = hoox_standin.query(sql)
    assert remote["rows"] > 0, "the data must give every query something to answer"
    assert [m["name"] for m in local.json["meta"]] == [m["name"] for m in remote["meta"]]
    assert _same(local.json["results"], remote["data"]), (local.json["results"],
                                                          remote["data"])


def test_audit_finds_every_event_by_the_received_time_in_double4(fed, hoox_standin):
    from storage.replay.audit import Auditor

    _, log = fed
    auditor = Auditor(log, lambda sql: hoox_standin.query(sql)["data"], DATASET)
    since, until = int(T0 * 1000) - 3_600_000, int(T0 * 1000) + 3_600_000
    report = auditor.run(since, until, 600)
    assert report.ok, report
    assert sum(b.local_count for b in report.buckets) == log.count()
    assert sum(b.remote_count for b in report.buckets) == log.count()
    assert all('FROM "hoox-analytics"' in sql and "double4" in sql
               for sql in hoox_standin.sql_requests)

    hoox_standin.remove(CALLERS[0].index1 + "-1")
    report = auditor.run(since, until, 600)
    assert not report.ok
    assert report.missing() == [CALLERS[0].index1 + "-1"]


def test_the_audit_command_reads_the_hoox_dataset(fed, hoox_standin, db_path):
    from click.testing import CliRunner

    from cli import main

    env = {**hoox_standin.env(), "ANALYTICS_LAYOUT": "hoox", "ANALYTICS_DB": str(db_path),
           "INTERNAL_KEY_BINDING": KEY}
    result = CliRunner().invoke(main, ["audit", "--since", "2026-08-15T11:00:00Z",
                                       "--until", "2026-08-15T13:00:00Z", "--bucket", "1h"],
                                env=env)
    assert result.exit_code == 0, result.output
    assert "by event time (double4 on Cloudflare)" in result.output
