"""What replay reads of the log: the events after a sink's cursor as data points, a time
range of them, the cursor's state, the backlog and its age, the dead letters, and the
status that /status and the CLI report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..intake.datapoint import DataPoint
from ..intake.timestamps import format_time
from ..log import EventLog, point_columns, point_of, range_sql
from .lease import read_lease


@dataclass(frozen=True)
class Pending:
    seq: int
    request_id: str
    point: DataPoint


def pending(event_log: EventLog, after_seq: int, limit: int) -> list[Pending]:
    """The next events after the cursor, as data points (SPEC §4), in sequence order."""
    layout = event_log.layout
    rows = event_log.conn.execute(
        f"SELECT seq, request_id, received_ms, {point_columns(layout)} FROM events"
        " WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
    return [Pending(row[0], row[1], point_of(layout, row[1], row[2], row[3:]))
            for row in rows]


def pending_all(event_log: EventLog, sink: str, page: int = 5000) -> Iterator[Pending]:
    """The whole backlog of `sink`, streamed (for a dry run: nothing is sent)."""
    after = event_log.replayed_through(sink)
    while rows := pending(event_log, after, page):
        yield from rows
        after = rows[-1].seq


def points_between(event_log: EventLog, since_ms: int | None, until_ms: int | None
                   ) -> Iterator[Pending]:
    """Every event received in [since_ms, until_ms), cursor or not: for re-sending a
    time range (audit repair, a lost dataset)."""
    layout = event_log.layout
    sql, args = range_sql(f"seq, request_id, received_ms, {point_columns(layout)}",
                          since_ms, until_ms)
    cursor = event_log.conn.execute(sql, args)
    while rows := cursor.fetchmany(5000):
        for row in rows:
            yield Pending(row[0], row[1], point_of(layout, row[1], row[2], row[3:]))


@dataclass(frozen=True)
class ReplayState:
    sink: str
    seq: int = 0
    sent: int = 0
    dead: int = 0
    last_success_ms: int | None = None
    last_error_ms: int | None = None
    last_error: str | None = None
    failures: int = 0
    next_attempt_ms: int = 0


def read_state(event_log: EventLog, sink: str) -> ReplayState:
    row = event_log.conn.execute(
        "SELECT sink, seq, sent, dead, last_success_ms, last_error_ms, last_error, failures,"
        " next_attempt_ms FROM replay_state WHERE sink = ?", (sink,)).fetchone()
    return ReplayState(*row) if row else ReplayState(sink)


@dataclass(frozen=True)
class Backlog:
    events: int
    oldest_ms: int | None


def backlog(event_log: EventLog, sink: str) -> Backlog:
    """Events the sink has not confirmed yet, and when the first of them was received:
    two lookups by primary key, whatever the size of the log or of the backlog. Every
    sequence number above the cursor is an event (SQLite gives max + 1, and retention
    prunes only below the cursor), so the newest minus the cursor is their number."""
    cursor = event_log.replayed_through(sink)
    newest, first_ms = event_log.conn.execute(
        "SELECT (SELECT max(seq) FROM events),"
        " (SELECT received_ms FROM events WHERE seq > ? ORDER BY seq LIMIT 1)",
        (cursor,)).fetchone()
    if first_ms is None:
        return Backlog(0, None)
    return Backlog(max(0, (newest or 0) - cursor), first_ms)


def lag_ms(event_log: EventLog, sink: str, now_ms: int) -> int:
    """How far the sink lags behind the log: the age of the oldest event it has not
    confirmed yet, 0 when it has every event (SPEC §3.3). Cheap: two lookups by key,
    for every /query with source auto."""
    cursor = event_log.replayed_through(sink)
    row = event_log.conn.execute(
        "SELECT received_ms FROM events WHERE seq > ? ORDER BY seq LIMIT 1",
        (cursor,)).fetchone()
    return 0 if row is None else max(0, now_ms - row[0])


def dead_letters(event_log: EventLog, sink: str) -> list[dict[str, Any]]:
    rows = event_log.conn.execute(
        "SELECT seq, request_id, reason, failed_ms FROM replay_dead_letters WHERE sink = ?"
        " ORDER BY seq", (sink,)).fetchall()
    return [{"seq": s, "requestId": r, "reason": why, "failedMs": t} for s, r, why, t in rows]


def status(event_log: EventLog, sink: str, now_ms: int) -> dict[str, Any]:
    """What /status and `analytics-worker status` report about replay."""
    state = read_state(event_log, sink)
    pending_ = backlog(event_log, sink)
    lease = read_lease(event_log)
    return {
        "sink": sink,
        "backlog": {
            "events": pending_.events,
            "oldestReceivedAt": None if pending_.oldest_ms is None
            else format_time(pending_.oldest_ms),
            "oldestAgeSeconds": None if pending_.oldest_ms is None
            else max(0.0, (now_ms - pending_.oldest_ms) / 1000.0),
        },
        "replayedThrough": state.seq,
        "sent": state.sent,
        "deadLetters": state.dead,
        "lastSuccessAt": _time(state.last_success_ms),
        "lastErrorAt": _time(state.last_error_ms),
        "lastError": state.last_error,
        "consecutiveFailures": state.failures,
        "nextAttemptAt": _time(state.next_attempt_ms) if state.next_attempt_ms > now_ms else None,
        "lease": None if lease is None else {
            "holder": lease.holder, "fence": lease.fence,
            "expiresAt": _time(lease.expires_ms), "active": lease.expires_ms > now_ms},
    }


def _time(ms: int | None) -> str | None:
    return None if not ms else format_time(ms)
