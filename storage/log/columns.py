"""The log's columns: how an event of a layout becomes a row of `events`, and a row a data
point again; the data point slots (SPEC §4); the range a read walks."""

from __future__ import annotations

import json
from typing import Any, Sequence

import orjson

from ..intake.datapoint import DataPoint
from ..intake.events import Event
from ..intake.layouts import Layout

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
