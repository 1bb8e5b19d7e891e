"""The local engine: answers Analytics Engine SQL from the SQLite log, read-only.

The local side is read-only in depth: a `mode=ro` connection with `query_only`, an
authorizer that lets a statement read nothing but the event table behind the dataset and
call nothing but the functions the translation emits, a progress-handler time limit and a
row cap.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sqlglot import exp

from ...log.points import TABLE as POINTS_TABLE
from ...log.points import datasets as point_datasets
from . import udf as F
from .errors import AnswerTooLarge, InvalidQuery, QueryResult, QueryTimeout
from .limits import MAX_LIKE_PATTERN, Budget, compiling
from .parse import parse
from .sqlite import LogSQLite
from .translate import SOURCE_VIEW, Translator
from .types import NULL_TYPE, _is_int, zone_of
from .zones import available, local_of

SOURCE_TABLE = "events"
SOURCE_TABLE_COLUMNS = frozenset({"", "seq", "request_id", "received_ms",
                                  *(f"blob{i}" for i in range(1, 21)),
                                  *(f"double{i}" for i in range(1, 21))})
# The raw points' columns a translation reads (never their request id).
POINTS_TABLE_COLUMNS = frozenset({"", "dataset", "received_ms", "index1",
                                  *(f"blob{i}" for i in range(1, 21)),
                                  *(f"double{i}" for i in range(1, 21))})
@dataclass
class Compiled:
    sql: str | None                   # None for SHOW
    meta: list[dict]
    static_rows: list[dict] | None = None
    format: str | None = None         # the FORMAT clause, if any
    # for a query with LIMIT/OFFSET: for groups, the same query with one more column,
    # the number of rows before the LIMIT; the count of those rows alone (for rows:
    # their source's rows matching the WHERE; for groups: when the page is empty and
    # has no row to carry it)
    counted_sql: str | None = None
    count_sql: str | None = None
    tables: tuple[str, ...] = ()      # the dataset tables the query reads
    kind: str = "select"              # or the SHOW statement's kind
    # at most PROBE_ROWS + 1 of the rows the query's FROM and WHERE select (`reads_few`)
    probe_sql: str | None = None


# `LocalEngine.reads_few`: how many source rows a query may select for the log's own
# engine to answer it at once, and the VM instructions the probe may take to find out.
PROBE_ROWS = 10_000
PROBE_OPS = 1_000_000


# -- results -------------------------------------------------------------------------------------------

def _converter(t: str) -> Callable[[Any], Any]:
    if _is_int(t) and t != "Bool":
        return lambda v: None if v is None else int(v)
    if t == "Bool":
        return lambda v: None if v is None else bool(v)
    if t == "Float64":
        # ClickHouse's Float64 is never NULL, and SQLite stores NaN as NULL (0/0, avg of
        # nothing): a NULL here is NaN, written null in JSON and nan in TabSeparated
        return lambda v: math.nan if v is None else float(v)
    # a DateTime out of range (arithmetic past 2106) wraps and a Date is clamped, as in
    # ClickHouse
    if t.startswith("DateTime("):
        zone = zone_of(t)
        assert zone is not None
        return lambda v: None if v is None else F.render_datetime(
            local_of(F.wrap_datetime(v), zone))
    if t == "DateTime":
        return lambda v: None if v is None else F.render_datetime(F.wrap_datetime(v))
    if t == "Date":
        return lambda v: None if v is None else F.render_date(F.clamp_date(v))
    if t.startswith("Array("):
        inner = _converter(t[6:-1])
        return lambda v: None if v is None else [inner(x) for x in json.loads(v)]
    if t == NULL_TYPE:
        return lambda v: None
    return lambda v: v


def compile_select(sql: str, params: Sequence[Any] = (), *,
                   dataset: str = "hoox_telemetry", points: tuple[str, ...] = (),
                   deadline: float | None = None) -> Compiled:
    """The SQLite text (with :now and :today parameters) and meta of one query.
    `points`: the datasets of raw points the log holds, tables beside `dataset`.
    `deadline` (time.monotonic() seconds): translating stops there with QueryTimeout.
    Its cost is linear in the query's size, within the bounds of `limits`."""
    with compiling():
        return _compile(sql, params, dataset, points, Budget(deadline))


