"""Raw data points of any dataset (SPEC §3.6): what a Worker's `writeDataPoint` wrote,
forwarded by the relay, kept in the log's `points` table and answered by the same SQL
engine as the service's own dataset.

The `events` table cannot hold them: its index1 is the event's unique request id, and
the layouts derive a double from the received time, which a raw point does not have. So
raw points have a table of their own in the same file, written by the same writer in the
same group commits (an answer still means committed), with their own request id for
idempotency and the point's own index beside it. They are never replayed: replay reads
`events` only, so a point of another dataset stays in the log.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any, Callable, NamedTuple

from . import datapoint
from .datapoint import DataPoint
from .events import InvalidInput, Schema, load_schema

TABLE = "points"
BLOBS = tuple(f"blob{i}" for i in range(1, 21))
DOUBLES = tuple(f"double{i}" for i in range(1, 21))
# A row of the table as the writer receives it (`rows`); `seq` is SQLite's.
COLUMNS = ("request_id", "dataset", "received_ms", "index1", *BLOBS, *DOUBLES)

INSERT = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES "
          f"({', '.join('?' * len(COLUMNS))}) ON CONFLICT (dataset, request_id) DO NOTHING")


def create_table(conn: sqlite3.Connection) -> None:
    """Unset slots are '' and 0, as Analytics Engine shows them (0.0 costs no bytes: SQLite
    stores an integral REAL as an integer). The request id is unique per dataset: the same
    Idempotency-Key sent for two datasets is two sets of points, not duplicates."""
    blobs = ",\n".join(f"{b} TEXT NOT NULL DEFAULT ''" for b in BLOBS)
    doubles = ",\n".join(f"{d} REAL NOT NULL DEFAULT 0" for d in DOUBLES)
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            seq INTEGER PRIMARY KEY,
            dataset TEXT NOT NULL,
            request_id TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            index1 TEXT NOT NULL DEFAULT '',
            {blobs},
            {doubles},
            UNIQUE (dataset, request_id)
        )""")
    # The expression is the translation's `timestamp`, after the dataset: a query of one
    # dataset with a time range is a range of this index, and listing the datasets is a
    # few steps down it (`datasets`).
    conn.execute(f"CREATE INDEX IF NOT EXISTS points_dataset_timestamp ON {TABLE} "
                 "(dataset, received_ms / 1000)")


# The distinct datasets by skipping down the index: one seek per dataset, however many
# points each holds.
_DATASETS = f"""
    WITH RECURSIVE d(name) AS (
        SELECT (SELECT min(dataset) FROM {TABLE})
        UNION ALL
        SELECT (SELECT min(dataset) FROM {TABLE} WHERE dataset > d.name) FROM d
        WHERE d.name IS NOT NULL)
    SELECT name FROM d WHERE name IS NOT NULL"""


def datasets(conn: sqlite3.Connection) -> tuple[str, ...]:
    """The datasets that hold at least one point, in order. A log opened read-only before
    the table existed holds none."""
    try:
        return tuple(row[0] for row in conn.execute(_DATASETS))
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return ()
        raise


# -- from a request body to rows ------------------------------------------------------------

class PointBatch(NamedTuple):
    dataset: str
    rows: list[tuple]


class PointParser:
    """Validates a /track/datapoints body (its JSON Schema, then Analytics Engine's limits,
    checked by `datapoint.problems` as for every event) and makes the table's rows."""

    def __init__(self, new_id: Callable[[], str], own_dataset: str):
        self._new_id = new_id
        self._own_dataset = own_dataset
        self.schema = Schema(load_schema("datapoints"))

    def parse(self, doc: Any, received_ms: int, idempotency_key: str | None = None
              ) -> PointBatch:
        """With `idempotency_key`, point i gets the request id `<key>:<i>`, so a body sent
        again is all duplicates; without it each point gets a fresh id."""
        details = self.schema.check(doc)
        if not details and doc["dataset"] == self._own_dataset:
            details.append({"path": "$.dataset",
                            "message": f"{self._own_dataset} is this service's own dataset "
                                       "(ANALYTICS_DATASET): its events come through the "
                                       "other /track routes"})
        if details:
            raise InvalidInput("The data points are not valid; nothing was stored", details)
        dataset = doc["dataset"]
        rows = []
        for i, item in enumerate(doc["points"]):
            point = DataPoint(tuple("" if b is None else b for b in item.get("blobs", ())),
                              tuple(_as_float(v) for v in item.get("doubles", ())),
                              tuple(item.get("indexes", ())))
            for slot, reason in datapoint.problems(point):
                details.append({"path": f"$.points[{i}]{_path(slot)}", "message": reason})
            request_id = self._new_id() if idempotency_key is None \
                else f"{idempotency_key}:{i}"
            rows.append(row(dataset, request_id, received_ms, point))
        if details:
            raise InvalidInput("The data points are not valid; nothing was stored", details)
        return PointBatch(dataset, rows)


def row(dataset: str, request_id: str, received_ms: int, point: DataPoint) -> tuple:
    """The table's row of one point (COLUMNS); unset slots are '' and 0."""
    blobs, doubles, indexes = point
    return (request_id, dataset, received_ms, indexes[0] if indexes else "",
            *blobs, *([""] * (20 - len(blobs))), *doubles, *([0.0] * (20 - len(doubles))))


def _path(slot: str) -> str:
    """The JSON path under a point of what `datapoint.problems` names a slot."""
    if slot.startswith("blob") and slot[4:].isdigit():
        return f".blobs[{int(slot[4:]) - 1}]"
    if slot.startswith("double") and slot[6:].isdigit():
        return f".doubles[{int(slot[6:]) - 1}]"
    if slot == "index1":
        return ".indexes[0]"
    return f".{slot}"


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer past a double's range: refused as not finite
        return math.inf
