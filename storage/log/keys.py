"""A request sent again under its Idempotency-Key (SPEC §6.1, after the IETF
idempotency-key draft): with the same body it is the same request, answered as before
(its events duplicates); with another body it is refused (`KeyReused`, HTTP 422) and
nothing of it is stored.

The items of a request that carry no request id of their own get ids made from the key
(`intake.events.key_id`), so the log itself says whether a key was used: a request is
sent again when any of its key's ids is stored, or the id of one item more (the first
body was longer). It is the same request when every event the key named is stored with
the same type and payload, or every point with the same values (items that carry ids of
their own are duplicates or not by those ids, as without a key).

Logs written before the key's ids had a namespace of their own hold the former ids (the
key, `<key>:<index>`) in rows numbered below a mark the migration kept
(`schema.FORMER_KEY_IDS`): a request sent again under such a key still finds its events
there, and is answered as a duplicate of them.

The check reads what is committed, ahead of the writer: two first deliveries of one key
with different bodies at the same moment are not told apart (the second is a duplicate,
as before this check); a retry with the same body is a duplicate however it races, since
its ids are the same.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Sequence

from ..intake.events import Event, former_key_id, key_id
from ..intake.points import BLOBS, COLUMNS, DOUBLES
from .schema import FORMER_KEY_IDS

# SQLite's default limit of bound parameters in one statement, with room for the dataset.
_CHUNK = 30000


class KeyReused(Exception):
    """An Idempotency-Key sent again with another body: HTTP 422, nothing stored."""

    def __init__(self, key: str):
        super().__init__(
            f"The Idempotency-Key {key} was used before with another body; nothing was "
            "stored. A new request needs a new key")
        self.key = key


def former_ids_before(conn: sqlite3.Connection, table: str) -> int:
    """The first sequence number of `table` (events, points) that cannot hold a former id
    made from a key (1 for a log written since: none can)."""
    row = conn.execute("SELECT value FROM log_meta WHERE key = ?",
                       (FORMER_KEY_IDS[table],)).fetchone()
    return int(row[0]) if row else 1


def _stored(conn: sqlite3.Connection, sql: str, ids: Sequence[str],
            before: Sequence[Any] = ()) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    unique = list(dict.fromkeys(ids))
    for i in range(0, len(unique), _CHUNK):
        chunk = unique[i:i + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(sql.format(marks=marks), [*before, *chunk]):
            found[row[1]] = row
    return found


def _resent(stored: dict[str, tuple], ids: list[str], made: list[int], beyond: str,
            former_before: int | None = None) -> bool:
    """Whether the key was used before: one of the ids made from it is stored (below
    `former_before`, for the former ids), or the id of one item more."""
    def held(request_id: str) -> bool:
        row = stored.get(request_id)
        return row is not None and (former_before is None or row[0] < former_before)
    return held(beyond) or any(held(ids[i]) for i in made)


def check_events(conn: sqlite3.Connection, events: Sequence[Event], key: str,
                 single: bool) -> list[Event]:
    """`events` of one request sent under `key` (a single event, or a batch), as they are
    to be stored: unchanged, or with the former ids their first delivery was stored
    under. Raises KeyReused when the key was used with another body."""
    made = [i for i, e in enumerate(events) if e.request_id == key_id(key, i)]
    if not made:
        return list(events)  # every event carries its own id: the key names nothing
    ids = [e.request_id for e in events]
    beyond = key_id(key, len(events))
    former_before = former_ids_before(conn, "events")
    former = {i: former_key_id(key, None if single else i) for i in made}
    former_beyond = former_key_id(key, len(events)) if not single else None
    asked = [*ids, beyond]
    if former_before > 1:
        asked += [*former.values(), *([former_beyond] if former_beyond else [])]
    stored = _stored(conn, "SELECT seq, request_id, type, payload FROM events "
                           "WHERE request_id IN ({marks})", asked)
    if not _resent(stored, ids, made, beyond):
        if former_before <= 1 or not _resent(
                stored, [former.get(i, r) for i, r in enumerate(ids)], made,
                former_beyond or "", former_before):
            return list(events)  # a key never used: a new request
        events = [_with_id(e, former[i]) if i in former else e for i, e in enumerate(events)]
        beyond = former_beyond or ""
    for i in made:
        row = stored.get(events[i].request_id)
        if row is None or row[2] != events[i].type or json.loads(row[3]) != events[i].payload:
            raise KeyReused(key)
    if beyond in stored:
        raise KeyReused(key)
    return list(events)


def _with_id(event: Event, request_id: str) -> Event:
    return event._replace(request_id=request_id,
                          point=event.point._replace(indexes=(request_id,)))


# A point's values as a row holds them (`intake.points.COLUMNS`, after the received time).
_VALUES = ("index1", *BLOBS, *DOUBLES)
_VALUES_AT = COLUMNS.index("index1")


def check_points(conn: sqlite3.Connection, rows: Sequence[tuple], key: str) -> list[tuple]:
    """`check_events` for one request's raw points (rows of `intake.points.row`, one
    dataset): a point is the same when its index, blobs and doubles are."""
    if not rows:
        return list(rows)
    dataset = rows[0][1]
    made = [i for i, r in enumerate(rows) if r[0] == key_id(key, i)]
    if not made:
        return list(rows)
    ids = [r[0] for r in rows]
    beyond = key_id(key, len(rows))
    former_before = former_ids_before(conn, "points")
    former = {i: former_key_id(key, i) for i in made}
    asked = [*ids, beyond]
    if former_before > 1:
        asked += [*former.values(), former_key_id(key, len(rows))]
    stored = _stored(conn, f"SELECT seq, request_id, {', '.join(_VALUES)} FROM points "
                           "WHERE dataset = ? AND request_id IN ({marks})", asked, [dataset])
    if not _resent(stored, ids, made, beyond):
        if former_before <= 1 or not _resent(
                stored, [former.get(i, r) for i, r in enumerate(ids)], made,
                former_key_id(key, len(rows)), former_before):
            return list(rows)
        rows = [(former[i], *r[1:]) if i in former else r for i, r in enumerate(rows)]
        beyond = former_key_id(key, len(rows))
    for row in rows:
        held = stored.get(row[0])
        if held is None or tuple(held[2:]) != tuple(row[_VALUES_AT:]):
            raise KeyReused(key)
    if beyond in stored:
        raise KeyReused(key)
    return list(rows)
