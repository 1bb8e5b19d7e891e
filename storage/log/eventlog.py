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

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..intake import layouts
from ..intake.events import Event
from . import counters, keys, points
from .columns import event_rows, insert_sql, range_sql
from .errors import LayoutMismatch, LogError, LogUnavailable
from .errors import translate as _translate
from .inserts import EVENTS, POINTS, AppendResult, insert_mixed

# sqlite-utils as the schema loaded it, with pandas and numpy kept out
from .schema import (MIGRATIONS, add_slot_columns, check_layout, datapoints_view, recorded_layout,
                     sqlite_utils)

BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# Pages (4 KiB) the WAL may reach before a writer checkpoints it itself; normally the
# background checkpoint keeps it far below this.
AUTOCHECKPOINT_PAGES = 16384


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
                    return insert_mixed(conn, self._insert, rows, tables)
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
                return insert_mixed(conn, self._insert, [rows], [table])[0]
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

    def keyed_events(self, events: Sequence[Event], key: str, single: bool) -> list[Event]:
        """The events of one request sent under an Idempotency-Key, as they are to be
        stored; KeyReused when the key was used with another body (`keys.py`). Reads
        only, by the request ids' key: a few index seeks."""
        try:
            return keys.check_events(self.conn, events, key, single)
        except sqlite3.Error as e:
            raise _translate(e) from e

    def keyed_points(self, rows: Sequence[tuple], key: str) -> list[tuple]:
        """`keyed_events` for one request's raw points (`points.row`)."""
        try:
            return keys.check_points(self.conn, rows, key)
        except sqlite3.Error as e:
            raise _translate(e) from e

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
