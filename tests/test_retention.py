"""Retention: only replayed events older than the retention are pruned, in small
transactions that let ingestion in between."""

from __future__ import annotations

import io
from typing import Any, Sequence

import pytest

from storage.intake import datapoint
from storage.intake.datapoint import DataPoint
from storage.intake.events import Event
from storage.log import EventLog, LogUnavailable
from storage.log.retention import DAY_MS, prune
from storage.replay import Replayer
from storage.replay.sink import SinkRejected, StdoutSink

NOW = 1_764_000_000.0
NOW_MS = int(NOW * 1000)


def event(request_id: str, received_ms: int) -> Event:
    body = {"worker": "w", "endpoint": "/e", "latencyMs": 1.0, "success": True}
    return Event(request_id, "api-call", received_ms, body,
                 datapoint.api_call(request_id, received_ms, body))


def aged(prefix: str, n: int, days: float) -> list[Event]:
    return [event(f"{prefix}-{i}", NOW_MS - int(days * DAY_MS) + i) for i in range(n)]


def replay_all(log: EventLog, sink: Any = None) -> None:
    replayer = Replayer(log, sink or StdoutSink(io.StringIO()), clock=lambda: NOW)
    assert replayer.drain(sleep=lambda s: None).drained


def ids(log: EventLog) -> list[str]:
    return [r[0] for r in log.conn.execute("SELECT request_id FROM events ORDER BY seq")]


def test_prunes_replayed_events_older_than_the_retention_and_nothing_else(event_log):
    event_log.append(aged("old", 5, days=100) + aged("recent", 3, days=10))
    replay_all(event_log)
    event_log.append(aged("old-not-replayed", 4, days=200))

    assert prune(event_log, NOW, 92, sink="stdout") == 5
    assert ids(event_log) == [f"recent-{i}" for i in range(3)] + \
        [f"old-not-replayed-{i}" for i in range(4)]


def test_an_event_just_inside_the_retention_stays(event_log):
    event_log.append([event("edge", NOW_MS - 92 * DAY_MS), event("past", NOW_MS - 92 * DAY_MS - 1),
                      event("now", NOW_MS)])
    replay_all(event_log)
    assert prune(event_log, NOW, 92, sink="stdout") == 1
    assert ids(event_log) == ["edge", "now"]


def test_nothing_is_pruned_for_a_sink_that_never_confirmed_anything(event_log):
    event_log.append(aged("old", 5, days=400))
    replay_all(event_log)  # confirmed by stdout, not by the relay
    assert prune(event_log, NOW, 92, sink="relay") == 0
    assert len(ids(event_log)) == 5


class RejectsOne:
    """A sink that refuses one named point as invalid, as the relay does."""

    name = "relay"

    def __init__(self, bad_id: str):
        self.bad_id = bad_id

    def send(self, points: Sequence[DataPoint], batch_id: str = "") -> None:
        bad = {i: "index too long" for i, p in enumerate(points) if p.indexes[0] == self.bad_id}
        if bad:
            raise SinkRejected("refused", bad)


def test_dead_lettered_events_are_kept_although_the_cursor_passed_them(event_log):
    event_log.append(aged("old", 6, days=100))
    replay_all(event_log, RejectsOne("old-2"))
    assert event_log.replayed_through("relay") == 6
    assert prune(event_log, NOW, 92, sink="relay") == 4
    assert ids(event_log) == ["old-2", "old-5"]  # old-5: the newest is always kept


def test_pruning_commits_in_small_batches_and_sequence_numbers_are_not_reused(event_log):
    event_log.append(aged("old", 35, days=100))
    replay_all(event_log)
    commits: list[str] = []
    event_log.db.conn.set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
    pauses: list[float] = []
    assert prune(event_log, NOW, 92, sink="stdout", batch=10, pause=pauses.append) == 34
    event_log.db.conn.set_trace_callback(None)
    assert len(commits) == 4  # 10 + 10 + 10 + 4
    assert len(pauses) == 3
    event_log.append([event("after", NOW_MS)])
    assert event_log.conn.execute("SELECT seq FROM events").fetchall() == [(35,), (36,)]


def test_the_newest_event_is_kept_so_sequence_numbers_are_never_given_twice(event_log):
    event_log.append(aged("old", 3, days=100))
    replay_all(event_log)
    assert prune(event_log, NOW, 92, sink="stdout") == 2
    assert ids(event_log) == ["old-2"]
    assert event_log.last_seq() == 3
    event_log.append([event("after", NOW_MS)])
    assert event_log.conn.execute("SELECT seq FROM events").fetchall() == [(3,), (4,)]
    # Once a newer event exists, the one kept before is pruned like the rest.
    assert prune(event_log, NOW, 92, sink="stdout") == 1
    assert ids(event_log) == ["after"]


def test_ingestion_commits_between_batches(event_log, db_path):
    event_log.append(aged("old", 30, days=100))
    replay_all(event_log)
    # A second process-like connection that gives up on the write lock almost at once:
    # it succeeds only if pruning released the lock between its batches.
    ingest = EventLog(db_path, busy_timeout_s=0.001)
    arrived = iter(range(100))

    def ingest_one(_: float) -> None:
        ingest.append([event(f"new-{next(arrived)}", NOW_MS)])

    assert prune(event_log, NOW, 92, sink="stdout", batch=10, pause=ingest_one) == 30
    assert ids(event_log) == ["new-0", "new-1", "new-2"]  # one after each full batch
    ingest.close()


def test_ingestion_waiting_on_a_held_lock_fails_fast_so_the_previous_test_can_fail(
        event_log, db_path):
    ingest = EventLog(db_path, busy_timeout_s=0.001)
    with event_log.transaction():
        with pytest.raises(LogUnavailable):
            ingest.append([event("blocked", NOW_MS)])
    ingest.close()


def test_retention_must_be_positive(event_log):
    with pytest.raises(ValueError):
        prune(event_log, NOW, 0, sink="stdout")
