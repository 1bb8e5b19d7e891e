"""The local engine answers Analytics Engine SQL with the values ClickHouse gives for the
same data: every query of the corpus runs on both, results equal row by row."""

from __future__ import annotations

import re
import sqlite3
from typing import Any, Iterator

import pytest
import sqlglot
from aesql_corpus import CONSTRUCTS, CORPUS, DASHBOARD, REFERENCE, Q
from aesql_fixtures import (NOW, UNTIMED_MS, ClickHouse, differences, hoox_point, import_log,
                            make_hoox_records, make_records)
from sqlglot import exp
from sqlglot.tokens import TokenType

from storage.query import aesql
from storage.query.aesql import InvalidQuery, LocalEngine, to_clickhouse
from storage.query.aesql import udf as F
from storage.query.aesql.build import _cast, _fn, _num, _op
from storage.query.aesql.types import T

pytestmark = pytest.mark.untimed  # beside the server tests (test.sh)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_records()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, records: list[dict]) -> str:
    return import_log(tmp_path_factory.mktemp("conformance"), records)


@pytest.fixture(scope="module")
def engine(db: str):
    e = LocalEngine(db, now=lambda: NOW, timeout_ms=UNTIMED_MS)
    yield e
    e.close()


@pytest.fixture(scope="module")
def clickhouse(records: list[dict]) -> ClickHouse:
    return ClickHouse(records)


DASHBOARD_DATASET = "hoox-analytics"


@pytest.fixture(scope="module")
def dashboard_records() -> list[dict]:
    return make_hoox_records()


@pytest.fixture(scope="module")
def dashboard_db(tmp_path_factory: pytest.TempPathFactory, dashboard_records: list[dict]
                 ) -> str:
    return import_log(tmp_path_factory.mktemp("dashboard"), dashboard_records, layout="hoox")


@pytest.fixture(scope="module")
def dashboard_engine(dashboard_db: str):
    e = LocalEngine(dashboard_db, dataset=DASHBOARD_DATASET, now=lambda: NOW,
                    timeout_ms=UNTIMED_MS)
    yield e
    e.close()


@pytest.fixture(scope="module")
def dashboard_clickhouse(dashboard_records: list[dict]) -> Iterator[ClickHouse]:
    from chdb import session

    # chdb has one server per process: the table outlives a module unless dropped.
    session.Session().query(f"DROP TABLE IF EXISTS `{DASHBOARD_DATASET}`")
    yield ClickHouse(dashboard_records, dataset=DASHBOARD_DATASET, layout="hoox")
    session.Session().query(f"DROP TABLE IF EXISTS `{DASHBOARD_DATASET}`")


def run_both(engine: LocalEngine, clickhouse: ClickHouse, q: Q) -> list[str]:
    local = engine.query(q.sql, q.params)
    reference = clickhouse.query(to_clickhouse(q.sql, q.params, now=NOW, portable=True,
                                               format=None, dataset=engine.dataset))
    return differences(local, reference, ordered=bool(re.search(r"ORDER BY", q.sql)))


def test_corpus_starts_with_the_profile_example_and_is_large() -> None:
    assert CORPUS[0].sql.startswith("SELECT sum(double1) as total_latency, count() as "
                                    "total_calls FROM hoox_telemetry WHERE blob1 = ?")
    assert CORPUS[0].params == ("trade-worker",)
    assert len(CORPUS) >= 50


