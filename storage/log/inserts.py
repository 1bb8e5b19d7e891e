"""The insert loops: several requests' rows stored with a few statements inside the
caller's transaction, each request told its own outcome, the counters added in the same
transaction."""

from __future__ import annotations

import functools
import operator
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import points
from . import counters


@dataclass(frozen=True)
class AppendResult:
    accepted: int
    duplicates: int

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


def insert_mixed(conn: sqlite3.Connection, insert: str,
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
