"""Retention (SPEC §4): prune events older than ANALYTICS_RETENTION_DAYS that were
replayed, and raw data points (SPEC §3.6) older than that, by age alone (they are never
replayed, so there is nothing to wait for).

Only events at or before the replay cursor are candidates — an event the sink has not
confirmed is never pruned, however old, and neither is one held in the dead-letter table
(it never reached Cloudflare). Deletion runs in small transactions with a pause between
them, so ingestion, which needs the same write lock, waits at most one small batch.
The newest event is never pruned: SQLite numbers a new event max(seq) + 1, so keeping it
is what keeps sequence numbers from ever being given twice.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Callable

from . import counters, points
from .errors import translate as _translate
from .eventlog import EventLog

DAY_MS = 86_400_000
BATCH = 500
# Between batches: long enough for a writer spinning on the lock (its retry sleeps are
# at most 2 ms) to take it.
PAUSE_S = 0.005


def cutoff_ms(now: float, retention_days: int) -> int:
    return int(now * 1000) - retention_days * DAY_MS


def prune(event_log: EventLog, now: float, retention_days: int, *, sink: str,
          batch: int = BATCH, pause: Callable[[float], None] = time.sleep,
          pause_s: float = PAUSE_S) -> int:
    """Delete events received before `now - retention_days` that `sink` confirmed (the
    sink whose cursor says what reached Cloudflare); returns how many were deleted."""
    if retention_days <= 0:
        raise ValueError("retention must be at least one day")
    cutoff = cutoff_ms(now, retention_days)
    if batch <= 0:
        raise ValueError("batch must be positive")
    # Read once: events confirmed after this moment wait for the next run.
    through = event_log.replayed_through(sink)
    conn = event_log.conn
    pruned = 0
    # Candidates come in the time index's order, (received second, seq), from where the
    # last batch ended: only events older than the cutoff are ever read, however large
    # the log (the sequence number's order would walk every event confirmed so far).
    last_s, last_seq = -(1 << 62), 0
    while True:
        # Candidates are found outside the write transaction (a WAL reader takes no
        # lock), so the lock is held only for deletions by primary key.
        rows = conn.execute(
            "SELECT seq, received_ms / 1000 FROM events INDEXED BY events_timestamp"
            " WHERE received_ms / 1000 BETWEEN ? AND ? AND received_ms < ?"
            " AND (received_ms / 1000 > ? OR seq > ?) AND seq <= ?"
            " AND seq < (SELECT max(seq) FROM events)"
            " AND NOT EXISTS (SELECT 1 FROM replay_dead_letters d"
            "                 WHERE d.sink = ? AND d.seq = events.seq)"
            " ORDER BY received_ms / 1000, seq LIMIT ?",
            (last_s, cutoff // 1000, cutoff, last_s, last_seq, through, sink, batch)
        ).fetchall()
        seqs = [seq for seq, _ in rows]
        if not seqs:
            return pruned
        try:
            with event_log.transaction() as tx:
                deleted = tx.execute(
                    f"DELETE FROM events WHERE seq IN ({','.join('?' * len(seqs))})",
                    seqs).rowcount
                # With the deletion: the log's event count is accepted minus pruned.
                counters.add(tx, {(counters.PRUNED, counters.labels()): deleted})
                pruned += deleted
        except sqlite3.Error as e:
            raise _translate(e) from e
        last_seq, last_s = rows[-1]
        if len(seqs) < batch:
            return pruned
        pause(pause_s)


def prune_points(event_log: EventLog, now: float, retention_days: int, *,
                 batch: int = BATCH, pause: Callable[[float], None] = time.sleep,
                 pause_s: float = PAUSE_S) -> int:
    """Delete raw data points received before `now - retention_days`, dataset by dataset
    over the (dataset, received_ms / 1000) index, in small transactions; returns how many
    were deleted. Whole seconds: a point of the cutoff's own second is kept."""
    if retention_days <= 0:
        raise ValueError("retention must be at least one day")
    if batch <= 0:
        raise ValueError("batch must be positive")
    cutoff_s = cutoff_ms(now, retention_days) // 1000
    conn = event_log.conn
    pruned = 0
    for dataset in points.datasets(conn):
        while True:
            seqs = [row[0] for row in conn.execute(
                f"SELECT seq FROM {points.TABLE} WHERE dataset = ? AND received_ms / 1000 < ?"
                " LIMIT ?", (dataset, cutoff_s, batch))]
            if not seqs:
                break
            try:
                with event_log.transaction() as tx:
                    deleted = tx.execute(
                        f"DELETE FROM {points.TABLE} WHERE seq IN "
                        f"({','.join('?' * len(seqs))})", seqs).rowcount
                    # With the deletion: what a dataset holds is accepted minus pruned.
                    counters.add(tx, {(counters.POINTS_PRUNED,
                                       counters.labels(dataset=dataset)): deleted})
                    pruned += deleted
            except sqlite3.Error as e:
                raise _translate(e) from e
            if len(seqs) < batch:
                break
            pause(pause_s)
    return pruned
