"""Zoned date functions on the days the clocks change: the 2026 transitions of
Europe/Berlin, America/New_York and Australia/Sydney, on constant inputs and on events
straddling each transition, equal to ClickHouse (chdb) in the instant
(toUnixTimestamp of the result) and in the text."""

from __future__ import annotations

from typing import Iterator

import pytest
from aesql_fixtures import (DST_2026, NOW, UNTIMED_MS, ClickHouse, differences, import_log,
                            records_at)

from storage.query.aesql import LocalEngine, to_clickhouse

pytestmark = pytest.mark.untimed  # beside the server tests (test.sh)

DATASET = "dst_telemetry"
ZONES = sorted(DST_2026)
# Every 20 minutes from 26 hours before each transition to 26 hours after it, so that
# the whole local day of the change, and the days either side, hold events.
STEP, SPAN = 1200, 26 * 3600
TIMES = sorted({t + k for changes in DST_2026.values() for t in changes
                for k in range(-SPAN, SPAN + 1, STEP)})


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    db = import_log(tmp_path_factory.mktemp("zones"), records_at(TIMES))
    # translating counts against the time limit: these queries write every zoned function
    # out 14 times (240 KB of SQL), seconds to translate on a loaded machine
    e = LocalEngine(db, dataset=DATASET, now=lambda: NOW, timeout_ms=UNTIMED_MS)
    yield e
    e.close()


@pytest.fixture(scope="module")
def clickhouse() -> Iterator[ClickHouse]:
    from chdb import session

    # chdb has one server per process: the table outlives a module unless dropped.
    session.Session().query(f"DROP TABLE IF EXISTS `{DATASET}`")
    yield ClickHouse(records_at(TIMES), dataset=DATASET)
    session.Session().query(f"DROP TABLE IF EXISTS `{DATASET}`")


def both(engine: LocalEngine, clickhouse: ClickHouse, sql: str) -> list[str]:
    local = engine.query(sql)
    assert local.rows, sql
    reference = clickhouse.query(to_clickhouse(sql, now=NOW, portable=True, format=None,
                                               dataset=DATASET))
    return differences(local, reference, ordered=True)


def each_function(t: str, zone: str) -> str:
    """Every zoned function of `t` in `zone`: its text, and for a DateTime its instant."""
    z = f"'{zone}'"
    parts = {
        "day": f"toStartOfDay({t}, {z})",
        "hour": f"toStartOfHour({t}, {z})",
        "iday": f"toStartOfInterval({t}, INTERVAL 1 DAY, {z})",
        "i2day": f"toStartOfInterval({t}, INTERVAL '2' DAY, {z})",
        "local": f"toDateTime({t}, {z})",
    }
    columns = [f"{expr} AS {name}, toUnixTimestamp({expr}) AS {name}_at"
               for name, expr in parts.items()]
    columns += [f"toHour({t}, {z}) AS h", f"toDayOfWeek(toDateTime({t}, {z})) AS dow",
                f"formatDateTime({t}, '%Y-%m-%d %H:%i:%S %a %u', {z}) AS text",
                f"formatDateTime({t}, '%F %T', {z}) AS text2"]
    return ", ".join(columns)


@pytest.mark.parametrize("zone", ZONES)
def test_every_zoned_function_equals_clickhouse_on_events_straddling_each_change(
        engine: LocalEngine, clickhouse: ClickHouse, zone: str) -> None:
    sql = (f"SELECT index1, {each_function('timestamp', zone)} FROM {DATASET} "
           "ORDER BY index1")
    problems = both(engine, clickhouse, sql)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("zone", ZONES)
def test_events_per_local_day_and_hour_equal_clickhouse_across_each_change(
        engine: LocalEngine, clickhouse: ClickHouse, zone: str) -> None:
    for bucket in (f"toStartOfDay(timestamp, '{zone}')",
                   f"toStartOfInterval(timestamp, INTERVAL 1 DAY, '{zone}')",
                   f"toStartOfHour(timestamp, '{zone}')", f"toHour(timestamp, '{zone}')"):
        sql = (f"SELECT {bucket} AS b, count() AS n, min(timestamp) AS first "
               f"FROM {DATASET} GROUP BY b ORDER BY b")
        problems = both(engine, clickhouse, sql)
        assert not problems, f"{sql}\n" + "\n".join(problems)


def _constants(zone: str) -> list[int]:
    """Around each change: a second either side, the hour either side, and the local
    midnights and noons of the day (a start of day is what moves)."""
    out = []
    for t in DST_2026[zone]:
        out += [t - 3601, t - 3600, t - 1, t, t + 1, t + 1799, t + 3599, t + 3600,
                t - 13 * 3600, t + 11 * 3600, t + 20 * 3600 + 1]
    return out


@pytest.mark.parametrize("zone", ZONES)
def test_every_zoned_function_equals_clickhouse_on_constant_instants(
        engine: LocalEngine, clickhouse: ClickHouse, zone: str) -> None:
    for t in _constants(zone):
        sql = f"SELECT {each_function(f'toDateTime({t})', zone)}"
        problems = both(engine, clickhouse, sql)
        assert not problems, f"{t}: " + "\n".join(problems)


@pytest.mark.parametrize("zone", ZONES)
def test_wall_times_read_in_a_zone_equal_clickhouse_in_skipped_and_repeated_hours(
        engine: LocalEngine, clickhouse: ClickHouse, zone: str) -> None:
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    for t in DST_2026[zone]:
        before = datetime.fromtimestamp(t - 1, timezone.utc).astimezone(ZoneInfo(zone))
        # the wall times of the hour either side of the change, on the quarter hour
        start = before.replace(tzinfo=None, minute=0, second=0) - timedelta(hours=1)
        for quarter in range(0, 4 * 4):
            wall = (start + timedelta(minutes=15 * quarter)).strftime("%Y-%m-%d %H:%M:%S")
            sql = (f"SELECT toDateTime('{wall}', '{zone}') AS t, "
                   f"toUnixTimestamp(toDateTime('{wall}', '{zone}')) AS t_at, "
                   f"toUnixTimestamp('{wall}', '{zone}') AS u")
            problems = both(engine, clickhouse, sql)
            assert not problems, f"{wall}: " + "\n".join(problems)
