"""A columnar copy of the log for queries over long ranges: embedded ClickHouse (chdb).

The SQLite log stays the source of truth. The mirror is a MergeTree table holding the
log's data points, fed from the log after commit (it reads the events past the highest
sequence number it holds) and rebuilt from it by `analytics-worker mirror-rebuild`.
ClickHouse is what Analytics Engine runs, so a query sent there as the Cloudflare text
(`to_clickhouse`, portable) answers as ClickHouse does.

Two facts of chdb shape where it lives: one process only may open a data directory, and
a process that imported chdb and then forks gets children whose queries hang. So the
mirror has a process of its own (`storage/query/mirror_process.py`, started by gunicorn's master
with exec, never forked from a process holding chdb); workers ask it over a Unix socket
(`MirroredEngine`), and nothing on the workers' side imports chdb.

Freshness: before answering, the mirror reads the log's tail up to the newest event the
asking worker sees, so an answer holds every committed event, as the log's own engine
does. When that tail is too long to read within a query (the mirror was stopped a while),
the mirror says it is behind and the log's engine answers, while the mirror catches up.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
from typing import Any, Callable, Sequence

from ..log import counters
from .aesql import AnswerTooLarge, LocalEngine, QueryResult, QueryTimeout
from .aesql.clickhouse import translate
from .aesql.types import AE_COLUMNS
from .lanes import Lanes

MIRROR_SOCKET_ENV = "ANALYTICS_MIRROR_SOCKET"
TABLE = "points"
# A tail longer than this is not read inside a query: the log answers meanwhile.
MAX_TAIL_EVENTS = 200_000
# chdb's code for a query stopped by max_execution_time
_TIMEOUT_CODES = ("Code: 159.", "TIMEOUT_EXCEEDED")
_POINT_COLUMNS = [(n, t) for n, t in AE_COLUMNS if n != "dataset"]


def _quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- what the mirror asks of the log (each served by a key or an index: the feed asks
# twice a second; `tests/test_statement_plans.py` holds their plans) ---------------------

def log_high(conn: sqlite3.Connection) -> int:
    """The log's highest sequence number (0 when empty): one step down the key. (min
    and max in one SELECT would read the whole table.)"""
    return int(conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0)


def pruned_events(conn: sqlite3.Connection) -> float:
    """Events retention pruned so far, as the log's counters keep it."""
    return float(conn.execute("SELECT coalesce(sum(value), 0) FROM counters WHERE name = ?",
                              (counters.PRUNED,)).fetchone()[0])


def log_days(conn: sqlite3.Connection, before_s: int, through: int
             ) -> dict[int, tuple[int, int, int]]:
    """{day: (events, lowest seq, highest seq)} of the log's days before `before_s`, for
    the events up to `through`: over the time index, so only those days are read,
    however large the log."""
    return {d: (n, lo, hi) for d, n, lo, hi in conn.execute(
        "SELECT received_ms / 1000 - received_ms / 1000 % 86400 AS d, count(*), "
        "min(seq), max(seq) FROM events INDEXED BY events_timestamp "
        "WHERE received_ms / 1000 < ? AND seq <= ? GROUP BY d", (before_s, through))}


