"""Every query the dashboard sends (dashboard/queries.json), for each layout and time range,
is Analytics Engine SQL that the local engine and ClickHouse both accept, with equal
results that are not empty: the profile's on a profile log, the `hoox` layout's on a real
`hoox`-layout log, where they also mean what the page says."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from aesql_fixtures import (NOW, UNTIMED_MS, ClickHouse, differences, hoox_point, import_log,
                            make_hoox_records, make_records)

import dashboard
from storage.query.aesql import LocalEngine, to_clickhouse

pytestmark = pytest.mark.untimed  # beside the server tests (test.sh)

QUERIES = dashboard.load_queries()
RANGES = QUERIES["ranges"]
# The profile's queries on the profile's log; the hoox layout's run on a hoox log below
# (HOOX_CASES), where they have data to find.
CASES = [(name, r) for name in QUERIES["layouts"]["profile"] for r in RANGES]


def sent(layout: str, name: str, r: dict[str, Any], dataset: str) -> str:
    return dashboard.expand(QUERIES["layouts"][layout][name], dataset, r["since"], r["bucket"])


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_records()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, records: list[dict]):
    e = LocalEngine(import_log(tmp_path_factory.mktemp("dashboard"), records), now=lambda: NOW,
                    timeout_ms=UNTIMED_MS)
    yield e
    e.close()


def drop(table: str) -> None:
    """chdb has one server per process: tables outlive a module unless dropped."""
    from chdb import session

    session.Session().query(f"DROP TABLE IF EXISTS `{table}`")


@pytest.fixture(scope="module")
def clickhouse(records: list[dict]) -> Iterator[ClickHouse]:
    drop("hoox_telemetry")
    yield ClickHouse(records)
    drop("hoox_telemetry")


def test_every_layout_has_the_three_views_and_every_range_is_the_selectors() -> None:
    assert [r["label"] for r in RANGES] == ["1 h", "24 h", "7 d", "30 d"]
    assert set(QUERIES["layouts"]["profile"]) == {"health", "latency", "volume"}
    # The hoox layout adds agent-worker's risk events: counted, and the latest listed.
    assert set(QUERIES["layouts"]["hoox"]) == {"health", "latency", "volume", "risk",
                                               "riskLatest"}
    assert QUERIES["health"] == {"refreshSeconds": 1, "windowSeconds": 60, "minErrors": 5,
                                 "minErrorRate": 0.05}


@pytest.mark.parametrize("name,r", CASES, ids=[f"profile-{n}-{r['name']}" for n, r in CASES])
def test_local_engine_equals_clickhouse(engine: LocalEngine, clickhouse: ClickHouse,
                                        name: str, r: dict[str, Any]) -> None:
    sql = sent("profile", name, r, "hoox_telemetry")
    local = engine.query(sql, [])
    reference = clickhouse.query(to_clickhouse(sql, [], now=NOW, portable=True, format=None))
    assert local.rows, sql  # the profile's data: every view has something to show
    assert not differences(local, reference, ordered=True), sql


# -- Explore (SPEC §10.1): the queries it sends for any dataset -----------------------------

EXPLORE = QUERIES["explore"]
EXPLORE_CASES = [("newest", RANGES[0]), ("points", RANGES[0])] + [
    ("perBucket", r) for r in RANGES]


@pytest.mark.parametrize("name,r", EXPLORE_CASES,
                         ids=[f"{n}-{r['name']}" for n, r in EXPLORE_CASES])
def test_explore_queries_local_engine_equals_clickhouse(engine: LocalEngine,
                                                        clickhouse: ClickHouse, name: str,
                                                        r: dict[str, Any]) -> None:
    sql = dashboard.expand(EXPLORE[name], "hoox_telemetry", r["since"], r["bucket"])
    local = engine.query(sql, [])
    reference = clickhouse.query(to_clickhouse(sql, [], now=NOW, portable=True, format=None))
    assert local.rows, sql
    assert not differences(local, reference, ordered=True), sql


def test_explore_lists_the_tables_and_reads_the_newest_point_down_the_time_index(
        engine: LocalEngine) -> None:
    assert engine.query(EXPLORE["tables"], []).rows == [{"dataset": "hoox_telemetry"}]
    newest = dashboard.expand(EXPLORE["newest"], "hoox_telemetry")
    assert engine.plan(newest) == ["SEARCH events USING INDEX events_timestamp"]
    points = dashboard.expand(EXPLORE["points"], "hoox_telemetry")
    assert engine.plan(points) == ["SCAN events USING INDEX events_timestamp"]
    assert EXPLORE["shownRows"] == 1000 and EXPLORE["recentQueries"] == 20


# -- the hoox layout on a real hoox-layout log (SPEC §9) ----------------------------------
# The platform's five event types, ingested through the real parser with layout "hoox";
# ClickHouse holds the same data points, every slot (aesql_fixtures.hoox_point).

HOOX = "hoox-analytics"


@pytest.fixture(scope="module")
def hoox_records() -> list[dict]:
    return make_hoox_records()


@pytest.fixture(scope="module")
def hoox_engine(tmp_path_factory: pytest.TempPathFactory, hoox_records: list[dict]):
    db = import_log(tmp_path_factory.mktemp("hoox"), hoox_records, layout="hoox")
    e = LocalEngine(db, dataset=HOOX, now=lambda: NOW, timeout_ms=UNTIMED_MS)
    yield e
    e.close()


@pytest.fixture(scope="module")
def hoox_clickhouse(hoox_records: list[dict]) -> Iterator[ClickHouse]:
    drop(HOOX)
    yield ClickHouse(hoox_records, dataset=HOOX, layout="hoox")
    drop(HOOX)


@pytest.fixture(scope="module")
def hoox_points(hoox_records: list[dict]) -> list[dict[str, Any]]:
    points = []
    for record in hoox_records:
        blobs, doubles = hoox_point(record)
        points.append({"timestamp": int(doubles[3]), "blobs": blobs, "doubles": doubles})
    return points


HOOX_CASES = [(name, r) for name in QUERIES["layouts"]["hoox"] for r in RANGES]


@pytest.mark.parametrize("name,r", HOOX_CASES,
                         ids=[f"{n}-{r['name']}" for n, r in HOOX_CASES])
def test_hoox_queries_on_a_hoox_log_equal_clickhouse_and_have_rows(
        hoox_engine: LocalEngine, hoox_clickhouse: ClickHouse, name: str,
        r: dict[str, Any]) -> None:
    sql = sent("hoox", name, r, HOOX)
    local = hoox_engine.query(sql, [])
    reference = hoox_clickhouse.query(to_clickhouse(sql, [], dataset=HOOX, now=NOW,
                                                    portable=True, format=None))
    assert local.rows, sql
    assert not differences(local, reference, ordered=True), sql


def test_hoox_health_counts_failures_per_event_type_and_worker(
        hoox_engine: LocalEngine, hoox_points: list[dict[str, Any]]) -> None:
    rows = hoox_engine.query(sent("hoox", "health", RANGES[0], HOOX), []).rows
    recent = [p for p in hoox_points if p["timestamp"] >= NOW - 900
              and p["blobs"][0] in ("api-call", "trade", "signal")]
    expected: dict[tuple[str, str], list[int]] = {}
    for p in recent:
        key = (p["blobs"][0], p["blobs"][1])
        counts = expected.setdefault(key, [0, 0, 0, 0])
        failed = p["blobs"][2] == "failure"
        last_minute = p["timestamp"] >= NOW - 60
        counts[0] += 1
        counts[1] += failed
        counts[2] += last_minute
        counts[3] += failed and last_minute
    assert {(r["kind"], r["worker"]): [int(r["calls"]), int(r["errors"]), int(r["calls_60s"]),
                                       int(r["errors_60s"])] for r in rows} == expected
    assert {r["kind"] for r in rows} == {"api-call", "trade", "signal"}
    assert sum(c[1] for c in expected.values()) > 0 and sum(c[2] for c in expected.values())


def test_hoox_latency_reads_trades_from_double3_and_api_calls_from_double1(
        hoox_engine: LocalEngine) -> None:
    rows = hoox_engine.query(sent("hoox", "latency", RANGES[1], HOOX), []).rows
    trades = [r for r in rows if r["kind"] == "trade"]
    calls = [r for r in rows if r["kind"] == "api-call"]
    assert trades and calls
    # latencyMs is 100..900 (0 when a trade leaves it out); the quantity is -5..5
    assert all(0 <= r["p50"] <= r["p95"] <= 900 for r in trades)
    assert max(r["p95"] for r in trades) >= 100
    assert all(1 <= r["p50"] <= r["p95"] <= 90 for r in calls)


def test_hoox_volume_keeps_trades_and_signals_apart(
        hoox_engine: LocalEngine, hoox_points: list[dict[str, Any]]) -> None:
    rows = hoox_engine.query(sent("hoox", "volume", RANGES[3], HOOX), []).rows
    since = NOW - 30 * 86400
    for kind in ("trade", "signal", "api-call", "notification", "worker-perf"):
        expected = sum(1 for p in hoox_points if p["blobs"][0] == kind
                       and p["timestamp"] >= since)
        assert expected and sum(int(r["events"]) for r in rows if r["kind"] == kind) == \
            expected


RISK = ("housekeeping", "trailing-stop", "take-profit", "kill-switch")


def test_hoox_risk_counts_each_of_agent_workers_events(
        hoox_engine: LocalEngine, hoox_points: list[dict[str, Any]]) -> None:
    rows = hoox_engine.query(sent("hoox", "risk", RANGES[3], HOOX), []).rows
    since = NOW - 30 * 86400
    recent = [p for p in hoox_points if p["timestamp"] >= since and p["blobs"][0] in RISK]
    assert [r["kind"] for r in rows] == sorted(RISK)
    for row in rows:
        mine = [p for p in recent if p["blobs"][0] == row["kind"]]
        assert int(row["events"]) == len(mine) > 0
        assert int(row["degraded"]) == sum(p["blobs"][2] == "degraded" for p in mine)
        assert row["last"] == max(p["doubles"][3] for p in mine)
    assert any(int(r["degraded"]) for r in rows if r["kind"] == "housekeeping")


def test_hoox_risk_latest_lists_the_ten_newest_actions_newest_first(
        hoox_engine: LocalEngine, hoox_points: list[dict[str, Any]]) -> None:
    rows = hoox_engine.query(sent("hoox", "riskLatest", RANGES[3], HOOX), []).rows
    actions = sorted((p for p in hoox_points if p["blobs"][0] in RISK[1:]
                      and p["timestamp"] >= NOW - 30 * 86400),
                     key=lambda p: p["doubles"][3], reverse=True)[:10]
    assert len(rows) == 10
    assert [(r["kind"], r["detail"], r["at"]) for r in rows] == [
        (p["blobs"][0], p["blobs"][2], p["doubles"][3]) for p in actions]
    for row, p in zip(rows, actions):
        assert [row["value1"], row["value2"], row["value3"]] == p["doubles"][:3]
        assert row["value5"] == (p["doubles"][4] if row["kind"] == "kill-switch" else 0)