def test_corpus_covers_the_whole_dialect() -> None:
    """Every documented function and every operator/clause appears in some query."""
    text = " ".join(q.sql for q in CORPUS)
    for name in aesql.FUNCTIONS:
        assert re.search(rf"\b{name}\s*\(", text), f"no corpus query uses {name}"
    for construct in ("WHERE", "GROUP BY", "HAVING", "ORDER BY", "LIMIT ALL", "OFFSET",
                      "FORMAT JSON", "FORMAT JSONEachRow", "BETWEEN", " IN (", "NOT IN",
                      " LIKE ", "NOT LIKE", "ILIKE", " AND ", " OR ", "NOT ", "DESC",
                      "DISTINCT", "extract(", "INTERVAL", "FROM (SELECT", "SELECT *",
                      " % ", " / ", " * ", " - ", " + ", "<>", "!=", ">=", "<=", "?"):
        assert construct in text, f"no corpus query uses {construct!r}"
    for unit in ("SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR"):
        assert f"' {unit}" in text or f" {unit})" in text, f"no INTERVAL ... {unit}"


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=lambda i: f"q{i + 1:02d}")
def test_local_equals_clickhouse(engine: LocalEngine, clickhouse: ClickHouse,
                                 index: int) -> None:
    q = CORPUS[index]
    problems = run_both(engine, clickhouse, q)
    assert not problems, f"{q.sql}\n" + "\n".join(problems)


@pytest.mark.parametrize("index", range(len(DASHBOARD)), ids=lambda i: f"d{i + 1}")
def test_dashboard_query_equals_clickhouse_on_a_hyphenated_dataset(
        dashboard_engine: LocalEngine, dashboard_clickhouse: ClickHouse, index: int) -> None:
    q = DASHBOARD[index]
    problems = run_both(dashboard_engine, dashboard_clickhouse, q)
    assert not problems, f"{q.sql}\n" + "\n".join(problems)


def test_dashboard_queries_see_data(dashboard_engine: LocalEngine) -> None:
    """Every dashboard query, the verbatim August week's included, has rows to compare,
    over every event type and the slots the platform fills."""
    empty = [q.sql for q in DASHBOARD if not dashboard_engine.query(q.sql).rows]
    assert not empty
    assert dashboard_engine.query('SHOW TABLES').rows == [{"dataset": "hoox-analytics"}]
    week = dashboard_engine.query(DASHBOARD[2].sql).rows
    assert {r["exchange"] for r in week} == {"binance", "bybit", "mexc:test", "mexc",
                                             "binance:test"}
    assert all(0 < r["avg_price"] < 70000 and r["failure_count"] > 0 for r in week)
    signals = dashboard_engine.query(DASHBOARD[1].sql).rows
    assert len(signals) == 5 and all(r["symbol"] and 0 < r["avg_confidence"] < 1
                                     for r in signals)
    perf = dashboard_engine.query(DASHBOARD[4].sql).rows
    assert [r["worker"] for r in perf] == ["trade-worker", "hoox", "d1-worker"]
    assert all(r["total_errors"] > 0 and r["avg_duration_ms"] > 0 for r in perf)


