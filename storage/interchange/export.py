"""Export a time range of the log as NDJSON (SPEC §7) or CSV, streamed.

Memory stays flat whatever the range: rows come from SQLite `fetchmany` pages and go out
in chunks of lines. Nothing is parsed: NDJSON carries the payload text exactly as the log
stores it (so an export imported into an empty log exports the same bytes), and CSV takes
its columns from the data point columns the log already keeps beside the payload.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from typing import IO, Callable, Iterator

from ..intake import layouts
from ..intake.layouts import Layout
from ..intake.timestamps import format_time
from ..log import BLOBS, DOUBLES, range_sql, stored_doubles
from .ndjson import to_line

FORMATS = ("ndjson", "csv")
CSV_HEADER = ("requestId", "type", "receivedAt", "worker", "endpoint", "latencyMs", "success")
PAGE = 5000

Row = tuple
Progress = Callable[[int], None]


def count(conn: sqlite3.Connection, since_ms: int | None = None,
          until_ms: int | None = None) -> int:
    sql, args = range_sql("count(*)", since_ms, until_ms)
    return conn.execute(sql.replace(" ORDER BY seq", ""), args).fetchone()[0]


def _pages(conn: sqlite3.Connection, columns: str, since_ms: int | None,
           until_ms: int | None, page: int) -> Iterator[list[Row]]:
    sql, args = range_sql(columns, since_ms, until_ms)
    cursor = conn.execute(sql, args)
    try:
        while rows := cursor.fetchmany(page):
            yield rows
    finally:
        cursor.close()


def ndjson_chunks(conn: sqlite3.Connection, since_ms: int | None = None,
                  until_ms: int | None = None, page: int = PAGE
                  ) -> Iterator[tuple[str, int]]:
    """(text of up to `page` NDJSON lines, how many events it holds)."""
    for rows in _pages(conn, "request_id, type, received_ms, payload", since_ms,
                       until_ms, page):
        yield "".join([to_line(r[0], r[1], r[2], r[3]) for r in rows]), len(rows)


def _number(value: float) -> str:
    # 24.0 was most likely sent as 24; repr keeps every other double exact.
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def csv_chunks(conn: sqlite3.Connection, since_ms: int | None = None,
               until_ms: int | None = None, page: int = PAGE,
               layout: Layout = layouts.PROFILE) -> Iterator[tuple[str, int]]:
    """The CSV header, then (text of up to `page` rows, how many events it holds)."""
    if layout is not layouts.PROFILE:
        yield from _slot_csv_chunks(conn, since_ms, until_ms, page, layout)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    yield buffer.getvalue(), 0
    for rows in _pages(conn, "request_id, type, received_ms, blob1, blob2, blob3, double1",
                       since_ms, until_ms, page):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([(r[0], r[1], format_time(r[2]), r[3], r[4],
                           _number(r[6]), "true" if r[5] == "1" else "false")
                          for r in rows])
        yield buffer.getvalue(), len(rows)


def _slot_csv_chunks(conn: sqlite3.Connection, since_ms: int | None, until_ms: int | None,
                     page: int, layout: Layout) -> Iterator[tuple[str, int]]:
    """A layout of several event types has no one set of payload fields: its CSV has the
    data point's slots (the received time is receivedAt)."""
    slots = [*BLOBS[:layout.blobs], *(DOUBLES[i] for i in stored_doubles(layout))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("requestId", "type", "receivedAt", *slots))
    yield buffer.getvalue(), 0
    for rows in _pages(conn, f"request_id, type, received_ms, {', '.join(slots)}",
                       since_ms, until_ms, page):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([(r[0], r[1], format_time(r[2]), *r[3:3 + layout.blobs],
                           *(_number(v) for v in r[3 + layout.blobs:])) for r in rows])
        yield buffer.getvalue(), len(rows)


def export(conn: sqlite3.Connection, out: IO[str], fmt: str = "ndjson",
           since_ms: int | None = None, until_ms: int | None = None,
           progress: Progress | None = None, page: int = PAGE,
           layout: Layout = layouts.PROFILE) -> int:
    """Write the events received in [since_ms, until_ms) to `out`; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "ndjson":
        chunks = ndjson_chunks(conn, since_ms, until_ms, page)
    else:
        chunks = csv_chunks(conn, since_ms, until_ms, page, layout)
    written = 0
    for text, n in chunks:
        out.write(text)
        written += n
        if progress is not None and n:
            progress(n)
    return written
