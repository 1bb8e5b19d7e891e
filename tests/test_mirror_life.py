"""The columnar mirror's life (storage/query/mirror.py, mirror_process.py): it holds every
committed event when it answers, follows retention, stands aside for the log's engine when
it cannot answer, is rebuilt from the log by a command, and loads only once the log needs
it. (Apart from its answers, test_mirror.py, so that the two run side by side: these
mostly wait on the mirror's process.)"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from aesql_fixtures import NOW, import_log, make_records
from test_mirror import ROOT, Mirror

from storage.query.aesql import LocalEngine
from storage.query.mirror import MirroredEngine, ask

pytestmark = pytest.mark.long


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_records()


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