def test_dashboard_week_counts_the_events_inside_its_bounds_only(
        dashboard_engine: LocalEngine, dashboard_records: list[dict]) -> None:
    """Some trades fall outside the verbatim week and on its bounds, counted by hand."""
    from aesql_fixtures import WEEK_FROM, WEEK_TO, _ms, _utc_ms
    trades = [r for r in dashboard_records if r["type"] == "trade"]
    inside = [r for r in trades
              if _utc_ms(WEEK_FROM) // 1000 <= _ms(r) // 1000 <= _utc_ms(WEEK_TO) // 1000]
    assert len(trades) / 3 < len(inside) < len(trades) / 2
    rows = dashboard_engine.query(DASHBOARD[2].sql).rows
    assert sum(r["trade_count"] for r in rows) == len(inside)
    assert dashboard_engine.query(DASHBOARD[3].sql).rows[0]["total"] == len(trades)


def test_dashboard_log_holds_the_data_points_clickhouse_holds(
        dashboard_db: str, dashboard_records: list[dict]) -> None:
    """The real parser's data points, every slot, equal SPEC §9's table (which the
    ClickHouse side is loaded from)."""
    conn = sqlite3.connect(dashboard_db)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM datapoints ORDER BY seq").fetchall()
    finally:
        conn.close()
    assert len(rows) == len(dashboard_records)
    for row, record in zip(rows, dashboard_records):
        blobs, doubles = hoox_point(record)
        assert row["index1"] == record["requestId"]
        assert [row[f"blob{i}"] for i in range(1, 21)] == blobs + [""] * 15, record
        assert [row[f"double{i}"] for i in range(1, 21)] == \
            pytest.approx(doubles + [0.0] * (20 - len(doubles))), record


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=lambda i: f"q{i + 1:02d}")
def test_the_text_sent_to_cloudflare_is_case_free_checked_again_and_equal(
        engine: LocalEngine, clickhouse: ClickHouse, index: int) -> None:
    """Round trip: the ClickHouse text a query becomes passes the allow-list again (no
    CASE WHEN or other construct Analytics Engine rejects) and gives the same rows."""
    q = CORPUS[index]
    sent = to_clickhouse(q.sql, q.params, format=None)
    tokens = sqlglot.tokenize(sent, read="clickhouse")
    assert not [t for t in tokens if t.token_type == TokenType.CASE], sent
    aesql.parse(sent)  # the allow-list again
    problems = run_both(engine, clickhouse, Q(sent))
    assert not problems, f"{sent}\n" + "\n".join(problems)


def test_corpus_holds_every_reference_example_and_the_dashboard() -> None:
    assert len(REFERENCE) >= 40 and len(DASHBOARD) >= 6
    text = " ".join(q.sql for q in REFERENCE)
    for fragment in ("IF(", "AVG(", "SUM(", "NOW()", "COUNT()", "toLower(", "toUpper(",
                     "isEmpty(", "floor(1.2345, 2)", "substring('hoox', 1, -1)",
                     "'America/New_York'", "\n\n"):
        assert fragment in text, fragment


def test_results_are_not_trivially_empty(engine: LocalEngine) -> None:
    """The comparison means something only if the queries see data."""
    empty = [q.sql for q in CORPUS
             if "1 = 0" not in q.sql and "OR 1=1" not in str(q.params)
             and not engine.query(q.sql, q.params).rows]
    assert not empty
    result = engine.query(CORPUS[0].sql, CORPUS[0].params)
    assert result.rows[0]["total_calls"] > 50
    assert result.meta == [{"name": "total_latency", "type": "Float64"},
                           {"name": "total_calls", "type": "UInt64"}]


