"""The event log: one SQLite file in WAL mode, append-only, the source of truth.

Every write commits before it returns (one `BEGIN IMMEDIATE … COMMIT` per request, or
per group of requests for the group-commit writer: `append_groups`), so a return is an
acknowledgement. The same transaction adds the events to the service's counters
(`counters.py`).

One connection writes, and only one thread uses it at a time (the service's writer; the
CLI's one thread). Reads go through a connection of the reading thread's own (`conn`): a
SQLite connection has one transaction state and one last-error code for all its threads,
so a read on the writing connection can end the writer's transaction under it or hand it
another statement's error — events were acknowledged and not stored, or told they were
duplicates, that way. WAL lets the readers run beside the writer. Two
gunicorn workers share the file; SQLite's own busy handler sleeps a millisecond or more
before retrying, which halves throughput under contention, so the write lock is retried
here with sleeps that start at 50 µs. Checkpoints run off the request path
(`checkpoint()`, from the background thread); the automatic checkpoint is kept only as a
backstop with a large threshold.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import orjson

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

from . import counters, layouts, points
from .datapoint import DataPoint
from .events import Event
from .layouts import Layout

BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# Pages (4 KiB) the WAL may reach before a writer checkpoints it itself; normally the
# background checkpoint keeps it far below this.
AUTOCHECKPOINT_PAGES = 16384


BLOBS = tuple(f"blob{i}" for i in range(1, 21))
DOUBLES = tuple(f"double{i}" for i in range(1, 21))


_STORED_DOUBLES: dict[str, tuple[int, ...]] = {}


def stored_doubles(layout: Layout) -> tuple[int, ...]:
    """Positions (0-based) of the doubles of `layout` that the log stores: all but the
    received time, which it derives from `received_ms` (so it costs no bytes)."""
    kept = _STORED_DOUBLES.get(layout.name)
    if kept is None:  # worked out once: this is on every insert's path
        kept = _STORED_DOUBLES[layout.name] = tuple(
            i for i in range(layout.doubles) if i != layout.received_double - 1)
    return kept


def insert_sql(layout: Layout) -> str:
    """The INSERT of an event of `layout`. It names the slots the layout's data points use;
    every other slot of the whole data point takes its column's default, '' or 0, as
    Analytics Engine shows an unset slot."""
    columns = ["request_id", "type", "received_ms", "payload", *BLOBS[:layout.blobs],
               *(DOUBLES[i] for i in stored_doubles(layout))]
    return (f"INSERT INTO events ({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(columns))}) ON CONFLICT (request_id) DO NOTHING")


def event_rows(events: Sequence[Event], layout: Layout) -> list[tuple]:
    """The rows of `insert_sql(layout)` for `events`: the one place an event becomes a row."""
    kept = stored_doubles(layout)
    if kept == (0,):  # the profile layout: its busiest path, spelt out
        return [(e.request_id, e.type, e.received_ms, _payload_json(e.payload),
                 *e.point.blobs, e.point.doubles[0]) for e in events]
    return [(e.request_id, e.type, e.received_ms, _payload_json(e.payload),
             *e.point.blobs, *(e.point.doubles[i] for i in kept)) for e in events]


def point_columns(layout: Layout) -> str:
    """The columns `point_of` reads, after request_id and received_ms (the received-time
    double has no column: `point_of` derives it)."""
    doubles = ["NULL" if i == layout.received_double - 1 else DOUBLES[i]
               for i in range(layout.doubles)]
    return ", ".join((*BLOBS[:layout.blobs], *doubles))


def point_of(layout: Layout, request_id: str, received_ms: int, values: Sequence[Any]
             ) -> DataPoint:
    """The data point of a log row, from its columns (`point_columns`): what replay sends."""
    doubles = list(values[layout.blobs:])
    doubles[layout.received_double - 1] = received_ms / 1000.0
    return DataPoint(tuple(values[:layout.blobs]), tuple(doubles), (request_id,))


def _payload_json(payload: Any) -> str:
    """Compact JSON, non-ASCII kept as is. orjson is several times faster than json here;
    json takes over for what orjson cannot write (integers past 64 bits)."""
    try:
        return orjson.dumps(payload).decode()
    except orjson.JSONEncodeError:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class LogError(Exception):
    """The log cannot be written or read right now; nothing was committed."""


class LogUnavailable(LogError):
    """Locked for too long, read-only, or an I/O error."""


class LogFull(LogError):
    """The disk (or the database's size limit) is full."""


class LayoutMismatch(LogError):
    """The log was created with another layout than the one it is opened with."""

    def __init__(self, path: str | os.PathLike, recorded: str, wanted: str):
        super().__init__(
            f"The event log {path} holds the {recorded} layout; it cannot be opened with "
            f"ANALYTICS_LAYOUT={wanted}: set ANALYTICS_LAYOUT={recorded}, or point "
            f"ANALYTICS_DB at a log of the {wanted} layout")
        self.recorded, self.wanted = recorded, wanted


@dataclass(frozen=True)
class AppendResult:
    accepted: int
    duplicates: int


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


# SQLite's default limit of bound parameters in one statement (3.32 and later).
MAX_VARIABLES = 32766


@functools.lru_cache(maxsize=64)
def _insert_many(insert: str, rows: int) -> str:
    """`insert` (of `insert_sql`) with `rows` rows of values: one statement, one step."""
    head, _, tail = insert.partition(" VALUES ")
    values, _, conflict = tail.partition(" ON CONFLICT ")
    return f"{head} VALUES {', '.join([values] * rows)} ON CONFLICT {conflict}"


@functools.lru_cache(maxsize=64)
def _select_existing(ids: int) -> str:
    return f"SELECT request_id FROM events WHERE request_id IN ({', '.join('?' * ids)})"


def _insert_groups(conn: sqlite3.Connection, insert: str,
                   groups: Sequence[Sequence[Sequence[Any]]]) -> list[AppendResult]:
    """Insert the rows of several requests inside the caller's transaction, with a few
    statements whatever their number: one lookup of the requestIds already stored and
    one multi-row INSERT of the rest. (Every statement step hands Python's GIL to the
    event loop and waits to get it back, so a statement per row is slow under load.)
    Within the group, the first request to bring a requestId stores it; later ones are
    duplicates, as they would be one after the other."""
    ids = list({row[0] for rows in groups for row in rows})  # row[0]: request_id
    seen: set[Any] = set()
    for i in range(0, len(ids), MAX_VARIABLES):
        chunk = ids[i:i + MAX_VARIABLES]
        seen.update(r[0] for r in conn.execute(_select_existing(len(chunk)), chunk))
    # Per event type (row[1]), for the service's counters, committed with the events.
    results, accepted_by, duplicate_by = _insert_new(conn, insert, groups, seen,
                                                     operator.itemgetter(0), "an event")
    counters.add_events(conn, accepted_by, duplicate_by)
    return results


def _insert_new(conn: sqlite3.Connection, insert: str,
                groups: Sequence[Sequence[Sequence[Any]]], seen: set[Any],
                key: Callable[[Sequence[Any]], Any], what: str
                ) -> tuple[list[AppendResult], dict[str, int], dict[str, int]]:
    """Insert the rows whose `key` is not in `seen` (the keys already stored), the first
    of each key only; each request's result, and the rows accepted and duplicate per
    row[1] (an event's type, a point's dataset) for the counters."""
    new_rows: list[Sequence[Any]] = []
    results = []
    accepted_by: dict[str, int] = {}
    duplicate_by: dict[str, int] = {}
    for rows in groups:
        accepted = 0
        for row in rows:
            k = key(row)
            if k not in seen:
                seen.add(k)
                new_rows.append(row)
                accepted += 1
                accepted_by[row[1]] = accepted_by.get(row[1], 0) + 1
            else:
                duplicate_by[row[1]] = duplicate_by.get(row[1], 0) + 1
        results.append(AppendResult(accepted, len(rows) - accepted))
    if new_rows:
        inserted = 0
        per = MAX_VARIABLES // len(new_rows[0])
        for i in range(0, len(new_rows), per):
            chunk = new_rows[i:i + per]
            inserted += conn.execute(_insert_many(insert, len(chunk)),
                                     [v for row in chunk for v in row]).rowcount
        if inserted != len(new_rows):
            raise sqlite3.DatabaseError(f"{what} expected to be new was not inserted")
    return results, accepted_by, duplicate_by


@functools.lru_cache(maxsize=64)
def _select_existing_points(ids: int) -> str:
    return (f"SELECT request_id FROM {points.TABLE} WHERE dataset = ? AND request_id IN "
            f"({', '.join('?' * ids)})")


def _insert_point_groups(conn: sqlite3.Connection,
                         groups: Sequence[Sequence[Sequence[Any]]]) -> list[AppendResult]:
    """`_insert_groups` for raw data points (`points.COLUMNS`: row[0] the request id,
    row[1] the dataset): a request id is a duplicate within its dataset."""
    by_dataset: dict[str, set[str]] = {}
    for rows in groups:
        for row in rows:
            by_dataset.setdefault(row[1], set()).add(row[0])
    seen: set[Any] = set()
    for dataset, id_set in by_dataset.items():
        ids = list(id_set)
        for i in range(0, len(ids), MAX_VARIABLES - 1):
            chunk = ids[i:i + MAX_VARIABLES - 1]
            seen.update((dataset, r[0]) for r in
                        conn.execute(_select_existing_points(len(chunk)), [dataset, *chunk]))
    results, accepted_by, duplicate_by = _insert_new(
        conn, points.INSERT, groups, seen, operator.itemgetter(1, 0), "a point")
    counters.add_points(conn, accepted_by, duplicate_by)
    return results


# What a request's rows are: events of the log's layout, or raw data points.
EVENTS, POINTS = "events", points.TABLE


def _insert_mixed(conn: sqlite3.Connection, insert: str,
                  groups: Sequence[Sequence[Sequence[Any]]], tables: Sequence[str]
                  ) -> list[AppendResult]:
    """Requests of events and of raw points in one transaction, each result in its
    request's place."""
    if all(t == EVENTS for t in tables):
        return _insert_groups(conn, insert, groups)
    results: list[AppendResult | None] = [None] * len(groups)
    for table, inserter in ((EVENTS, functools.partial(_insert_groups, conn, insert)),
                            (POINTS, functools.partial(_insert_point_groups, conn))):
        places = [i for i, t in enumerate(tables) if t == table]
        if places:
            for i, result in zip(places, inserter([groups[i] for i in places])):
                results[i] = result
    if any(r is None for r in results):
        raise ValueError(f"rows of an unknown table: {set(tables) - {EVENTS, POINTS}}")
    return results  # type: ignore[return-value]


def _translate(error: sqlite3.Error) -> LogError:
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return LogFull(f"The event log is full: {error}")
    return LogUnavailable(f"The event log cannot be written: {error}")


def range_sql(columns: str, since_ms: int | None, until_ms: int | None
              ) -> tuple[str, list[int]]:
    """SELECT `columns` of the events received in [since_ms, until_ms), in sequence order.
    A plain scan of the table in `seq` order: rows stream with no temporary sort that
    would grow with the range."""
    where, args = [], []
    if since_ms is not None:
        where.append("received_ms >= ?")
        args.append(since_ms)
    if until_ms is not None:
        where.append("received_ms < ?")
        args.append(until_ms)
    sql = (f"SELECT {columns} FROM events"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq")
    return sql, args


class EventLog:
    """One process's access to the log: its write connection (for the thread that owns
    the writes) and a read connection per reading thread. Open it after gunicorn forks."""

    def __init__(self, path: str | os.PathLike, *, layout: str = layouts.DEFAULT,
                 sync: str = "normal", busy_timeout_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, write: bool = True):
        """`write=False`: reads only, for a process whose events another process (the
        service's writer) commits: no write connection, and the log must exist."""
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.layout = layouts.get(layout)
        self._insert = insert_sql(self.layout)
        self.db: sqlite_utils.Database | None = None
        self._checkpointed: tuple[int, int] | None = None
        if not write:
            if not self.path.exists():
                raise LogUnavailable(f"The event log {self.path} does not exist yet")
            check_layout(self.path, layout)
            return
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(self.path), timeout=0, isolation_level=None,
                                   check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            # Before anything is written: a log of another layout is left untouched.
            recorded = self._retry_busy(recorded_layout, conn)
            if recorded is not None and recorded != layout:
                conn.close()
                raise LayoutMismatch(self.path, recorded, layout)
            self._retry_busy(self.db.enable_wal)
            conn.execute(f"PRAGMA synchronous = {'FULL' if sync == 'full' else 'NORMAL'}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
            conn.execute("PRAGMA journal_size_limit = 67108864")
            with self.transaction():
                MIGRATIONS.apply(self.db)
                conn.execute("INSERT OR IGNORE INTO log_meta (key, value) VALUES"
                             " ('layout', ?)", (layout,))
                recorded = recorded_layout(conn)
                if recorded != layout:  # another process created it meanwhile
                    raise LayoutMismatch(self.path, recorded or "?", layout)
                add_slot_columns(self.db, self.layout)
                conn.execute(datapoints_view(self.layout))
        except LayoutMismatch:
            self.db.close()
            raise
        except sqlite3.Error as e:
            raise _translate(e) from e

    @property
    def conn(self) -> sqlite3.Connection:
        """The calling thread's read connection (opened on first use): it can read the
        log and nothing more. Writes go through `transaction()` and `append`."""
        reader = getattr(self._local, "conn", None)
        if reader is None:
            try:
                reader = sqlite3.connect(str(self.path), timeout=self._busy_timeout_s,
                                         isolation_level=None, check_same_thread=False)
                reader.execute("PRAGMA query_only = ON")
            except sqlite3.Error as e:
                raise _translate(e) from e
            with self._readers_lock:
                self._readers.append(reader)
            self._local.conn = reader
        return reader

    @property
    def _writer(self) -> sqlite3.Connection:
        if self.db is None:
            raise LogUnavailable("This process reads the log; the service's writer writes it")
        return self.db.conn

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        self._local = threading.local()
        if self.db is not None:
            self.db.close()

    # -- writing ---------------------------------------------------------------------------

    def _retry_busy(self, action: Callable[..., Any], *args: Any) -> Any:
        """action(*args), retried while the database is busy, for up to busy_timeout_s
        from the first refusal. The first try costs nothing more than the call: it is the
        ingest path's common case."""
        deadline = None
        delay = 0.00005
        while True:
            try:
                return action(*args)
            except sqlite3.OperationalError as e:
                if (getattr(e, "sqlite_errorcode", 0) & 0xFF) not in BUSY_CODES:
                    raise
                if deadline is None:
                    deadline = self._monotonic() + self._busy_timeout_s
                elif self._monotonic() >= deadline:
                    raise
            self._sleep(delay)
            delay = min(delay * 2, 0.002)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock; commits on success."""
        conn = self._writer
        with self._lock:
            self._retry_busy(conn.execute, "BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def append(self, events: Sequence[Event]) -> AppendResult:
        """Commit `events` in one transaction. A requestId already in the log is a
        duplicate: acknowledged, not stored again."""
        return self._append_rows(event_rows(events, self.layout))

    def append_groups(self, groups: Sequence[Sequence[Event]]
                      ) -> list[AppendResult | LogError]:
        """Commit several requests' events in one transaction (group commit) and give each
        request its own result. When that transaction fails, each request is tried again
        alone, so each gets exactly the outcome it would have had alone (a duplicate is
        still a duplicate, a full disk still LogFull) and a batch stays all or nothing."""
        return self.append_row_groups([event_rows(events, self.layout) for events in groups])

    def append_row_groups(self, rows: Sequence[Sequence[Sequence[Any]]],
                          tables: Sequence[str] | None = None
                          ) -> list[AppendResult | LogError]:
        """`append_groups` for requests already made rows (`event_rows`, or `points.row`
        where `tables` says POINTS for that request; default all EVENTS): what the
        service's writer process receives from the workers."""
        tables = [EVENTS] * len(rows) if tables is None else list(tables)
        if len(rows) > 1 or (rows and len(rows[0]) > 1):
            try:
                with self.transaction() as conn:
                    return _insert_mixed(conn, self._insert, rows, tables)
            except sqlite3.Error:
                pass  # rolled back; each request alone below says what went wrong
        outcomes: list[AppendResult | LogError] = []
        for request_rows, table in zip(rows, tables):
            try:
                outcomes.append(self._append_rows(request_rows, table))
            except LogError as e:
                outcomes.append(e)
        return outcomes

    def append_points(self, rows: Sequence[Sequence[Any]]) -> AppendResult:
        """Commit one request's raw data points (`points.row`) in one transaction; a
        request id already stored for the dataset is a duplicate."""
        return self._append_rows(rows, POINTS)

    def _append_rows(self, rows: Sequence[Sequence[Any]], table: str = EVENTS
                     ) -> AppendResult:
        # One transaction for the events and their counters (SPEC §12), even for one
        # event: a count is never committed without its events, nor the other way round.
        try:
            with self.transaction() as conn:
                return _insert_mixed(conn, self._insert, [rows], [table])[0]
        except sqlite3.Error as e:
            raise _translate(e) from e

    def checkpoint(self) -> None:
        """Move the WAL into the database without waiting for readers or writers; only
        when something was written to it since the last checkpoint (one stat of the
        WAL file), so that a service at rest does nothing."""
        try:
            wal = os.stat(f"{self.path}-wal")
            written = (wal.st_size, wal.st_mtime_ns)
        except OSError:
            written = None
        if written is not None and written == self._checkpointed:
            return
        try:
            self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._checkpointed = written
        except sqlite3.OperationalError:
            pass  # busy: the next round will do it

    # -- reading ---------------------------------------------------------------------------

    def count(self) -> int:
        """The events in the log, counted row by row: for audits and tests. A server's
        figures read `kept_count`, which costs the same on any log."""
        return self.conn.execute("SELECT count(*) FROM events").fetchone()[0]

    def kept_count(self) -> int:
        """The events in the log as the counters keep it: accepted minus pruned, both
        counted in the transactions that changed the log (a range of the counters' key)."""
        return counters.log_events(self.conn)

    def datasets(self) -> dict[str, int]:
        """{dataset: points it holds} for every dataset of raw points in the log: the names
        a few steps down the index, the counts from the counters (no scan of the points)."""
        held = counters.points_held(self.conn)
        return {name: held.get(name, 0) for name in points.datasets(self.conn)}

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in
                   (self.path, Path(f"{self.path}-wal")) if p.exists())

    def writable(self) -> bool:
        """Whether a write transaction can be taken now (for /health)."""
        try:
            with self.transaction():
                pass
        except sqlite3.Error:
            return False
        return os.access(self.path, os.W_OK)

    def contains(self, request_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM events WHERE request_id = ?",
                                 (request_id,)).fetchone() is not None

    def events(self, since_ms: int | None = None, until_ms: int | None = None,
               batch: int = 5000) -> Iterator[sqlite3.Row]:
        """Events received in [since_ms, until_ms), in sequence order, streamed."""
        sql, args = range_sql("seq, request_id, type, received_ms, payload", since_ms, until_ms)
        cursor = self.conn.execute(sql, args)
        cursor.row_factory = sqlite3.Row
        while rows := cursor.fetchmany(batch):
            yield from rows

    # -- replay state (tables of migration 0002_replay) -------------------------------------

    def replayed_through(self, sink: str = "relay") -> int:
        """The replay cursor of `sink`: every event with a sequence number up to it was
        confirmed by the sink (or dead-lettered). 0 when nothing was replayed."""
        row = self.conn.execute("SELECT seq FROM replay_state WHERE sink = ?",
                                (sink,)).fetchone()
        return row[0] if row else 0

    def last_seq(self) -> int:
        """The highest sequence number ever given (retention keeps the newest event)."""
        return self.conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]


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
