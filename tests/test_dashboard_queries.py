"""Every query the dashboard sends (dashboard/queries.json), for each layout and time range,
is Analytics Engine SQL that the local engine and ClickHouse both accept, with equal
results; the `hoox` layout's queries also mean what the page says on platform-shaped data."""

from __future__ import annotations

import json
import random
from typing import Any, Iterator

import pytest

import dashboard
from aesql_fixtures import NOW, ClickHouse, differences, import_log, make_records
from storage.aesql import AE_COLUMNS, LocalEngine, to_clickhouse

QUERIES = dashboard.load_queries()
RANGES = QUERIES["ranges"]
CASES = [(layout, name, r) for layout, named in QUERIES["layouts"].items()
         for name in named for r in RANGES]


def sent(layout: str, name: str, r: dict[str, Any], dataset: str) -> str:
    return dashboard.expand(QUERIES["layouts"][layout][name], dataset, r["since"], r["bucket"])


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_records()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, records: list[dict]):
    e = LocalEngine(import_log(tmp_path_factory.mktemp("dashboard"), records), now=lambda: NOW)
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
    for named in QUERIES["layouts"].values():
        assert set(named) == {"health", "latency", "volume"}
    assert QUERIES["health"] == {"refreshSeconds": 1, "windowSeconds": 60, "minErrors": 5,
                                 "minErrorRate": 0.05}


@pytest.mark.parametrize("layout,name,r", CASES,
                         ids=[f"{lay}-{n}-{r['name']}" for lay, n, r in CASES])
def test_local_engine_equals_clickhouse(engine: LocalEngine, clickhouse: ClickHouse,
                                        layout: str, name: str, r: dict[str, Any]) -> None:
    sql = sent(layout, name, r, "hoox_telemetry")
    local = engine.query(sql, [])
    reference = clickhouse.query(to_clickhouse(sql, [], now=NOW, portable=True, format=None))
    assert not differences(local, reference, ordered=True), sql
    if layout == "profile":  # the profile's data: every view has something to show
        assert local.rows, sql


# -- the hoox layout on platform-shaped data points (SPEC §9) ----------------------------

def hoox_points(n: int = 1500, seed: int = 9) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    points = []
    for i in range(n):
        at = NOW - rng.randrange(0, 2 * 86400) if i % 10 else NOW - rng.randrange(0, 600)
        kind = rng.choice(["api-call", "api-call", "trade", "signal", "notification"])
        ok = rng.random() > 0.2
        blobs = {"api-call": ["api-call", rng.choice(["hoox", "d1-worker"]),
                              "success" if ok else "failure", "/webhook", ""],
                 "trade": ["trade", "trade-worker", "success" if ok else "failure",
                           "binance", "BTCUSDT"],
                 "signal": ["signal", "email-worker", "pending", "buy", "ETHUSDT"],
                 "notification": ["notification", "telegram", "success", "alert", ""]}[kind]
        doubles = {"api-call": [rng.uniform(1, 90), 0, 0],
                   "trade": [rng.uniform(1000, 5000), 30000.0, rng.uniform(100, 900)],
                   "signal": [rng.random(), 0, 0], "notification": [0, 0, 0]}[kind]
        points.append({"timestamp": at, "index1": f"h-{i}", "blobs": blobs,
                       "doubles": doubles + [float(at)]})
    return points


@pytest.fixture(scope="module")
def hoox_clickhouse() -> Any:
    from chdb import session

    db = session.Session()
    drop("hoox-analytics")
    columns = ", ".join(f"`{name}` {ctype}" for name, ctype in AE_COLUMNS)
    db.query(f"CREATE TABLE `hoox-analytics` ({columns}) ENGINE = Memory")
    points = hoox_points()
    rows = []
    for p in points:
        blobs = p["blobs"] + [""] * (20 - len(p["blobs"]))
        doubles = p["doubles"] + [0.0] * (20 - len(p["doubles"]))
        values = ["'hoox-analytics'", str(p["timestamp"]), "1", f"'{p['index1']}'",
                  *(f"'{b}'" for b in blobs), *(repr(float(d)) for d in doubles)]
        rows.append("(" + ",".join(values) + ")")
    db.query("INSERT INTO `hoox-analytics` VALUES " + ",".join(rows))

    def run(name: str, r: dict[str, Any]) -> list[dict[str, Any]]:
        sql = sent("hoox", name, r, "hoox-analytics")
        text = to_clickhouse(sql, [], dataset="hoox-analytics", now=NOW, portable=True,
                             format=None)
        return json.loads(db.query(text + " SETTINGS session_timezone = 'UTC'", "JSON")
                          .bytes())["data"]
    yield run, points
    drop("hoox-analytics")


def test_hoox_queries_run_on_the_local_engine_under_the_platforms_dataset_name(
        tmp_path_factory: pytest.TempPathFactory, records: list[dict]) -> None:
    e = LocalEngine(import_log(tmp_path_factory.mktemp("hoox"), records),
                    dataset="hoox-analytics", now=lambda: NOW)
    try:
        for r in RANGES:
            for name in ("health", "latency", "volume"):
                assert isinstance(e.query(sent("hoox", name, r, "hoox-analytics"), []).rows,
                                  list)
    finally:
        e.close()


def test_hoox_health_counts_failures_per_event_type_and_worker(hoox_clickhouse) -> None:
    run, points = hoox_clickhouse
    rows = run("health", RANGES[0])
    recent = [p for p in points if p["timestamp"] >= NOW - 900
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


def test_hoox_latency_reads_trades_from_double3_and_api_calls_from_double1(
        hoox_clickhouse) -> None:
    run, _ = hoox_clickhouse
    rows = run("latency", RANGES[1])
    trades = [r for r in rows if r["kind"] == "trade"]
    calls = [r for r in rows if r["kind"] == "api-call"]
    assert trades and calls
    assert all(100 <= r["p50"] <= r["p95"] <= 900 for r in trades)  # not the quantity
    assert all(1 <= r["p50"] <= r["p95"] <= 90 for r in calls)


def test_hoox_volume_keeps_trades_and_signals_apart(hoox_clickhouse) -> None:
    run, points = hoox_clickhouse
    rows = run("volume", RANGES[3])
    for kind in ("trade", "signal", "api-call", "notification"):
        assert sum(int(r["events"]) for r in rows if r["kind"] == kind) == \
            sum(1 for p in points if p["blobs"][0] == kind)