def _compile(sql: str, params: Sequence[Any], dataset: str, points: tuple[str, ...],
             budget: Budget) -> Compiled:
    parsed = parse(sql, params, deadline=budget.deadline)
    budget.check_clock()
    if parsed.kind != "select":
        compiled = _show(parsed.kind, dataset, points)
        compiled.format = parsed.format
        compiled.kind = parsed.kind
        return compiled
    assert parsed.tree is not None
    translator = Translator(dataset, points, budget)
    tree, columns = translator.select(parsed.tree)
    budget.check_clock()
    # each text is written in one go, the clock looked at between them: a translation of
    # 100,000 nodes (limits.MAX_EXPANDED) is written in well under a second
    counted_sql = count_sql = None
    if tree.args.get("limit") is not None or tree.args.get("offset") is not None:
        counted_sql, count_sql = _before_limit(tree, budget)
    probe_sql = _probe(tree)
    budget.check_clock()
    # written last, without the generator's copy of the tree (it may change the tree)
    return Compiled(tree.sql(dialect=LogSQLite, copy=False),
                    [{"name": n, "type": t} for n, t in columns], format=parsed.format,
                    counted_sql=counted_sql, count_sql=count_sql,
                    tables=tuple(translator.tables), probe_sql=probe_sql)


def _probe(tree: exp.Select) -> str:
    """How many rows the query's FROM and WHERE select, counting no further than
    PROBE_ROWS + 1: over the timestamp index for a time-bounded query."""
    rows = exp.Select(expressions=[exp.Literal.number(1)])
    rows.set("from_", tree.args["from_"].copy() if tree.args.get("from_") else None)
    if tree.args.get("where") is not None:
        rows.set("where", tree.args["where"].copy())
    rows.set("limit", exp.Limit(expression=exp.Literal.number(PROBE_ROWS + 1)))
    return f"SELECT count(*) FROM ({rows.sql(dialect=LogSQLite, copy=False)})"


def _aggregates(tree: exp.Select) -> bool:
    if tree.args.get("group") is not None:
        return True
    return any(isinstance(n, exp.AggFunc) or (isinstance(n, exp.Anonymous)
                                              and n.name.lower() in F.AGGREGATES)
               for n in tree.walk())


def _before_limit(tree: exp.Select, budget: Budget) -> tuple[str | None, str]:
    """(counted_sql, count_sql) of a query with LIMIT/OFFSET. A query of rows (no
    aggregate) has as many rows before its LIMIT as its source has rows matching its
    WHERE: one count over the source, which the timestamp index serves, and neither
    the projection nor the sort. A query of groups counts them in the same pass: SQLite
    computes window functions after GROUP BY and HAVING, before ORDER BY and LIMIT, so
    count(*) OVER () is the number of groups the LIMIT cuts from."""
    if not _aggregates(tree):
        source = exp.Select(expressions=[exp.Count(this=exp.Star())])
        source.set("from_", tree.args["from_"].copy() if tree.args.get("from_") else None)
        if tree.args.get("where") is not None:
            source.set("where", tree.args["where"].copy())
        return None, source.sql(dialect=LogSQLite, copy=False)
    counted = tree.copy()
    counted.expressions.append(exp.Alias(
        this=exp.Window(this=exp.Count(this=exp.Star()), over="OVER"),
        alias=exp.to_identifier("__ae_rows_before_limit", quoted=True)))
    whole = tree.copy()
    whole.set("limit", None)
    whole.set("offset", None)
    counted_sql = counted.sql(dialect=LogSQLite, copy=False)
    budget.check_clock()
    return (counted_sql,
            f"SELECT count(*) FROM ({whole.sql(dialect=LogSQLite, copy=False)})")


def _show(kind: str, dataset: str, points: tuple[str, ...] = ()) -> Compiled:
    if kind == "show_tables":
        names = (dataset, *(p for p in points if p != dataset))
        return Compiled(None, [{"name": "dataset", "type": "String"}],
                        [{"dataset": name} for name in names])
    if kind == "show_timezone":
        # The reference: "This should always be Etc/UTC".
        return Compiled(None, [{"name": "timezone", "type": "String"}],
                        [{"timezone": "Etc/UTC"}])
    zones = available()
    return Compiled(None, [{"name": "name", "type": "String"}], [{"name": z} for z in zones])


def _row_bytes(meta: list[dict], fmt: str | None) -> int:
    """The fewest bytes a row's body takes beside its values: in the JSON formats each
    value's name, quoted, and a colon; in TabSeparated a separator."""
    if fmt == "TabSeparated":
        return len(meta)
    return sum(len(m["name"]) + 3 for m in meta)


