"""Periodic work and the fixed steps of every request never walk the log (SPEC §12.1).

Every statement that replay, retention, the mirror's feed and reconcile, the counters,
`/status`, `/health`, `/metrics`, the writer and the look for an Idempotency-Key used
before issue against the log is caught as it
runs (SQLite's trace callback on the connections they use), on a log of 40,000 events,
half of them replayed, and 20,000 raw data points of two datasets, with statistics
(ANALYZE). Each must then:

- have a query plan that never scans `events` or `points` (`SCAN …`, with or without
  an index): a search by key or by index only;
- read a bounded part of the log: run again, it takes fewer than a twentieth of the
  VM instructions of one walk over every event (or every point). (A search by key can still walk: `seq
  <= ?` from the first event. The count of instructions, not a timing, tells.)

The statements these replaced are held to the same check and fail it (the last test),
so the check is one that can fail.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Callable

import pytest
from aesql_fixtures import NOW, bulk_log

from storage import metrics, replay
from storage.config import Config
from storage.intake import points
from storage.intake.events import EventParser, key_id
from storage.log import EventLog, counters, retention
from storage.log.points import TABLE as POINTS_TABLE
from storage.query import mirror
from storage.query.mirror_process import seq_span
from storage.replay import sink

EVENTS = 40_000
REPLAYED = EVENTS // 2
POINTS = 20_000
TABLES = ("events", POINTS_TABLE)
SINK = "stdout"
CONFIG = Config(internal_keys=("k",), sink=SINK)


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = bulk_log(tmp_path_factory.mktemp("plans") / "analytics.db", EVENTS)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO counters (name, labels, value) VALUES (?, ?, ?)",
                     (counters.ACCEPTED, counters.labels(type="api-call"), EVENTS))
        # half the log confirmed by the sink: a backlog of half the log, and a replayed
        # half that retention looks through
        conn.execute("INSERT INTO replay_state (sink, seq) VALUES (?, ?)", (SINK, REPLAYED))
    conn.close()
    event_log = EventLog(path)
    try:  # raw points of two datasets over the same 30 days, through the log's own path
        step = 30 * 86400 * 1000 // POINTS
        event_log.append_points([
            points.row(f"dataset_{i % 2}", f"p-{i}", (NOW - 30 * 86400) * 1000 + i * step,
                       points.DataPoint((f"b{i % 7}",), (float(i),), ()))
            for i in range(POINTS)])
    finally:
        event_log.close()
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    conn.close()
    return path


class Traced:
    """The statements run on a log's connections (its write one and this thread's read
    one), in the order they ran."""

    def __init__(self, event_log: EventLog):
        self.statements: list[str] = []
        for conn in (event_log.conn, event_log.db.conn):
            conn.set_trace_callback(self.statements.append)

    def take(self) -> list[str]:
        taken, self.statements[:] = list(self.statements), []
        return taken


def _tables(statement: str) -> list[str]:
    """The log's tables of events and points that `statement` names."""
    text = statement.lower()
    if text.startswith(("begin", "commit", "rollback", "pragma")):
        return []
    return [t for t in TABLES if re.search(rf"\b{t}\b", text)]


def _on_events(statement: str) -> bool:
    return bool(_tables(statement))