class MirrorStore:
    """The mirror's table in one chdb data directory. Only the mirror process (or the
    rebuild command, with the service stopped) opens one."""

    def __init__(self, db_path: str, directory: str, dataset: str):
        from chdb import session  # here only: never in a process that forks afterwards

        self.db_path = str(db_path)
        self.dataset = dataset
        self._session = session.Session(directory)
        self._lock = threading.Lock()  # one statement at a time on the session
        self._seen: list | None = None  # the log's files as `log_changed` last saw them
        self.seq = 0  # the highest sequence number the mirror holds
        self._ensure()

    def _run(self, sql: str, fmt: str = "CSV") -> bytes:
        return self._session.query(sql, fmt).bytes()

    def _ensure(self) -> None:
        columns = ", ".join(f"{_quote(n)} {t}" for n, t in _POINT_COLUMNS)
        with self._lock:
            self._run(f"CREATE TABLE IF NOT EXISTS {TABLE} (seq UInt64, {columns}) "
                      "ENGINE = MergeTree ORDER BY (timestamp, seq)")
            # The dataset as Analytics Engine shows it: without the mirror's own `seq`.
            shown = ", ".join(_quote(n) for n, _ in _POINT_COLUMNS)
            self._run(f"CREATE VIEW IF NOT EXISTS {_quote(self.dataset)} AS SELECT "
                      f"{_string(self.dataset)} AS dataset, {shown} FROM {TABLE}")
            self.seq = int(self._run(f"SELECT max(seq) FROM {TABLE}").strip() or 0)

    def _read(self, statement: Callable[..., Any], *args: Any) -> Any:
        """`statement(connection, *args)` on a connection to the log of its own: the log
        may be replaced under the mirror (a restore), and a fresh connection always sees
        its newest commit."""
        uri = f"file:{urllib.parse.quote(self.db_path)}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            return statement(conn, *args)
        finally:
            conn.close()

    def log_changed(self) -> bool:
        """Whether the log's files changed since the last call: two stats, no read of
        the log, so that a mirror at rest does nothing."""
        seen = []
        for path in (self.db_path, f"{self.db_path}-wal"):
            try:
                st = os.stat(path)
                seen.append((st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                seen.append(None)
        changed, self._seen = seen != self._seen, seen
        return changed

    def recheck(self) -> None:
        """The next `log_changed` says yes (after a failed read)."""
        self._seen = None

    def log_high(self) -> int:
        return self._read(log_high)

    def pruned(self) -> float:
        """Events retention pruned so far: the mirror reconciles only when this moves."""
        return self._read(pruned_events)

    def feed(self, limit: int | None = None, *, start_over: bool = True) -> int | None:
        """Copy the log's events past `self.seq` (at most `limit` of them); returns how
        many. When the log is not the one the mirror was built from, starts again from
        nothing (`start_over`), or returns None (a query does not wait for a whole
        copy: the feed makes it)."""
        high = self.log_high()
        if high < self.seq:  # a log replaced under the mirror: what it holds is stale
            if not start_over:
                return None
            self.truncate()
        if high <= self.seq:
            return 0
        until = high if limit is None else min(high, self.seq + limit)
        self._copy(f"seq > {self.seq} AND seq <= {until}")
        before, self.seq = self.seq, until
        return until - before

    def _copy(self, where: str) -> None:
        values = ", ".join(
            "toDateTime(timestamp)" if n == "timestamp"
            else f"toUInt32({n})" if n == "_sample_interval"
            else f"toFloat64({n})" if t == "Float64" else f"ifNull({n}, '')"
            for n, t in _POINT_COLUMNS)
        with self._lock:
            self._run(f"INSERT INTO {TABLE} SELECT toUInt64(seq), {values} FROM "
                      f"sqlite({_string(self.db_path)}, 'datapoints') WHERE {where}")

    def reconcile(self, before_s: int) -> int:
        """Follow retention: it deletes old events (never a prefix of the sequence: it
        keeps what replay has not confirmed). For each day before `before_s` whose count
        differs from the log's, that day is copied again; returns the days redone."""
        day = "intDiv(toUInt32(timestamp), 86400) * 86400"
        with self._lock:
            mine = dict(
                tuple(map(int, line.split(","))) for line in self._run(
                    f"SELECT {day} AS d, count() FROM {TABLE} WHERE timestamp < {before_s} "
                    f"AND seq <= {self.seq} GROUP BY d").decode().split())
        theirs = self._read(log_days, before_s, self.seq)
        redone = [d for d in set(mine) | set(theirs)
                  if mine.get(d) != theirs.get(d, (None,))[0]]
        for d in redone:
            with self._lock:
                self._run(f"DELETE FROM {TABLE} WHERE timestamp >= {d} AND "
                          f"timestamp < {d + 86400} AND seq <= {self.seq}")
            if d in theirs:
                # the seq range goes to SQLite (its primary key); the day is checked here,
                # as the view's timestamp reaches ClickHouse untyped
                _, lo, hi = theirs[d]
                self._copy(f"seq >= {lo} AND seq <= {hi} AND toUInt32(timestamp) >= {d} "
                           f"AND toUInt32(timestamp) < {d + 86400}")
        return len(redone)

    def truncate(self) -> None:
        with self._lock:
            self._run(f"TRUNCATE TABLE {TABLE}")
        self.seq = 0

    def rebuild(self) -> int:
        """Everything again from the log; returns the events copied."""
        self.truncate()
        return self.feed() or 0

    def query(self, text: str, timeout_ms: int, max_rows: int) -> bytes:
        settings = (f" SETTINGS readonly = 1, session_timezone = 'UTC', "
                    f"max_execution_time = {max(timeout_ms, 1) / 1000!r}, "
                    f"max_result_rows = {max_rows + 1}, result_overflow_mode = 'break', "
                    "output_format_json_quote_64bit_integers = 0, "
                    # inf, -inf and nan as text, so that they come back as what they are
                    # (JSON's null would lose which one; `_result` reads them back)
                    "output_format_json_quote_denormals = 1")
        body, fmt = text.rsplit(" FORMAT ", 1)
        with self._lock:
            return self._run(body + settings, fmt.strip())

    def close(self) -> None:
        with self._lock:
            self._session.close()


# -- the workers' side ----------------------------------------------------------------------------

class MirrorUnavailable(Exception):
    """The mirror cannot answer (down, behind, or its ClickHouse refused): the log does."""


def _timeout(limit_ms: int) -> QueryTimeout:
    return QueryTimeout(f"The query was stopped after the local time limit of {limit_ms} ms; "
                        "narrow the time range, or raise ANALYTICS_QUERY_TIMEOUT_MS")


def ask(socket_path: str, request: dict[str, Any], timeout_s: float,
        limit_ms: int | None = None, max_answer_bytes: int | None = None) -> dict[str, Any]:
    """One request over the mirror's socket: a JSON line out; a JSON line back (the
    status), then for an answer the ClickHouse JSON body. `limit_ms`: the time limit a
    timeout names (default: `timeout_s`). `max_answer_bytes`: the cap of the answer the
    body becomes; ClickHouse's JSON says more for the same rows (indents, statistics), so
    reading stops past three times the cap (AnswerTooLarge), and the answer made of it is
    held to the cap itself."""
    most = None if max_answer_bytes is None else 3 * max_answer_bytes + 65536
    received = 0
    deadline = time.monotonic() + timeout_s
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(socket_path)
            s.sendall(json.dumps(request).encode() + b"\n")
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                # one limit for the whole answer, not for each read of it
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout
                s.settimeout(remaining)
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                received += len(chunk)
                if most is not None and received > most:
                    assert max_answer_bytes is not None
                    raise AnswerTooLarge(max_answer_bytes)
                chunks.append(chunk)
    except socket.timeout:
        raise _timeout(int(timeout_s * 1000) if limit_ms is None else limit_ms) from None
    except OSError as e:
        raise MirrorUnavailable(str(e)) from None
    head, _, body = b"".join(chunks).partition(b"\n")
    try:
        status = json.loads(head)
    except ValueError:
        raise MirrorUnavailable("no answer") from None
    status["body"] = body
    return status


class MirroredEngine:
    """The local engine as the service runs it: the mirror answers SELECTs, the log's
    own engine answers whatever the mirror cannot (down, behind, refused)."""

    def __init__(self, local: LocalEngine | Lanes, socket_path: str,
                 last_seq: Callable[[], int], *, few_locally: bool = True):
        """`last_seq()`: the newest event this worker sees in the log; the mirror reads
        up to it before answering. `few_locally`: a query that selects few rows of the
        log (`LocalEngine.reads_few`) is the log's own engine's to answer: over the
        timestamp index it takes a few milliseconds, less than a round trip to the
        mirror's process and ClickHouse's own start of a query."""
        self.local = local
        engine = local.engine if isinstance(local, Lanes) else local
        self._max_answer_bytes = engine.max_answer_bytes
        self.socket_path = socket_path
        self._last_seq = last_seq
        self._few_locally = few_locally
        self.answered = 0   # by the mirror
        self.fell_back = 0  # by the log, the mirror unable to
        self.fell_back_because = ""  # the last time it was: why (down, behind, its error)
        self.few = 0        # by the log, by choice

    def query(self, sql: str, params: Sequence[Any] = (), *,
              count_before_limit: bool = False, deadline: float | None = None
              ) -> QueryResult:
        """`deadline`: time.monotonic() seconds by which the answer is due, counted from
        the query's arrival (default: the time limit from now); the mirror and the log
        share it."""
        local = self.local
        if deadline is None:
            deadline = time.monotonic() + local.timeout_ms / 1000

        def from_log() -> QueryResult:
            return local.query(sql, params, count_before_limit=count_before_limit,
                               deadline=deadline)

        if not os.path.exists(self.socket_path):
            # not started (the log is still small) or restarting: the log answers
            self.fell_back += 1
            self.fell_back_because = "no socket"
            return from_log()
        text, fmt = translate(sql, params, dataset=local.dataset, now=local.now(),
                              portable=True, format="JSON")  # invalid SQL raises here
        if text.startswith("SHOW "):
            return from_log()
        if self._few_locally and local.reads_few(sql, params, deadline=deadline):
            self.few += 1
            return from_log()
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise _timeout(local.timeout_ms)
        try:
            status = ask(self.socket_path, {"sql": text, "through": self._last_seq(),
                                            "timeout_ms": remaining_ms,
                                            "max_rows": local.max_rows},
                         timeout_s=remaining_ms / 1000, limit_ms=local.timeout_ms,
                         max_answer_bytes=self._max_answer_bytes)
            if status.get("status") == "timeout":
                raise _timeout(local.timeout_ms)
            if status.get("status") != "ok":
                raise MirrorUnavailable(status.get("error", "refused"))
        except MirrorUnavailable as e:
            self.fell_back += 1
            self.fell_back_because = str(e)
            if time.monotonic() >= deadline:
                raise _timeout(local.timeout_ms) from None
            return from_log()
        self.answered += 1
        return _result(json.loads(status["body"]), fmt, local.max_rows, count_before_limit)

    def close(self) -> None:
        self.local.close()


_FLOAT_TYPES = {"Float32", "Float64", "Nullable(Float32)", "Nullable(Float64)"}


def _result(answer: dict[str, Any], fmt: str | None, max_rows: int,
            count_before_limit: bool) -> QueryResult:
    meta = [{"name": m["name"], "type": m["type"]} for m in answer["meta"]]
    rows = answer["data"]
    floats = [m["name"] for m in meta if m["type"] in _FLOAT_TYPES]
    if floats:
        for row in rows:
            for name in floats:
                if isinstance(row.get(name), str):
                    row[name] = float(row[name])  # "inf", "-inf", "nan"
    before = answer.get("rows_before_limit_at_least") if count_before_limit else None
    return QueryResult(meta, rows[:max_rows], len(rows) > max_rows, fmt, before)
