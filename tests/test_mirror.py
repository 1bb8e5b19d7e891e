"""The columnar mirror (storage/query/mirror.py): its answers equal ClickHouse's on the whole
conformance corpus and every dashboard query, it holds every committed event when it
answers, follows retention, stands aside for the log's engine when it cannot answer, and
is rebuilt from the log by a command."""

from __future__ import annotations

import os
import re
import sqlite3
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


# -- freshness, retention, falling back, rebuilding --------------------------------------

def _event(i: int, received_ms: int) -> tuple:
    return (f"fresh-{i}", "api-call", received_ms, "{}", "fresh-worker", "/", "1", 1.5)


def _append(db: str, rows: list[tuple]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany("INSERT INTO events (request_id, type, received_ms, payload, "
                         "blob1, blob2, blob3, double1) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         rows)
    conn.close()


COUNT = "SELECT count() AS n FROM hoox_telemetry WHERE blob1 = 'fresh-worker'"


@pytest.fixture
def own_mirror(tmp_path: Path, records: list[dict]) -> Iterator[Mirror]:
    m = Mirror(import_log(tmp_path, records[:500]), tmp_path)
    yield m
    m.stop()


def test_an_event_committed_before_a_query_is_in_its_answer(own_mirror: Mirror) -> None:
    e = own_mirror.engine()
    try:
        for round_ in range(3):
            _append(own_mirror.db, [_event(round_ * 10 + i, NOW * 1000 - 5000)
                                    for i in range(10)])
            # asked at once: no waiting for the mirror's own feeding round
            assert e.query(COUNT).rows == [{"n": 10 * (round_ + 1)}]
        assert e.answered == 3 and e.fell_back == 0
    finally:
        e.close()


def test_events_pruned_from_the_log_leave_the_mirror(tmp_path: Path,
                                                     records: list[dict]) -> None:
    from storage.log import counters
    from storage.query.mirror_server import FEED_EVERY_S, FEED_LOOK_S

    # a retention of one day: every test record is older than that
    m = Mirror(import_log(tmp_path, records[:500]), tmp_path,
               env={"ANALYTICS_RETENTION_DAYS": "1"})
    e = m.engine()
    try:
        assert e.query("SELECT count() AS n FROM hoox_telemetry").rows == [{"n": 500}]
        conn = sqlite3.connect(m.db)
        with conn:  # as retention does: old events, not a prefix of the sequence, and
            # their number added to the pruned counter in the same transaction
            pruned = conn.execute("DELETE FROM events WHERE seq <= 100 OR seq % 7 = 0").rowcount
            counters.add(conn, {(counters.PRUNED, counters.labels()): pruned})
            left = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        conn.close()
        deadline = time.monotonic() + FEED_LOOK_S + FEED_EVERY_S * 4 + 5
        while e.query("SELECT count() AS n FROM hoox_telemetry").rows != [{"n": left}]:
            assert time.monotonic() < deadline, "the pruned events stayed in the mirror"
            time.sleep(0.5)
        seqs = e.query("SELECT index1 FROM hoox_telemetry ORDER BY index1").rows
        assert seqs == e.local.query("SELECT index1 FROM hoox_telemetry ORDER BY index1").rows
        assert e.fell_back == 0
    finally:
        e.close()
        m.stop()


def test_the_logs_engine_answers_while_the_mirror_is_down(own_mirror: Mirror) -> None:
    e = own_mirror.engine()
    try:
        sql = "SELECT blob1 AS w, count() AS n FROM hoox_telemetry GROUP BY w ORDER BY w"
        up = e.query(sql)
        own_mirror.stop()
        down = e.query(sql)
        assert down.rows == up.rows and down.meta == up.meta
        assert (e.answered, e.fell_back) == (1, 1)
    finally:
        e.close()


def test_a_mirror_too_far_behind_lets_the_log_answer(own_mirror: Mirror) -> None:
    from storage.query.mirror import MAX_TAIL_EVENTS

    e = own_mirror.engine()
    try:
        # more than a query may read of the tail: the log's engine answers this one
        e._last_seq = lambda: own_mirror.log.last_seq() + MAX_TAIL_EVENTS + 1
        assert e.query("SELECT count() AS n FROM hoox_telemetry").rows == [{"n": 500}]
        assert (e.answered, e.fell_back) == (0, 1)
    finally:
        e.close()


def test_a_log_started_over_rebuilds_the_mirror(own_mirror: Mirror) -> None:
    """A log whose newest event is older than the mirror's (a log restored or replaced:
    retention always keeps the newest) is another log: the mirror copies it again."""
    e = own_mirror.engine()
    try:
        assert e.query("SELECT count() AS n FROM hoox_telemetry").rows == [{"n": 500}]
        conn = sqlite3.connect(own_mirror.db)
        with conn:
            conn.execute("DELETE FROM events")
        conn.close()
        _append(own_mirror.db, [_event(i, NOW * 1000 - 1000) for i in range(50)])
        assert own_mirror.log.last_seq() == 50
        sql = "SELECT count() AS n, countIf(blob1 = 'fresh-worker') AS fresh FROM hoox_telemetry"
        # right at once (the log answers while the mirror copies the new log: a query
        # never waits for a whole copy), then from the mirror
        assert e.query(sql).rows == [{"n": 50, "fresh": 50}]
        deadline = time.monotonic() + 20
        while True:
            answered = e.answered
            assert e.query(sql).rows == [{"n": 50, "fresh": 50}]
            if e.answered > answered:
                break
            assert time.monotonic() < deadline, "the mirror did not copy the new log"
            time.sleep(0.5)
    finally:
        e.close()


def test_mirror_rebuild_command(tmp_path: Path, records: list[dict]) -> None:
    db = import_log(tmp_path, records[:300])
    env = {"INTERNAL_KEY_BINDING": "k", "ANALYTICS_MIRROR_DIR": str(tmp_path / "mirror")}
    # in a process of its own: one chdb data directory per process, and this test
    # process already runs ClickHouse for the other tests
    done = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "mirror-rebuild",
                           "--db", db], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "300 events from the log" in done.stdout
    m = Mirror(db, tmp_path)  # the service's mirror starts from the copy the command made
    try:
        assert ask(m.socket, {"ping": True}, 2)["seq"] == 300
    finally:
        m.stop()


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


# -- under gunicorn: the mirror costs nothing until the log needs it ----------------------

def test_a_waiting_mirror_has_imported_neither_chdb_nor_the_engine() -> None:
    """What the mirror's process runs until the log needs it: a small process."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, storage.query.mirror_process; "
         "print(sorted(m for m in ('chdb', 'sqlglot', 'storage.query.aesql') "
         "if m in sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded


def _mirror_with_chdb(server: Any) -> list[int]:
    """The service's mirror processes that have loaded chdb (ClickHouse's library)."""
    pids = [pid for pid, cmd in server._children() if "storage.query.mirror_process" in cmd]
    assert len(pids) == 1
    return [pid for pid in pids if "chdb" in Path(f"/proc/{pid}/maps").read_text()]


@pytest.mark.gunicorn
def test_the_mirror_loads_only_once_the_log_holds_enough_events(gunicorn_server) -> None:
    import httpx
    from conftest import AUTH

    server = gunicorn_server(ANALYTICS_MIRROR_MIN_EVENTS="40")
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        time.sleep(1)
        assert client.get("/status").json()["mirror"]["state"] == "waiting"
        assert _mirror_with_chdb(server) == []
        events = [{"worker": "w", "endpoint": f"/{i}", "latencyMs": i, "success": True}
                  for i in range(39)]
        assert client.post("/track/batch", json={"events": events}).status_code == 200
        # below the threshold the log's engine answers, with every event
        query = {"query": "SELECT count() AS n FROM hoox_telemetry", "source": "local"}
        assert client.post("/query", json=query).json()["results"] == [{"n": 39}]
        time.sleep(6)  # past the waiting mirror's look every 5 s
        assert _mirror_with_chdb(server) == []
        assert client.post("/track/batch", json={"events": events[:1]}).status_code == 200
        deadline = time.monotonic() + 40
        while client.get("/status").json()["mirror"]["state"] != "running":
            assert time.monotonic() < deadline, "the mirror did not start"
            time.sleep(0.5)
        assert len(_mirror_with_chdb(server)) == 1
        assert client.post("/query", json=query).json()["results"] == [{"n": 40}]


# -- which engine answers: few rows stay with the log -------------------------------------

def test_a_query_of_few_rows_is_the_logs_and_a_query_of_many_the_mirrors(
        own_mirror: Mirror, tmp_path: Path) -> None:
    from aesql_fixtures import bulk_log

    from storage.query.aesql.engine import PROBE_ROWS

    e = MirroredEngine(LocalEngine(own_mirror.db, now=lambda: NOW), own_mirror.socket,
                       own_mirror.log.last_seq)
    try:
        answer = e.query("SELECT count() AS n FROM hoox_telemetry")
        assert answer.rows == [{"n": 500}] and (e.few, e.answered) == (1, 0)
    finally:
        e.close()
    # the probe, on a log of more rows than it lets the log's engine answer
    big = LocalEngine(bulk_log(tmp_path / "big.db", PROBE_ROWS + 2000, days=10),
                      now=lambda: NOW)
    try:
        assert not big.reads_few("SELECT count() AS n FROM hoox_telemetry")
        assert not big.reads_few("SELECT blob1 FROM hoox_telemetry WHERE double1 > 0")
        assert big.reads_few("SELECT count() AS n FROM hoox_telemetry "
                             "WHERE timestamp > now() - INTERVAL '1' HOUR")
        assert big.reads_few("SELECT count() AS n FROM hoox_telemetry WHERE blob1 = 'none' "
                             "AND timestamp > now() - INTERVAL '1' DAY")
    finally:
        big.close()