def _steps(conn: sqlite3.Connection, statement: str) -> int:
    """VM instructions (in thousands) that running `statement` takes."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 1000)
    try:
        conn.execute(statement).fetchall()
    finally:
        conn.set_progress_handler(None, 0)
    return count[0]


def problems(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    """What is wrong with each statement on `events` or `points`: a scan in its plan, or
    a walk."""
    walks = {t: _steps(conn, f"SELECT sum(double1) FROM {t}") for t in TABLES}
    found = []
    for statement in dict.fromkeys(s for s in statements if _on_events(s)):
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement)]
        walk = min(walks[t] for t in _tables(statement))
        if any(step.startswith(f"SCAN {t}") for step in plan for t in TABLES):
            found.append(f"scans the log: {statement}\n  {plan}")
        elif statement.lstrip().upper().startswith(("SELECT", "WITH")):
            steps = _steps(conn, statement)
            if steps * 20 > walk:
                found.append(f"walks the log ({steps}k VM steps, a walk is {walk}k): "
                             f"{statement}\n  {plan}")
    return found


def _work(event_log: EventLog) -> dict[str, Callable[[], object]]:
    """Each piece of periodic work and each fixed step of a request, on `event_log`."""
    now_ms = NOW * 1000
    clock = lambda: float(NOW)  # noqa: E731
    replayer = replay.Replayer(event_log, sink.NoneSink(), clock=clock)
    row = ("plan-new-event", "api-call", now_ms, "{}", "w", "/", "1", 1.0)
    point = points.row("dataset_0", "plan-new-point", now_ms, points.DataPoint(("b",), (1.0,), ()))
    flat = {"worker": "w", "endpoint": "/", "latencyMs": 1, "success": True}
    keyed = EventParser(lambda: "unused").many({"events": [flat] * 3}, now_ms, "plan-key")
    keyed_points = [points.row("dataset_0", key_id("plan-key", i), now_ms,
                               points.DataPoint(("b",), (1.0,), ())) for i in range(3)]
    return {
        # replay: the lease, the next batch, the cursor's move
        "replay tick": replayer.tick,
        "replay lag (every /query with source auto)":
            lambda: replay.lag_ms(event_log, "relay", now_ms),
        # retention, with nothing old enough (the common case) and with some
        "retention, nothing to prune":
            lambda: retention.prune(event_log, NOW, 92, sink=SINK, pause=lambda s: None),
        "retention, a day to prune":
            lambda: retention.prune(event_log, NOW, 29, sink=SINK, pause=lambda s: None),
        "retention of raw points, nothing to prune":
            lambda: retention.prune_points(event_log, NOW, 92, pause=lambda s: None),
        "retention of raw points, a day to prune":
            lambda: retention.prune_points(event_log, NOW, 29, pause=lambda s: None),
        # the mirror's feed and reconcile (what it asks of the log), and the master's
        # question whether the log is large enough for the mirror
        "mirror: the log's newest event": lambda: mirror.log_high(event_log.conn),
        "mirror: events pruned": lambda: mirror.pruned_events(event_log.conn),
        "mirror: days to reconcile":
            lambda: mirror.log_days(event_log.conn, NOW - 91 * 86400, EVENTS),
        "master: does the log need the mirror": lambda: seq_span(event_log.conn),
        # the writer: the duplicate lookup and the insert, the counters with them
        "writer": lambda: event_log.append_row_groups([[row], [row]]),
        "writer: raw points": lambda: event_log.append_points([point, point]),
        # whether an Idempotency-Key was used before (every request sent under one)
        "a request under an Idempotency-Key": lambda: event_log.keyed_events(
            keyed, "plan-key", single=False),
        "raw points under an Idempotency-Key": lambda: event_log.keyed_points(
            keyed_points, "plan-key"),
        "a worker's counters flush": lambda: _flush(event_log),
        # the fixed steps of /status, /health, /metrics
        "/status": lambda: (event_log.kept_count(), event_log.size_bytes(),
                            replay.status(event_log, SINK, now_ms), event_log.datasets()),
        "/health": event_log.writable,
        "/metrics": lambda: metrics.snapshot(event_log, CONFIG, now_ms),
    }


def _flush(event_log: EventLog) -> None:
    with event_log.transaction() as conn:
        counters.add(conn, {(counters.REJECTED, counters.labels(status="400")): 1})


WORK = ["replay tick", "replay lag (every /query with source auto)",
        "retention, nothing to prune", "retention, a day to prune",
        "retention of raw points, nothing to prune", "retention of raw points, a day to prune",
        "mirror: the log's newest event", "mirror: events pruned",
        "mirror: days to reconcile", "master: does the log need the mirror", "writer",
        "writer: raw points", "a request under an Idempotency-Key",
        "raw points under an Idempotency-Key", "a worker's counters flush", "/status",
        "/health", "/metrics"]


@pytest.fixture(scope="module")
def event_log(log_path: str) -> EventLog:
    return EventLog(log_path)


@pytest.mark.parametrize("name", WORK)
def test_the_statements_of_periodic_work_and_fixed_steps_never_walk_the_log(
        event_log: EventLog, name: str) -> None:
    work = _work(event_log)
    assert list(work) == WORK
    traced = Traced(event_log)
    try:
        work[name]()
        statements = traced.take()
    finally:
        for conn in (event_log.conn, event_log.db.conn):
            conn.set_trace_callback(None)
    # (the counters and /health's write lock touch neither events nor points)
    assert any(_on_events(s) for s in statements) or name in (
        "a worker's counters flush", "/health", "mirror: events pruned"), \
        f"{name} read nothing of the log"
    assert not problems(event_log.conn, statements), "\n".join(
        problems(event_log.conn, statements))


# What these statements replaced (as they were, with this log's values bound): each
# scanned or walked the log, so each must fail the same check.
FORMER = {
    "mirror feed: min and max together":
        "SELECT min(seq), max(seq) FROM events",
    "mirror reconcile: by the sequence number":
        f"SELECT received_ms / 1000 - received_ms / 1000 % 86400 AS d, count(*), min(seq),"
        f" max(seq) FROM events WHERE received_ms / 1000 < {NOW - 91 * 86400} AND seq <= "
        f"{EVENTS} GROUP BY d",
    "/status: counting the events": "SELECT count(*) FROM events",
    "/status: counting the backlog":
        f"SELECT count(*), min(received_ms) FROM events WHERE seq > {REPLAYED}",
    "retention: confirmed events in sequence order":
        f"SELECT seq FROM events WHERE seq > 0 AND seq <= {REPLAYED} AND received_ms < "
        f"{(NOW - 92 * 86400) * 1000} AND seq < (SELECT max(seq) FROM events) AND NOT "
        f"EXISTS (SELECT 1 FROM replay_dead_letters d WHERE d.sink = '{SINK}' AND d.seq = "
        f"events.seq) ORDER BY seq LIMIT 500",
}


@pytest.mark.parametrize("name", FORMER)
def test_the_former_statements_fail_the_check(event_log: EventLog, name: str) -> None:
    assert problems(event_log.conn, [FORMER[name]]), name
