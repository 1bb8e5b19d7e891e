"""The log's schema: its migrations (sqlite-utils' `Migrations`, applied by whoever opens
the log to write), the slot columns and the `datapoints` view of a layout, and the layout a
log records."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Sequence

# sqlite-utils imports pandas and numpy whenever they are installed (chdb-core requires
# them): about 65 MB resident in every process of the service, for conversions the log
# never asks of it. They are kept out while it loads, unless something loaded them first.
_KEPT_OUT = [name for name in ("pandas", "numpy") if name not in sys.modules]
sys.modules.update(dict.fromkeys(_KEPT_OUT))
try:
    import sqlite_utils
    from sqlite_utils.migrations import Migrations
finally:
    for _name in _KEPT_OUT:
        del sys.modules[_name]

from ..intake import layouts
from ..intake.layouts import Layout
from . import counters, points
from .columns import BLOBS, DOUBLES
from .errors import LayoutMismatch

MIGRATIONS = Migrations("analytics-worker")


@MIGRATIONS(name="0001_events")
def _events(db: sqlite_utils.Database) -> None:
    # A sequence number is never given twice — the replay cursor relies on that. SQLite
    # gives max(seq) + 1, and retention never prunes the newest event, so the maximum never
    # goes back. (AUTOINCREMENT would also do it, at the cost of one more page written to
    # the WAL by every commit.)
    db.execute("""
        CREATE TABLE IF NOT EXISTS events (
            seq INTEGER PRIMARY KEY,
            request_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            payload TEXT NOT NULL,
            blob1 TEXT NOT NULL,
            blob2 TEXT NOT NULL,
            blob3 TEXT NOT NULL,
            double1 REAL NOT NULL
        )""")
    # The same expression as the view's `timestamp`, so time filters use it.
    db.execute("CREATE INDEX IF NOT EXISTS events_timestamp ON events (received_ms / 1000)")
    blobs = ",\n".join(f"''  AS blob{i}" for i in range(4, 21))
    doubles = ",\n".join(f"0.0 AS double{i}" for i in range(3, 21))
    # The data point columns of SPEC §4 as Analytics Engine shows them; unset slots are
    # empty strings and zeros there too.
    db.execute(f"""
        CREATE VIEW IF NOT EXISTS datapoints AS SELECT
            seq,
            received_ms / 1000 AS timestamp,
            1 AS _sample_interval,
            request_id AS index1,
            blob1, blob2, blob3,
            {blobs},
            double1,
            received_ms / 1000.0 AS double2,
            {doubles}
        FROM events""")


def _add_columns(db: sqlite_utils.Database, names: Sequence[str]) -> None:
    """Add each data point slot column that `events` lacks ('' and 0 for every row)."""
    have = {c.name for c in db["events"].columns}
    for name in names:
        if name not in have:
            kind = "TEXT NOT NULL DEFAULT ''" if name.startswith("blob") else \
                "REAL NOT NULL DEFAULT 0"
            db.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")


def add_slot_columns(db: sqlite_utils.Database, layout: Layout) -> None:
    """Every slot column of `layout`'s logs: all but the double derived from the received
    time. Safe to run again."""
    received = DOUBLES[layout.received_double - 1]
    _add_columns(db, [name for name in (*BLOBS, *DOUBLES) if name != received])


def datapoints_view(layout: Layout) -> str:
    """The data point columns as Analytics Engine shows them (unset slots are '' and 0
    there too); the received time is derived from `received_ms`."""
    doubles = [f"received_ms / 1000.0 AS {name}" if i == layout.received_double - 1
               else name for i, name in enumerate(DOUBLES)]
    return f"""
        CREATE VIEW IF NOT EXISTS datapoints AS SELECT
            seq,
            received_ms / 1000 AS timestamp,
            1 AS _sample_interval,
            request_id AS index1,
            {", ".join(BLOBS)},
            {", ".join(doubles)}
        FROM events"""


def recorded_layout(conn: sqlite3.Connection) -> str | None:
    """The layout a log holds: as recorded, or the profile layout for a log with events
    written before layouts were recorded; None for a new log. Reads only."""
    tables = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('log_meta', 'events')")}
    if "log_meta" in tables:
        row = conn.execute("SELECT value FROM log_meta WHERE key = 'layout'").fetchone()
        if row:
            return row[0]
    if "events" in tables and conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
        return layouts.PROFILE.name
    return None


def check_layout(path: str | os.PathLike, layout: str) -> None:
    """Raise LayoutMismatch when the log at `path` holds another layout. Opens it read-only
    (nothing is created or changed), so a service can refuse to start on it."""
    if not Path(path).exists():
        return
    try:
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=5)
        try:
            recorded = recorded_layout(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return  # unreadable now: opening the log reports it
    if recorded is not None and recorded != layout:
        raise LayoutMismatch(path, recorded, layout)

@MIGRATIONS(name="0002_replay")
def _replay(db: sqlite_utils.Database) -> None:
    # One row per sink: the cursor (last sequence number the sink confirmed or that was
    # dead-lettered) and what /status reports. Keyed by sink so that switching from the
    # development sink (stdout) to the relay starts the relay from the beginning.
    db.execute("""
        CREATE TABLE IF NOT EXISTS replay_state (
            sink TEXT PRIMARY KEY,
            seq INTEGER NOT NULL DEFAULT 0,
            sent INTEGER NOT NULL DEFAULT 0,
            dead INTEGER NOT NULL DEFAULT 0,
            last_success_ms INTEGER,
            last_error_ms INTEGER,
            last_error TEXT,
            failures INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL DEFAULT 0
        )""")
    # One row per database: whoever holds it (unexpired) is the only replayer. `fence`
    # grows with every change of holder; the cursor only moves for the current fence, so
    # a holder that stalled past its expiry cannot move it back or skip ahead.
    db.execute("""
        CREATE TABLE IF NOT EXISTS replay_lease (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            fence INTEGER NOT NULL,
            acquired_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL
        )""")
    # Events the sink refused as invalid, one by one after splitting the batch; the
    # event itself stays in the log (it is never rewritten).
    db.execute("""
        CREATE TABLE IF NOT EXISTS replay_dead_letters (
            sink TEXT NOT NULL,
            seq INTEGER NOT NULL,
            request_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            failed_ms INTEGER NOT NULL,
            PRIMARY KEY (sink, seq)
        )""")


@MIGRATIONS(name="0003_whole_datapoint")
def _whole_datapoint(db: sqlite_utils.Database) -> None:
    # Every slot of the data point (SPEC §9). Added columns cost existing rows nothing:
    # SQLite reads a column missing from an old record as its default. Each is added only
    # when missing, so running this twice changes nothing.
    # The doubles that some layout derives from the received time are added by
    # `add_slot_columns` once the log's layout is known: a log stores only the slots it
    # does not derive (each column costs every row a byte).
    derived = {DOUBLES[layout.received_double - 1] for layout in layouts.LAYOUTS.values()}
    _add_columns(db, [name for name in (*BLOBS, *DOUBLES) if name not in derived])
    # Which layout the log holds. A log written before layouts existed holds the profile
    # layout; an empty one takes the layout of whoever opens it first.
    db.execute("CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    if db.execute("SELECT 1 FROM events LIMIT 1").fetchone():
        db.execute("INSERT OR IGNORE INTO log_meta (key, value) VALUES ('layout', 'profile')")
    # The view of 0001 knew only the profile's slots; the log's opener recreates it.
    db.execute("DROP VIEW IF EXISTS datapoints")


@MIGRATIONS(name="0004_counters")
def _counters(db: sqlite_utils.Database) -> None:
    # The service's durable counters (SPEC §12), updated in the events' transactions.
    counters.create_table(db.conn)


@MIGRATIONS(name="0005_points")
def _points(db: sqlite_utils.Database) -> None:
    # Raw data points of any dataset (SPEC §3.6, `points.py`): a table of their own, since
    # an event row's index1 is its unique request id and a layout's received-time double
    # has no column. Same file, same writer, same group commits.
    points.create_table(db.conn)


# log_meta's keys for where the former ids made from an Idempotency-Key end (`keys.py`).
FORMER_KEY_IDS = {"events": "former_key_ids_before_seq",
                  "points": "former_point_key_ids_before_seq"}


@MIGRATIONS(name="0006_key_ids")
def _key_ids(db: sqlite_utils.Database) -> None:
    # From here on the ids made from an Idempotency-Key are UUIDs of their own namespace
    # (`intake.events.key_id`); rows written before may hold the former ones (the key,
    # `<key>:<index>`), which a request sent again under its key must still find. The
    # first sequence number of each table that cannot hold one is kept; a new log's is 1.
    # Nothing is rewritten: every row and id stays as it was.
    for table, key in FORMER_KEY_IDS.items():
        db.execute("INSERT OR IGNORE INTO log_meta (key, value) VALUES "
                   f"(?, (SELECT coalesce(max(seq), 0) + 1 FROM {table}))", (key,))
