"""The dashboard's query shapes use the log's storage well: no JSON parsing per row (the
data point columns are real columns), and every time-bounded query searches the time
index instead of scanning the log (EXPLAIN QUERY PLAN of the translated SQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aesql_fixtures import NOW, UNTIMED_MS, bulk_log

from storage.query.aesql import LocalEngine

pytestmark = pytest.mark.untimed  # beside the server tests (test.sh)

T = "hoox_telemetry"

TIME_BOUNDED = {
    "profile example": (f"SELECT sum(double1) as total_latency, count() as total_calls "
                        f"FROM {T} WHERE blob1 = ? AND timestamp >= now() - INTERVAL '1' DAY",
                        ["trade-worker"]),
    "error rate per minute": (f"SELECT toStartOfMinute(timestamp) AS minute, "
                              f"countIf(blob3 = '0') / count() AS error_rate FROM {T} "
                              "WHERE timestamp >= now() - INTERVAL '1' DAY "
                              "GROUP BY minute ORDER BY minute", []),
    "p50/p95/p99 per worker per 5 minutes": (
        f"SELECT blob1 AS worker, toStartOfInterval(timestamp, INTERVAL '5' MINUTE) AS t, "
        "quantileWeighted(0.5, double1, _sample_interval) AS p50, "
        "quantileWeighted(0.95, double1, _sample_interval) AS p95, "
        "quantileWeighted(0.99, double1, _sample_interval) AS p99 "
        f"FROM {T} WHERE timestamp > now() - INTERVAL '6' HOUR GROUP BY worker, t "
        "ORDER BY t, worker", []),
    "top endpoints": (f"SELECT blob2, count() AS n FROM {T} WHERE timestamp BETWEEN "
                      "now() - INTERVAL '7' DAY AND now() GROUP BY blob2 ORDER BY n DESC "
                      "LIMIT 10", []),
    "success ratio": (f"SELECT blob1, sumIf(_sample_interval, blob3 = '1') / "
                      f"sum(_sample_interval) AS ratio FROM {T} WHERE timestamp > "
                      "'2026-11-20 00:00:00' GROUP BY blob1", []),
    "latest events": (f"SELECT index1, blob1, double1 FROM {T} WHERE timestamp > now() - "
                      "INTERVAL '1' HOUR ORDER BY timestamp DESC LIMIT 20", []),
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    db = bulk_log(Path(tmp_path_factory.mktemp("plan")) / "plan.db", 20_000)
    e = LocalEngine(db, now=lambda: NOW, timeout_ms=UNTIMED_MS)
    yield e
    e.close()


@pytest.mark.parametrize("name", list(TIME_BOUNDED))
def test_time_bounded_queries_search_the_time_index(engine: LocalEngine, name: str) -> None:
    sql, params = TIME_BOUNDED[name]
    plan = engine.plan(sql, params)
    assert any("USING INDEX events_timestamp" in step for step in plan), plan
    assert not any(step.startswith("SCAN events") for step in plan), plan


@pytest.mark.parametrize("name", list(TIME_BOUNDED))
def test_no_json_is_parsed_per_row(engine: LocalEngine, name: str) -> None:
    sql, params = TIME_BOUNDED[name]
    translated = (engine.sqlite_sql(sql, params) or "").lower()
    assert "json" not in translated and "payload" not in translated


def test_an_unbounded_query_scans_once(engine: LocalEngine) -> None:
    """Without a time bound the whole log is read once, by a plain scan."""
    plan = engine.plan(f"SELECT toDayOfWeek(timestamp) AS d, toHour(timestamp) AS h, "
                       f"count() AS n FROM {T} GROUP BY d, h ORDER BY d, h")
    assert sum(step.startswith("SCAN") for step in plan) == 1, plan


def test_the_translation_is_plain_arithmetic_for_time_buckets(engine: LocalEngine) -> None:
    """Bucketing by minute, hour, weekday runs as SQLite arithmetic, not Python calls."""
    sql = engine.sqlite_sql(f"SELECT toStartOfMinute(timestamp) AS a, toHour(timestamp) AS b, "
                            f"toDayOfWeek(timestamp) AS c, toStartOfInterval(timestamp, "
                            f"INTERVAL '5' MINUTE) AS d, count() AS n FROM {T} "
                            "GROUP BY a, b, c, d") or ""
    assert "AE_" not in sql.upper(), sql
