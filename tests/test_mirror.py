"""The columnar mirror (storage/query/mirror.py): its answers equal ClickHouse's on the whole
conformance corpus and every dashboard query, in both layouts. Its life (fresh answers,
retention, falling back, rebuilding, loading) is in test_mirror_life.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from aesql_corpus import CORPUS, DASHBOARD
from aesql_fixtures import NOW, ClickHouse, differences, import_log, make_hoox_records, make_records

import dashboard
from storage.log import EventLog
from storage.query.aesql import InvalidQuery, LocalEngine, to_clickhouse
from storage.query.mirror import MirroredEngine, ask

ROOT = Path(__file__).resolve().parent.parent
QUERIES = dashboard.load_queries()


class Mirror:
    """The mirror's real process on a log, as gunicorn's master starts it."""

    def __init__(self, db: str, directory: Path, dataset: str = "hoox_telemetry",
                 env: dict[str, str] | None = None, layout: str = "profile"):
        self.db, self.dataset = db, dataset
        self.socket = str(directory / "mirror.sock")
        env = {**os.environ, "ANALYTICS_DB": db, "ANALYTICS_DATASET": dataset,
               "ANALYTICS_MIRROR_DIR": str(directory / "mirror"),
               "INTERNAL_KEY_BINDING": "test-key",
               "ANALYTICS_MIRROR_MIN_EVENTS": "0",  # these logs are small
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                           os.environ.get("PYTHONPATH")])),
               **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "storage.query.mirror_process",
                                      self.socket], env=env, cwd=ROOT)
        deadline = time.monotonic() + 30
        while True:
            try:
                ask(self.socket, {"ping": True}, 2)
                break
            except Exception:
                assert self.proc.poll() is None, "the mirror exited"
                assert time.monotonic() < deadline, "the mirror did not answer"
                time.sleep(0.05)
        self.log = EventLog(db, layout=layout, write=False)

    def engine(self, **kwargs: Any) -> MirroredEngine:
        local = LocalEngine(self.db, dataset=self.dataset, now=lambda: NOW, **kwargs)
        # every query to the mirror, however few rows it reads: these tests are its
        return MirroredEngine(local, self.socket, self.log.last_seq, few_locally=False)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_records()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, records: list[dict]) -> str:
    return import_log(tmp_path_factory.mktemp("mirror-conformance"), records)


@pytest.fixture(scope="module")
def mirror(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    m = Mirror(db, tmp_path_factory.mktemp("mirror"))
    yield m
    m.stop()


@pytest.fixture(scope="module")
def engine(mirror: Mirror) -> Iterator[MirroredEngine]:
    e = mirror.engine()
    yield e
    e.close()


def drop(table: str) -> None:
    from chdb import session

    session.Session().query(f"DROP TABLE IF EXISTS `{table}`")


@pytest.fixture(scope="module")
def clickhouse(records: list[dict]) -> Iterator[ClickHouse]:
    drop("hoox_telemetry")
    yield ClickHouse(records)
    drop("hoox_telemetry")


def compare(engine: MirroredEngine, clickhouse: ClickHouse, sql: str,
            params: Any = ()) -> list[str]:
    answered = engine.answered
    mine = engine.query(sql, list(params))
    assert engine.answered == answered + 1, \
        f"the log's engine answered, not the mirror: {engine.fell_back_because}"
    reference = clickhouse.query(to_clickhouse(sql, params, now=NOW, portable=True,
                                               format=None, dataset=engine.local.dataset))
    return differences(mine, reference, ordered=bool(re.search(r"ORDER BY", sql)))


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=lambda i: f"q{i + 1:02d}")
def test_mirror_equals_clickhouse_on_the_corpus(engine: MirroredEngine,
                                                clickhouse: ClickHouse, index: int) -> None:
    q = CORPUS[index]
    problems = compare(engine, clickhouse, q.sql, q.params)
    assert not problems, f"{q.sql}\n" + "\n".join(problems)


CASES = [(name, r) for name in QUERIES["layouts"]["profile"] for r in QUERIES["ranges"]]


@pytest.mark.parametrize("name,r", CASES, ids=[f"{n}-{r['name']}" for n, r in CASES])
def test_mirror_equals_clickhouse_on_the_dashboard(engine: MirroredEngine,
                                                   clickhouse: ClickHouse, name: str,
                                                   r: dict[str, Any]) -> None:
    sql = dashboard.expand(QUERIES["layouts"]["profile"][name], "hoox_telemetry",
                           r["since"], r["bucket"])
    assert not compare(engine, clickhouse, sql), sql


def test_mirror_answers_equal_the_logs_engine(engine: MirroredEngine) -> None:
    """Row for row and type for type what the service answered before the mirror."""
    for q in CORPUS[:20]:
        answered, fell_back = engine.answered, engine.fell_back
        mine = engine.query(q.sql, list(q.params))
        # the mirror answered, not the log's engine standing in for it
        assert (engine.answered, engine.fell_back) == (answered + 1, fell_back), q.sql
        theirs = engine.local.query(q.sql, q.params)
        assert mine.meta == theirs.meta, q.sql
        assert not differences(mine, {"meta": theirs.meta, "data": theirs.rows},
                               ordered=bool(re.search(r"ORDER BY", q.sql))), q.sql


def test_invalid_sql_is_invalid_before_reaching_the_mirror(engine: MirroredEngine) -> None:
    answered, fell_back = engine.answered, engine.fell_back
    with pytest.raises(InvalidQuery):
        engine.query("SELECT nosuchcolumn FROM hoox_telemetry")
    assert (engine.answered, engine.fell_back) == (answered, fell_back)


def test_row_cap_truncates(mirror: Mirror) -> None:
    e = mirror.engine(max_rows=7)
    try:
        result = e.query("SELECT index1 FROM hoox_telemetry")
        assert len(result.rows) == 7 and result.truncated and e.answered == 1
        assert not e.query("SELECT count() AS n FROM hoox_telemetry").truncated
    finally:
        e.close()


# -- the hoox layout ----------------------------------------------------------------------

HOOX = "hoox-analytics"


@pytest.fixture(scope="module")
def hoox_records() -> list[dict]:
    return make_hoox_records()


@pytest.fixture(scope="module")
def hoox_mirror(tmp_path_factory: pytest.TempPathFactory,
                hoox_records: list[dict]) -> Iterator[Mirror]:
    directory = tmp_path_factory.mktemp("hoox-mirror")
    m = Mirror(import_log(directory, hoox_records, layout="hoox"), directory, HOOX,
               layout="hoox")
    yield m
    m.stop()


@pytest.fixture(scope="module")
def hoox_clickhouse(hoox_records: list[dict]) -> Iterator[ClickHouse]:
    drop(HOOX)
    yield ClickHouse(hoox_records, dataset=HOOX, layout="hoox")
    drop(HOOX)


HOOX_CASES = [(name, r) for name in QUERIES["layouts"]["hoox"] for r in QUERIES["ranges"]]


@pytest.mark.parametrize("name,r", HOOX_CASES, ids=[f"{n}-{r['name']}" for n, r in HOOX_CASES])
def test_mirror_equals_clickhouse_on_a_hoox_log(hoox_mirror: Mirror,
                                                hoox_clickhouse: ClickHouse, name: str,
                                                r: dict[str, Any]) -> None:
    e = hoox_mirror.engine()
    try:
        sql = dashboard.expand(QUERIES["layouts"]["hoox"][name], HOOX, r["since"],
                               r["bucket"])
        assert e.query(sql).rows, sql
        assert not compare(e, hoox_clickhouse, sql), sql
    finally:
        e.close()


@pytest.mark.parametrize("index", range(len(DASHBOARD)), ids=lambda i: f"d{i + 1}")
def test_mirror_equals_clickhouse_on_the_platforms_queries(
        hoox_mirror: Mirror, hoox_clickhouse: ClickHouse, index: int) -> None:
    e = hoox_mirror.engine()
    try:
        q = DASHBOARD[index]
        problems = compare(e, hoox_clickhouse, q.sql, q.params)
        assert not problems, f"{q.sql}\n" + "\n".join(problems)
    finally:
        e.close()