def _fetch(cursor: sqlite3.Cursor, max_rows: int, max_bytes: int | None,
           row_bytes: int = 0) -> list:
    """At most `max_rows` rows, a few hundred at a time, refused once the body they make
    passes `max_bytes`, counted at its least (`row_bytes` a row, text as its characters,
    anything else as one), so that an answer over the cap is never read whole."""
    if max_bytes is None:
        return cursor.fetchmany(max_rows)
    rows: list = []
    size = 0
    while len(rows) < max_rows:
        chunk = cursor.fetchmany(min(256, max_rows - len(rows)))
        if not chunk:
            break
        for row in chunk:
            size += row_bytes + sum(len(v) if isinstance(v, (str, bytes)) else 1 for v in row)
        if size > max_bytes:
            raise AnswerTooLarge(max_bytes)
        rows.extend(chunk)
    return rows


# -- the engine ------------------------------------------------------------------------------------------

class LocalEngine:
    """Answers Analytics Engine SQL from the SQLite event log, read-only."""

    CACHE_SIZE = 256
    PROGRESS_OPS = 4000  # VM instructions between two looks at the clock

    def __init__(self, db_path: str, *, dataset: str = "hoox_telemetry",
                 timeout_ms: int = 5000, max_rows: int = 10000,
                 max_answer_bytes: int | None = None,
                 max_value_bytes: int = F.DEFAULT_MAX_VALUE_BYTES,
                 now: Callable[[], float] = time.time):
        """`max_answer_bytes`: an answer whose values alone pass this many bytes is
        refused (AnswerTooLarge) while its rows are read, before it is all in memory.
        `max_value_bytes`: the longest value a query may build
        (ANALYTICS_QUERY_MAX_VALUE_BYTES): past it, InvalidQuery."""
        self.db_path = str(db_path)
        self.dataset = dataset
        self.timeout_ms = timeout_ms
        self.max_rows = max_rows
        self.max_answer_bytes = max_answer_bytes
        self.max_value_bytes = max_value_bytes
        self.now = now
        # One query connection per thread, so that queries on several threads run side
        # by side (how many at once is the caller's to bound); all of them, to close or
        # interrupt them.
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._listing: sqlite3.Connection | None = None
        self._lock = threading.Lock()         # the listing connection
        # compiled queries, and refusals (InvalidQuery), by text, params and datasets
        self._cache: OrderedDict[tuple, Compiled | InvalidQuery] = OrderedDict()
        self._cache_lock = threading.Lock()   # the translation cache
        self._allowed_functions = F.allowed_functions()

    # connection ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"file:{urllib.parse.quote(self.db_path)}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA case_sensitive_like = ON")  # ClickHouse's LIKE is
            # SQLite refuses to build a string past the cap, and a LIKE pattern longer
            # than its own (LIKE backtracks). Its limit holds for the schema's text as
            # well, so never below 64 KiB; our functions check the cap itself.
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH,
                          max(self.max_value_bytes, F.DEFAULT_MAX_VALUE_BYTES))
            conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_LIKE_PATTERN)
            F.register(conn)
            conn.set_authorizer(self._authorize)
            with self._conns_lock:
                self._conns.append(conn)
            self._local.conn = conn
        return conn

    def interrupt(self) -> None:
        """Stop every statement running now on this engine's query connections (from any
        thread): each raises the time limit's error."""
        with self._conns_lock:
            for conn in self._conns:
                conn.interrupt()

    def _authorize(self, action: int, arg1: str | None, arg2: str | None,
                   db: str | None, source: str | None) -> int:
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            # the view, and the columns of the table behind it that the view shows
            # (never `payload`); '' is a read without a column, as count(*) does
            allowed = arg1 == SOURCE_VIEW or (
                arg1 == SOURCE_TABLE and (arg2 or "") in SOURCE_TABLE_COLUMNS) or (
                arg1 == POINTS_TABLE and (arg2 or "") in POINTS_TABLE_COLUMNS)
            return sqlite3.SQLITE_OK if allowed and db in ("main", None) \
                else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if (arg2 or "").lower() in self._allowed_functions \
                else sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_DENY

    def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
            self._local = threading.local()
        for conn in conns:
            conn.close()
        with self._lock:
            if self._listing is not None:
                self._listing.close()
                self._listing = None

    # queries --------------------------------------------------------------------------------

    def point_datasets(self) -> tuple[str, ...]:
        """The datasets of raw points the log holds now (a few index seeks), read on a
        connection of their own: the queries' connection runs only queries, under the
        authorizer."""
        if self._listing is None and not os.path.exists(self.db_path):
            return ()  # no log yet, so no points: a query without FROM still answers
        with self._lock:
            try:
                if self._listing is None:
                    uri = f"file:{urllib.parse.quote(self.db_path)}?mode=ro"
                    self._listing = sqlite3.connect(uri, uri=True, isolation_level=None,
                                                    check_same_thread=False)
                    self._listing.execute("PRAGMA query_only = ON")
                return point_datasets(self._listing)
            except sqlite3.DatabaseError as e:
                raise self._translate(e) from None

    def reads_points(self, sql: str, params: Sequence[Any] = (), *,
                     deadline: float | None = None) -> bool:
        """Whether the query reads a dataset of raw points (or lists them: SHOW TABLES
        while there are any): only the log holds those, so only this engine answers it.
        Without such datasets, known without compiling the query."""
        if not self.point_datasets():
            return False
        compiled = self.compile(sql, params, deadline=deadline)
        if compiled.kind == "show_tables":
            return len(compiled.static_rows or ()) > 1
        return any(t != self.dataset for t in compiled.tables)

    def compile(self, sql: str, params: Sequence[Any] = (), *,
                deadline: float | None = None) -> Compiled:
        """`deadline` (time.monotonic() seconds; default: the time limit from now):
        parsing and translating count against it (QueryTimeout, with this engine's time
        limit)."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout_ms / 1000
        # Which datasets exist is part of the key: a query of one that holds nothing is
        # an unknown table, as Analytics Engine answers it, until points arrive.
        points = self.point_datasets()
        key = (sql, tuple((type(p).__name__, p) for p in (params or ())), points)
        try:
            hash(key)
        except TypeError:  # an unhashable param: parse() rejects it
            return compile_select(sql, params, dataset=self.dataset, points=points,
                                  deadline=deadline)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if isinstance(hit, InvalidQuery):  # refused once, refused again without the cost
            raise InvalidQuery(str(hit))
        if hit is not None:
            return hit
        try:
            compiled = compile_select(sql, params, dataset=self.dataset, points=points,
                                      deadline=deadline)
        except QueryTimeout:
            raise self._timeout() from None
        except InvalidQuery as e:
            refused: Compiled | InvalidQuery = InvalidQuery(str(e))
            with self._cache_lock:
                self._cache[key] = refused
                if len(self._cache) > self.CACHE_SIZE:
                    self._cache.popitem(last=False)
            raise
        with self._cache_lock:
            self._cache[key] = compiled
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def sqlite_sql(self, sql: str, params: Sequence[Any] = ()) -> str | None:
        return self.compile(sql, params).sql

    def plan(self, sql: str, params: Sequence[Any] = ()) -> list[str]:
        """EXPLAIN QUERY PLAN of the translation (for tests and tuning)."""
        compiled = self.compile(sql, params)
        conn = self._connection()
        conn.set_authorizer(None)
        try:
            rows = conn.execute("EXPLAIN QUERY PLAN " + (compiled.sql or ""),
                                self._clock()).fetchall()
        finally:
            conn.set_authorizer(self._authorize)
        return [r[3] for r in rows]

    def reads_few(self, sql: str, params: Sequence[Any] = (), *,
                  deadline: float | None = None) -> bool:
        """Whether the query selects at most PROBE_ROWS rows of the log, which this
        engine reads at once over the timestamp index (the dashboard's last 15 minutes,
        a last hour): a count bounded in rows and in VM instructions (and by `deadline`,
        time.monotonic() seconds, if given), so a query that would scan the log is told
        apart in a few milliseconds. `deadline` bounds compiling too, as compile's."""
        compiled = self.compile(sql, params, deadline=deadline)
        if compiled.probe_sql is None:
            return True
        conn = self._connection()
        left = [PROBE_OPS // 1000]

        def spend() -> int:
            left[0] -= 1
            return int(left[0] < 0 or (deadline is not None and time.monotonic() > deadline))

        conn.set_progress_handler(spend, 1000)
        try:
            rows = conn.execute(compiled.probe_sql, self._clock()).fetchone()[0]
        except sqlite3.Error:
            return False  # over the budget (interrupted), or the log busy
        finally:
            conn.set_progress_handler(None, 0)
        return rows <= PROBE_ROWS

    def _clock(self) -> dict[str, int]:
        now = int(self.now())
        return {"now": now, "today": now - now % 86400}

    def query(self, sql: str, params: Sequence[Any] = (), *,
              count_before_limit: bool = False, deadline: float | None = None
              ) -> QueryResult:
        """`count_before_limit`: also count the rows a LIMIT/OFFSET cut off (the SQL
        API's rows_before_limit_at_least): groups in the same pass, rows by a count of
        the source's rows matching the WHERE (see _before_limit). `deadline`
        (time.monotonic() seconds; default: the time limit from now): translating and
        running stop there, inside functions too (udf.bounded)."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout_ms / 1000
        compiled = self.compile(sql, params, deadline=deadline)
        if compiled.sql is None:
            return QueryResult(list(compiled.meta), list(compiled.static_rows or []),
                               format=compiled.format)
        converters = [(m["name"], _converter(m["type"])) for m in compiled.meta]
        conn = self._connection()
        stop = deadline
        with F.bounded(deadline, self.max_value_bytes):
            conn.set_progress_handler(lambda: int(time.monotonic() > stop),
                                      self.PROGRESS_OPS)
            try:
                counting = count_before_limit and compiled.count_sql is not None
                carried = counting and compiled.counted_sql is not None
                cursor = conn.execute(compiled.counted_sql if carried else compiled.sql,
                                      self._clock())
                raw = _fetch(cursor, self.max_rows + 1, self.max_answer_bytes,
                             _row_bytes(compiled.meta, compiled.format))
                cursor.close()
                before_limit = None
                if carried and raw:  # every row carries the count; drop the column
                    before_limit = raw[0][-1]
                    raw = [row[:-1] for row in raw]
                elif counting:  # rows, or an OFFSET past the last group
                    before_limit = conn.execute(compiled.count_sql,
                                                self._clock()).fetchone()[0]
            except sqlite3.OperationalError as e:
                raise self._translate(e) from None
            except sqlite3.DatabaseError as e:
                raise self._translate(e) from None
            finally:
                conn.set_progress_handler(None, 0)
        truncated = len(raw) > self.max_rows
        rows = [{name: conv(value) for (name, conv), value in zip(converters, row)}
                for row in raw[:self.max_rows]]
        return QueryResult(list(compiled.meta), rows, truncated, compiled.format,
                           before_limit)

    def _timeout(self) -> QueryTimeout:
        return QueryTimeout(
            f"The query was stopped after the local time limit of {self.timeout_ms} ms; "
            "narrow the time range, or raise ANALYTICS_QUERY_TIMEOUT_MS")

    def _translate(self, error: sqlite3.Error) -> Exception:
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        raised = F.take_error()  # what a function of ours raised, if one did
        if code == sqlite3.SQLITE_INTERRUPT or isinstance(raised, F.Stopped):
            return self._timeout()
        if isinstance(raised, F.ValueTooLarge):
            return InvalidQuery(str(raised))
        if code in (sqlite3.SQLITE_ERROR, sqlite3.SQLITE_AUTH, sqlite3.SQLITE_MISMATCH,
                    sqlite3.SQLITE_RANGE, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_CONSTRAINT):
            text = str(error)
            if code == sqlite3.SQLITE_TOOBIG or "string or blob too big" in text:
                text = (f"a value would be longer than {self.max_value_bytes} bytes "
                        "(ANALYTICS_QUERY_MAX_VALUE_BYTES)")
            elif "LIKE or GLOB pattern too complex" in text:
                text = f"a LIKE pattern is longer than {MAX_LIKE_PATTERN} bytes"
            elif "parser stack overflow" in text:
                # SQLite 3.40's parser has a fixed stack of 100 entries
                text = ("the query nests too deeply for the local engine (its SQLite "
                        "takes about 18 nested function calls and 14 nested subqueries)")
            elif "Expression tree is too large" in text:
                text = "expression nested deeper than 1000 in the local engine's SQLite"
            elif "raised exception" in text or "raised error" in text:
                text = "a function could not convert its argument"
                if isinstance(raised, ValueError) and str(raised):
                    text += f": {raised}"
            return InvalidQuery(text)
        return error  # storage trouble (locked, I/O, missing file): the caller's 503
