"""Queries from public projects (tests/real_queries.py) run on the local engine as they run
on ClickHouse, or are refused naming the construct Analytics Engine refuses."""

from __future__ import annotations

import re
from typing import Iterator

import pytest
from aesql_fixtures import NOW, UNTIMED_MS, ClickHouse, differences, import_log, make_records
from real_queries import REAL_QUERIES, RealQuery, T

from storage.query.aesql import InvalidQuery, LocalEngine, parse, to_clickhouse

pytestmark = pytest.mark.untimed  # beside the server tests (test.sh)

ANSWERED = [q for q in REAL_QUERIES if q.refused is None and not q.sql.startswith("SHOW")]
REFUSED = [q for q in REAL_QUERIES if q.refused is not None]


def _ids(queries: list[RealQuery]) -> list[str]:
    return [f"{q.source.split('/')[1].split(' ')[0]}-{i}" for i, q in enumerate(queries)]


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_records()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, records: list[dict]
           ) -> Iterator[LocalEngine]:
    e = LocalEngine(import_log(tmp_path_factory.mktemp("real"), records), now=lambda: NOW,
                    timeout_ms=UNTIMED_MS)
    yield e
    e.close()


@pytest.fixture(scope="module")
def clickhouse(records: list[dict]) -> Iterator[ClickHouse]:
    from chdb import session

    # chdb has one server per process: the table outlives a module unless dropped
    session.Session().query(f"DROP TABLE IF EXISTS `{T}`")
    yield ClickHouse(records)
    session.Session().query(f"DROP TABLE IF EXISTS `{T}`")


def test_the_corpus_holds_forty_real_queries_from_six_projects_each_naming_its_source(
        ) -> None:
    assert len(REAL_QUERIES) >= 40
    repositories = {q.source.split(" ")[0] for q in REAL_QUERIES}
    assert len(repositories) >= 6
    for q in REAL_QUERIES:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+ \S+", q.source), q.source
        assert (q.refused is None) == (q.reason is None), q.sql


@pytest.mark.parametrize("query", ANSWERED, ids=_ids(ANSWERED))
def test_a_real_query_is_answered_as_clickhouse_answers_it(
        engine: LocalEngine, clickhouse: ClickHouse, query: RealQuery) -> None:
    local = engine.query(query.sql)
    parse(to_clickhouse(query.sql, format=None))  # the text for Cloudflare passes again
    reference = clickhouse.query(to_clickhouse(query.sql, now=NOW, portable=True,
                                               format=None))
    if query.names is not None:
        assert [m["name"] for m in local.meta] == list(query.names)
        for m, name in zip(reference["meta"], query.names):
            for row in reference["data"]:
                row[name] = row.pop(m["name"])
            m["name"] = name
    ordered = bool(re.search(r"ORDER BY", query.sql, re.IGNORECASE)) and not query.ties
    problems = differences(local, reference, ordered=ordered)
    assert not problems, f"{query.source}\n{query.sql}\n" + "\n".join(problems)


def test_the_real_queries_see_data(engine: LocalEngine) -> None:
    """The comparison means something only if the queries have rows to compare."""
    empty = [q.sql for q in ANSWERED if not engine.query(q.sql).rows]
    assert not empty


@pytest.mark.parametrize("query", REFUSED, ids=_ids(REFUSED))
def test_a_real_query_cloudflare_refuses_is_refused_naming_the_construct(
        engine: LocalEngine, clickhouse: ClickHouse, query: RealQuery) -> None:
    assert query.refused is not None and query.reason
    for run in (engine.query, to_clickhouse):
        with pytest.raises(InvalidQuery) as caught:
            run(query.sql)
        message = str(caught.value)
        assert query.refused in message and "syntax error" not in message, message
    if "ClickHouse refuses" in query.reason:  # said of ClickHouse: so it does
        with pytest.raises(Exception, match=r"DB::Exception"):
            clickhouse.query(query.sql)


def test_show_tables_answers_the_dataset_as_analytics_engine_does(engine: LocalEngine
                                                                   ) -> None:
    shows = [q for q in REAL_QUERIES if q.sql.startswith("SHOW")]
    assert shows
    for q in shows:
        assert engine.query(q.sql).rows == [{"dataset": T}]
