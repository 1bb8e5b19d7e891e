"""The log keeps the whole data point and its layout: a log written by version 0.1.0 (a
committed fixture, made by that version's code) upgrades in place, and a log of one layout
is refused under the other by the service and by every command, left untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import KEY, ROOT
from hoox_callers import CALLERS

from app import create_app
from cli import main
from storage import replay
from storage.config import Config
from storage.log import MIGRATIONS, EventLog, LayoutMismatch

FIXTURE = ROOT / "tests" / "fixtures" / "profile-log-0.1.0.db"


@pytest.fixture
def old_log(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_log_of_version_0_1_0_upgrades_in_place_keeping_events_and_cursor(old_log):
    before = rows(old_log, "SELECT seq, request_id, type, received_ms, payload, blob1, blob2,"
                           " blob3, double1 FROM events ORDER BY seq")
    view_before = rows(old_log, "SELECT * FROM datapoints ORDER BY seq")
    assert len(before) == 13 and before[0][0] == 1 and before[1][0] == 3  # a gap at 2
    assert rows(old_log, "SELECT seq FROM replay_state WHERE sink = 'relay'") == [(7,)]

    log = EventLog(old_log)
    try:
        assert log.replayed_through("relay") == 7
        assert log.last_seq() == 14
        after = log.conn.execute("SELECT seq, request_id, type, received_ms, payload, blob1,"
                                 " blob2, blob3, double1 FROM events ORDER BY seq").fetchall()
        assert after == before
        # The view shows the same data point as before, now in every slot.
        assert log.conn.execute("SELECT * FROM datapoints ORDER BY seq").fetchall() == view_before
        # The backlog after the cursor replays the same points as version 0.1.0 sent.
        backlog = replay.pending(log, log.replayed_through("relay"), 100)
        assert [p.seq for p in backlog] == [8, 9, 10, 11, 12, 13, 14]
        first = backlog[0]
        assert first.point.blobs == ("hoox", "/api/trade", "1")
        assert first.point.doubles == (17.5, 1_764_000_007.0)
        assert first.point.indexes == ("env-7",)
        # New events follow the old ones' numbers.
        result = log.append([_event(log, "after-upgrade")])
        assert result.accepted == 1
        assert log.last_seq() == 15
        assert log.conn.execute("SELECT key, value FROM log_meta ORDER BY key").fetchall() == [
            # rows numbered below these may hold the former ids made from a key
            ("former_key_ids_before_seq", "15"), ("former_point_key_ids_before_seq", "1"),
            ("layout", "profile")]
    finally:
        log.close()


def _event(log: EventLog, request_id: str) -> Any:
    from storage.intake.events import EventParser
    body = {"requestId": request_id, "payload": {"worker": "w", "endpoint": "/e",
                                                "latencyMs": 1, "success": True}}
    return EventParser(lambda: "x", log.layout).one(body, 1_764_000_100_000)


def test_migrations_are_safe_to_run_twice(old_log):
    EventLog(old_log).close()
    log = EventLog(old_log)
    try:
        schema = log.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        # Forget that they ran: every migration runs again.
        with log.transaction() as conn:
            conn.execute("DELETE FROM _sqlite_migrations")
            MIGRATIONS.apply(log.db)
    finally:
        log.close()
    log = EventLog(old_log)  # the opener recreates the view the migration dropped
    try:
        assert log.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
        assert log.count() == 13
        assert log.replayed_through("relay") == 7
    finally:
        log.close()


def test_the_view_shows_unset_slots_as_analytics_engine_does(old_log):
    log = EventLog(old_log)
    try:
        cursor = log.conn.execute("SELECT * FROM datapoints WHERE index1 = 'env-4'")
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    finally:
        log.close()
    assert [row[f"blob{i}"] for i in range(4, 21)] == [""] * 17
    assert [row[f"double{i}"] for i in range(3, 21)] == [0] * 18
    assert row["double2"] == 1_764_000_004.0


def test_the_log_keeps_slots_beyond_the_layouts_own(tmp_path):
    """Every slot has a column, so a point written whole comes back whole."""
    log = EventLog(tmp_path / "a.db", layout="hoox")
    try:
        with log.transaction() as conn:
            conn.execute("INSERT INTO events (request_id, type, received_ms, payload, blob1,"
                         " blob2, blob3, double1, blob20, double20) VALUES ('r', 'api-call',"
                         " 0, '{}', 'a', 'b', 'c', 1, 'last', 2.5)")
        assert log.conn.execute("SELECT blob20, double20, blob19, double19 FROM datapoints"
                                ).fetchone() == ("last", 2.5, "", 0)
    finally:
        log.close()


def test_a_log_of_one_layout_refuses_the_other(old_log, tmp_path):
    before = digest(old_log)
    with pytest.raises(LayoutMismatch) as raised:
        EventLog(old_log, layout="hoox")
    message = str(raised.value)
    assert "\n" not in message
    for part in ("profile", "hoox", "ANALYTICS_LAYOUT"):
        assert part in message
    assert digest(old_log) == before

    hoox_log = tmp_path / "hoox.db"
    EventLog(hoox_log, layout="hoox").close()
    with pytest.raises(LayoutMismatch, match="holds the hoox layout.*ANALYTICS_LAYOUT=profile"):
        EventLog(hoox_log)


def test_an_empty_log_of_an_older_version_takes_the_layout_it_is_opened_with(tmp_path):
    path = tmp_path / "empty.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL UNIQUE,"
        " type TEXT NOT NULL, received_ms INTEGER NOT NULL, payload TEXT NOT NULL,"
        " blob1 TEXT NOT NULL, blob2 TEXT NOT NULL, blob3 TEXT NOT NULL,"
        " double1 REAL NOT NULL);")
    conn.close()
    EventLog(path, layout="hoox").close()
    with pytest.raises(LayoutMismatch):
        EventLog(path)


def test_the_service_refuses_to_start_on_a_log_of_another_layout(old_log):
    before = digest(old_log)
    config = Config(internal_keys=(KEY,), db_path=str(old_log), sink="none", layout="hoox")
    with pytest.raises(LayoutMismatch, match="ANALYTICS_LAYOUT=hoox"):
        create_app(config, background=False)
    assert digest(old_log) == before


COMMANDS = [
    ["status", "--offline"],
    ["query", "--source", "local", "SELECT count() FROM \"hoox-analytics\""],
    ["export"],
    ["import", "-"],
    ["replay", "--dry-run"],
    ["audit", "--since", "2025-11-24T00:00:00Z", "--until", "2025-11-25T00:00:00Z"],
    ["serve"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_refuses_a_log_of_another_layout_with_one_line(old_log, args):
    before = digest(old_log)
    env = {"ANALYTICS_DB": str(old_log), "ANALYTICS_LAYOUT": "hoox", "INTERNAL_KEY_BINDING": KEY,
           "CLOUDFLARE_API_TOKEN": "t", "CLOUDFLARE_ACCOUNT_ID": "a",
           "CLOUDFLARE_API_BASE": "http://127.0.0.1:9/client/v4", "ANALYTICS_SINK": "stdout"}
    result = CliRunner().invoke(main, args, env=env, input="")
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for part in ("profile", "hoox", "ANALYTICS_LAYOUT"):
        assert part in lines[0]
    assert digest(old_log) == before


def test_hoox_export_imports_into_an_empty_log_as_the_same_export(make_client, tmp_path):
    source = tmp_path / "source.db"
    config = Config(internal_keys=(KEY,), db_path=str(source), sink="none", layout="hoox")
    client = make_client(config, background=False)
    for caller in CALLERS:
        assert client.simulate_post(f"/track/{caller.route}", json=caller.body).status_code == 200
    env = {"ANALYTICS_LAYOUT": "hoox"}
    exported = CliRunner().invoke(main, ["export", "--db", str(source)], env=env)
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["type"] for line in lines] == [c.route for c in CALLERS]

    target = tmp_path / "target.db"
    imported = CliRunner().invoke(main, ["import", "--db", str(target), "-"], env=env,
                                  input=exported.stdout)
    assert imported.exit_code == 0, imported.output
    again = CliRunner().invoke(main, ["export", "--db", str(target)], env=env)
    assert again.stdout == exported.stdout
    # The data points are the same too, fresh request ids included.
    assert rows(target, "SELECT * FROM datapoints ORDER BY seq") == \
        rows(source, "SELECT * FROM datapoints ORDER BY seq")

    csv_out = CliRunner().invoke(main, ["export", "--db", str(source), "--format", "csv"],
                                 env=env)
    csv_lines = csv_out.stdout.splitlines()
    header, first = csv_lines[:2]
    assert header == ("requestId,type,receivedAt,blob1,blob2,blob3,blob4,blob5,"
                      "double1,double2,double3,double5")
    assert first.startswith("trade-req-1,trade,") and first.endswith(
        ",trade,trade-worker,success,binance,BTCUSDT,0.01,64250.5,182,0")
    # The kill switch's decimal string is a number in the point; accountValue in double5.
    kill = [line for line in csv_lines if ",kill-switch," in line]
    assert kill[0].endswith(",kill-switch,agent-worker,max_drawdown,,,-12.34,-10,-1234.5,10000")


def test_import_refuses_a_type_of_another_layout(tmp_path):
    line = json.dumps({"requestId": "r", "type": "signal", "receivedAt": "2026-01-01T00:00:00Z",
                       "payload": {"data": {"source": "s", "type": "t", "symbol": "x",
                                            "confidence": 0.5}}})
    result = CliRunner().invoke(main, ["import", "--db", str(tmp_path / "p.db"), "-"],
                                input=line + "\n")
    assert result.exit_code == 1
    assert "line 1: $.type: must be one of api-call" in result.output
    ok = CliRunner().invoke(main, ["import", "--db", str(tmp_path / "h.db"), "-"],
                            input=line + "\n", env={"ANALYTICS_LAYOUT": "hoox"})
    assert ok.exit_code == 0, ok.output


@pytest.mark.gunicorn
def test_gunicorn_refuses_to_start_on_a_log_of_another_layout(old_log, tmp_path):
    import subprocess
    import sys

    from conftest import free_port, service_env

    before = digest(old_log)
    env = service_env(old_log, ANALYTICS_LAYOUT="hoox")
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_conf", "--bind",
         f"127.0.0.1:{free_port()}", "app:create_app()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "ANALYTICS_LAYOUT" in line]
    assert len(lines) == 1 and "profile" in lines[0] and "hoox" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert digest(old_log) == before