def test_example_query_matches_a_count_by_hand(engine: LocalEngine, records: list[dict]) -> None:
    """An independent check of the first query, without either SQL engine."""
    from aesql_fixtures import _ms
    chosen = [r for r in records if r["payload"]["worker"] == "trade-worker"
              and _ms(r) // 1000 >= NOW - 86400]
    row = engine.query(CORPUS[0].sql, CORPUS[0].params).rows[0]
    assert row["total_calls"] == len(chosen)
    assert row["total_latency"] == pytest.approx(sum(r["payload"]["latencyMs"]
                                                     for r in chosen))


def test_datetime_is_rendered_as_clickhouse_does(engine: LocalEngine) -> None:
    result = engine.query("SELECT now() AS n, today() AS d, toStartOfWeek(now()) AS w")
    assert result.rows == [{"n": "2026-11-24 17:56:30", "d": "2026-11-24",
                            "w": "2026-11-23"}]
    assert [m["type"] for m in result.meta] == ["DateTime", "Date", "Date"]


@pytest.mark.parametrize("broken", ["toDayOfWeek", "quantile", "length", "round"])
def test_a_broken_translation_fails_the_comparison(engine: LocalEngine, db: str,
                                                   clickhouse: ClickHouse,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   broken: str) -> None:
    """The suite can fail: break one translation and the comparison reports it."""
    queries = {"toDayOfWeek": CORPUS[3], "quantile": CORPUS[2],
               "length": next(q for q in CORPUS if "length(blob2)" in q.sql),
               "round": next(q for q in CORPUS if "round(double1, 1)" in q.sql)}
    if broken == "toDayOfWeek":  # weeks starting on Sunday, a classic mistake
        original = aesql.Translator._f_toDayOfWeek

        def sunday(self, call, args, scope):  # type: ignore[no-untyped-def]
            t = original(self, call, args, scope)
            return T(_op(exp.Add, _op(exp.Mod, t.e, _num(7)), _num(1)), t.t)
        monkeypatch.setattr(aesql.Translator, "_f_toDayOfWeek", sunday)
    elif broken == "quantile":  # interpolating instead of ClickHouse's exact algorithm
        def finalize(self):  # type: ignore[no-untyped-def]
            values = sorted(self.weights)
            return values[len(values) // 2] if values else None
        monkeypatch.setattr(F.QuantileExactWeighted, "finalize", finalize)
    elif broken == "length":  # bytes (ClickHouse's length) instead of code points
        monkeypatch.setattr(aesql.Translator, "_f_length",
                            lambda self, call, args, scope: T(
                                _fn("length", _cast(args[0].e, "BLOB")), "UInt64"))
    else:  # SQLite's round (half away from zero) instead of ClickHouse's
        monkeypatch.setattr(F, "ch_round", lambda x, n=0: None if x is None else
                            float(__import__("decimal").Decimal(repr(x)).quantize(
                                __import__("decimal").Decimal(1).scaleb(-int(n)),
                                rounding="ROUND_HALF_UP")))
        monkeypatch.setitem(F.SCALARS, "ae_round", (2, F.ch_round))
    # a new connection and cache: sees the patch
    fresh = LocalEngine(db, now=lambda: NOW, timeout_ms=UNTIMED_MS)
    try:
        assert run_both(fresh, clickhouse, queries[broken])
    finally:
        fresh.close()


def test_to_clickhouse_spells_the_documented_names() -> None:
    text = to_clickhouse("SELECT if(double1 > 1, 'a', 'b') AS x, toStartOfMonth(timestamp) AS m, "
                         "count() AS n FROM hoox_telemetry WHERE blob1 = ? GROUP BY x, m",
                         ["it's"])
    assert "CASE" not in text and "if(" in text and "toStartOfMonth(" in text
    assert "'it\\'s'" in text or "'it''s'" in text
    assert text.endswith("FORMAT JSON")


@pytest.mark.parametrize("construct", CONSTRUCTS,
                         ids=[c.refused or f"t{i}" for i, c in enumerate(CONSTRUCTS)])
def test_each_clickhouse_construct_is_translated_equal_to_clickhouse_or_refused_by_name(
        engine: LocalEngine, clickhouse: ClickHouse, construct: Any) -> None:
    """Nothing is dropped: a construct sqlglot parses either means here what it means in
    ClickHouse, or is refused, naming it, before either source runs it."""
    sqlglot.parse(construct.sql, read="clickhouse")  # a construct sqlglot parses
    if construct.refused is None:
        problems = run_both(engine, clickhouse, Q(construct.sql))
        assert not problems, f"{construct.sql}\n" + "\n".join(problems)
        return
    for run in (engine.query, to_clickhouse):
        with pytest.raises(InvalidQuery) as caught:
            run(construct.sql)
        message = str(caught.value)
        assert construct.refused in message and "syntax error" not in message, message


def test_the_construct_walk_covers_the_clauses_clickhouse_adds() -> None:
    names = " ".join(c.refused or "" for c in CONSTRUCTS)
    for clause in ("LIMIT ... BY", "WITH TOTALS", "SETTINGS", "FINAL", "SAMPLE", "PREWHERE",
                   "ARRAY JOIN", "OVER", "GROUPING SETS", "ROLLUP", "CUBE", "QUALIFY"):
        assert clause in names, clause
    assert sum(c.refused is None for c in CONSTRUCTS) >= 5
